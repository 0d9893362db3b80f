"""One encoder to an OpenVINO IR (.xml + .bin), converted straight from PyTorch.

OpenVINO's own PyTorch front end is used rather than a detour through ONNX, so that the
``openvino`` extra needs nothing else. The IR is fp32 (no fp16 weight compression): the
precision is chosen when the IR is compiled, and the model's identity goes into rt_info.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

from liploc_ros.errors import BackendError
from liploc_ros.model.backends.base import (
    INPUT_NAME,
    OUTPUT_NAME,
    EncoderGraph,
    Side,
    example_input,
    fp32_cpu_model,
    input_size,
)
from liploc_ros.model.backends.metadata import FINGERPRINT, encoder_metadata
from liploc_ros.model.liploc_file import LoadedModel

RT_INFO_PATH = ("liploc",)


def export_openvino(loaded: LoadedModel, side: Side, xml_path: Path) -> None:
    """Write ``side``'s encoder to ``xml_path`` (and the .bin beside it)."""
    import openvino as ov

    size = input_size(loaded, side)
    graph = EncoderGraph(fp32_cpu_model(loaded), side).eval()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model = ov.convert_model(
                graph,
                example_input=example_input(loaded, side),
                input=[ov.PartialShape([-1, 3, size, size])],
            )
    except Exception as err:  # the converter raises many kinds; all mean "cannot convert"
        raise BackendError(f"cannot convert the {side} encoder to OpenVINO: {err}") from err
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    for key, value in encoder_metadata(loaded, side).items():
        model.set_rt_info(value, [*RT_INFO_PATH, key])
    ov.save_model(model, str(xml_path), compress_to_fp16=False)


def openvino_fingerprint(model: Any) -> str | None:
    """The fingerprint in an ov.Model's rt_info (None: not a liploc conversion)."""
    path = [*RT_INFO_PATH, FINGERPRINT]
    if not model.has_rt_info(path):
        return None
    return model.get_rt_info(path).astype(str)
