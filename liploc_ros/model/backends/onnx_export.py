"""One encoder to an ONNX file with a dynamic batch axis (torch.onnx's dynamo exporter).

A dynamic batch is what TensorRT's ``trtexec --minShapes/--optShapes/--maxShapes`` and
ONNX Runtime need to run one file at batch 1 (a live camera) and 32 (map building). The
file is self-contained (no external-data side file: the encoders are far below ONNX's
2 GB limit) and carries the model's identity in its metadata_props.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from liploc_ros.errors import BackendError
from liploc_ros.model.backends.base import (
    INPUT_NAME,
    OUTPUT_NAME,
    EncoderGraph,
    Side,
    example_input,
    fp32_cpu_model,
    quiet_converter,
)
from liploc_ros.model.backends.metadata import FINGERPRINT, encoder_metadata
from liploc_ros.model.liploc_file import LoadedModel

#: the largest batch the exported graph promises to take
MAX_BATCH = 4096
_CHATTY_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")


def _quiet() -> contextlib.AbstractContextManager[None]:
    """The exporter's progress prints, warnings and INFO logs (hundreds of lines) hidden."""
    return quiet_converter([logging.getLogger(n) for n in _CHATTY_LOGGERS], logging.WARNING)


def export_onnx(loaded: LoadedModel, side: Side, path: Path) -> None:
    """Write ``side``'s encoder (fp32) to ``path`` atomically."""
    graph = EncoderGraph(fp32_cpu_model(loaded), side).eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with _quiet():
            program = torch.onnx.export(
                graph,
                (example_input(loaded, side),),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"image": {0: batch}},
                dynamo=True,
                verbose=False,
            )
    except Exception as err:  # the exporter raises many kinds; all mean "cannot export"
        raise BackendError(f"cannot export the {side} encoder to ONNX: {err}") from err
    assert program is not None  # dynamo=True always gives an ONNXProgram
    program.model.metadata_props.update(encoder_metadata(loaded, side))
    # saved under its final name in a private folder beside it, then renamed: atomic, and
    # with the permissions a plain open() gives (a temporary file would be 0600)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        program.save(tmp / path.name, external_data=False)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_fingerprint(path: Path) -> str | None:
    """The model fingerprint recorded in an ONNX file (None: not a liploc export)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError, OSError, ...
        raise BackendError(f"{path} is not a readable ONNX file: {err}") from err
    return {p.key: p.value for p in model.metadata_props}.get(FINGERPRINT)
