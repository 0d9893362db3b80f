"""Load whichever model file the user has: a liploc .safetensors or an authors' .pth.

The one loader of every command and both nodes, so that they all take the same files with
the same options. The kind is told by the file's first bytes, not its name
(:func:`liploc_ros.model.file_kind.model_file_kind`, the one sniffer of the package). A
relative path that does not exist is looked up in the package's share folder too
(:func:`liploc_ros.paths.resolve_shared_path`), so ``models/liploc_demo.safetensors`` works
from any directory once installed. ``sensor`` swaps the LiDAR
geometry (beams, field of view, range) for another sensor's while keeping the model's own
image rules (crop, empty-pixel value, distance filter), so that a model trained on HDL-64E
scans can map with a VLP-16 or an Ouster.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from liploc_ros.errors import ConfigError
from liploc_ros.model.authors import load_authors_checkpoint
from liploc_ros.model.backends import DEFAULT_BACKEND
from liploc_ros.model.file_kind import model_file_kind
from liploc_ros.model.inference import Embedder
from liploc_ros.model.liploc_file import LoadedModel, load_model
from liploc_ros.paths import resolve_shared_path
from liploc_ros.preprocess.config import RangeImageConfig, sensor_preset

__all__ = ["load_embedder", "load_model_file", "with_sensor"]


def with_sensor(loaded: LoadedModel, sensor: str) -> LoadedModel:
    """``loaded`` with its LiDAR geometry replaced by preset ``sensor``'s."""
    preset = sensor_preset(sensor)
    geometry = {
        name: getattr(preset, name)
        for name in ("sensor", "height", "width", "fov_up_deg", "fov_down_deg", "max_range")
    }
    lidar: RangeImageConfig = dataclasses.replace(loaded.preprocess.lidar, **geometry)
    return dataclasses.replace(
        loaded, preprocess=dataclasses.replace(loaded.preprocess, lidar=lidar)
    )


def load_model_file(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    normalize: bool | None = None,
    sensor: str | None = None,
) -> LoadedModel:
    """A liploc model file or an authors' checkpoint, ready for an :class:`Embedder`.

    ``normalize`` says whether an authors' checkpoint is their "Norm" variant (the weights
    do not tell); a liploc file records it, so there it must be left None.
    """
    path = resolve_shared_path(path)
    kind = model_file_kind(path)
    if kind == "safetensors":
        if normalize is not None:
            raise ConfigError(
                f"{path}: a liploc model file records whether it normalises its embeddings; "
                "the normalize option applies only to the authors' .pth checkpoints"
            )
        loaded = load_model(path, device=device)
    else:
        loaded = load_authors_checkpoint(path, normalize=bool(normalize), device=device)
    return with_sensor(loaded, sensor) if sensor else loaded


def load_embedder(
    model: str | Path | LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    batch_size: int = 32,
    backend: str = DEFAULT_BACKEND,
    normalize: bool | None = None,
    sensor: str | None = None,
    calibration: str | None = None,
) -> Embedder:
    """An :class:`Embedder` of any model file (see :func:`load_model_file`) or of a model
    already loaded; how the CLI and both nodes get their encoder. ``calibration``: a source
    spec INT8 encoders are calibrated on and reduced precisions verified with (see
    :class:`~liploc_ros.model.inference.Embedder`)."""
    if isinstance(model, LoadedModel):
        if normalize is not None:
            raise ConfigError("normalize applies to an authors' .pth file, not a loaded model")
        loaded = with_sensor(model, sensor) if sensor else model
    else:
        loaded = load_model_file(model, normalize=normalize, sensor=sensor)
    return Embedder(
        loaded, device=device, precision=precision, batch_size=batch_size, backend=backend,
        calibration=calibration,
    )  # fmt: skip
