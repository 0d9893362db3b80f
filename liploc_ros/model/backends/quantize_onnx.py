"""ONNX Runtime's static quantization of one encoder: the onnxruntime backend's INT8.

QDQ format (QuantizeLinear / DequantizeLinear pairs that ONNX Runtime's CPU provider fuses
into integer kernels), unsigned 8-bit activations and signed 8-bit weights per output
channel (U8S8, what ORT's x86 kernels use), MinMax ranges from the calibration frames, on
the convolutions and matrix products. On CPUs without VNNI the weights take 7 bits
(``reduce_range``, ORT's answer to the same u8 x s8 saturation NNCF's overflow fix avoids).
The projection head and the authors' extra Linear stay in float, as in the other backends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.errors import BackendError
from liploc_ros.model.backends.base import INPUT_NAME
from liploc_ros.model.backends.machine import runtime_versions
from liploc_ros.model.backends.metadata import PREFIX

#: weights of the layers kept in float (their initializer names are the module paths)
HEAD_WEIGHTS = re.compile(r"^model\.(projection_(camera|lidar)\.|encoder_(camera|lidar)\.fc\.)")
_OPS = ("Conv", "MatMul", "Gemm")


def onnx_int8_settings(vnni: bool) -> dict[str, Any]:
    """Everything that shapes the quantized graph beside the calibration frames."""
    return {
        "tool": "onnxruntime.quantization",
        "onnxruntime": runtime_versions()["onnxruntime"],
        "format": "QDQ",
        "activation_type": "QUInt8",
        "weight_type": "QInt8",
        "per_channel": True,
        "reduce_range": not vnni,
        "calibrate_method": "MinMax",
        "op_types": list(_OPS),
        "float_head": HEAD_WEIGHTS.pattern,
    }


def head_nodes(model: Any) -> list[str]:
    """Names of the nodes whose weights belong to the head (kept in float)."""
    return [
        node.name
        for node in model.graph.node
        if node.op_type in _OPS and any(HEAD_WEIGHTS.match(name) for name in node.input)
    ]


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _no_preprocess_advice() -> Iterator[None]:
    """The quantizer advises ``quant_pre_process`` on the root logger at every call; its
    symbolic shape inference fails on the exporter's graphs, and without it the result was
    the same (demo model: cosine 0.99947 either way), so the advice is dropped."""
    advice = _DropAdvice()
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over preprocessed inputs."""

    def __init__(self, inputs: np.ndarray) -> None:
        self._items = iter(np.asarray(inputs, np.float32))

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        return None if item is None else {INPUT_NAME: item[None]}

    def rewind(self) -> None:  # pragma: no cover - called by some calibrators only
        raise BackendError("the calibration reader cannot rewind")


def quantize_onnx_file(
    fp32_path: Path, out_path: Path, inputs: np.ndarray, settings: dict[str, Any]
) -> None:
    """Quantize the ONNX file at ``fp32_path`` on ``inputs`` to ``out_path``; the model's
    ``liploc.*`` metadata goes with it."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(str(fp32_path))
    metadata = {p.key: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}

    class Reader(_Reader, CalibrationDataReader):  # type: ignore[misc]
        """The protocol's base class, for ORT's isinstance check."""

    with tempfile.TemporaryDirectory(prefix="liploc-quant-") as work:
        target = Path(work) / out_path.name
        try:
            with contextlib.redirect_stdout(io.StringIO()), _no_preprocess_advice():
                quantize_static(
                    str(fp32_path),
                    str(target),
                    Reader(inputs),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(settings["op_types"]),
                    per_channel=settings["per_channel"],
                    reduce_range=settings["reduce_range"],
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=head_nodes(model),
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"CalibTensorRangeSymmetric": False},
                )
        except Exception as err:  # the quantizer raises many kinds; all mean "cannot"
            raise BackendError(f"ONNX Runtime cannot quantize {fp32_path.name}: {err}") from err
        quantized = onnx.load(str(target))
        kept = {p.key for p in quantized.metadata_props}
        for key, value in metadata.items():
            if key not in kept:
                entry = quantized.metadata_props.add()
                entry.key, entry.value = key, value
        onnx.save(quantized, str(target))
        shutil.move(str(target), str(out_path))
