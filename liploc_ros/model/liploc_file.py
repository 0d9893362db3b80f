"""The liploc model file: a safetensors file whose metadata says how to rebuild the model.

Layout (safetensors, no pickle): the state_dict of a :class:`LipLocModel`, and string
metadata

- ``format`` = ``liploc_ros.model``, ``format_version`` = ``1``
- ``model_config``, ``preprocess_config``: the two configs as JSON
- ``embed_dim``, ``normalize``: repeated for readers that do not parse the configs
- ``sha256``: of the state_dict (see :mod:`liploc_ros.model.weights`), checked on load;
  ``fingerprint``: its first 16 hex digits, the model's identity
- ``training``: free-form JSON (dataset, epochs, losses, ...), ``{}`` when not given
- ``liploc_ros_version``: the writer's version
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_save

from liploc_ros import __version__
from liploc_ros.config import from_dict, to_dict
from liploc_ros.device import resolve_device
from liploc_ros.errors import CheckpointError, ConfigError
from liploc_ros.io_utils import write_bytes_atomic
from liploc_ros.model.config import ModelConfig
from liploc_ros.model.liploc import LipLocModel, create_empty_model
from liploc_ros.model.weights import (
    SHORT_FINGERPRINT_LEN,
    count_parameters,
    load_state_strict,
    state_dict_sha256,
)
from liploc_ros.preprocess.config import PreprocessConfig

FORMAT_NAME = "liploc_ros.model"
FORMAT_VERSION = 1
_REQUIRED_KEYS = ("format", "format_version", "model_config", "preprocess_config", "sha256")
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode) with everything needed to feed it."""

    model: LipLocModel
    model_config: ModelConfig
    preprocess: PreprocessConfig
    #: 16 hex digits identifying the weights (maps store it)
    fingerprint: str
    #: the full SHA-256 of the weights
    sha256: str
    #: what the file said about itself: format version, training info, source, variant
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def embed_dim(self) -> int:
        return self.model_config.embed_dim

    @property
    def normalize(self) -> bool:
        return self.model_config.normalize


def save_model(
    path: str | Path,
    model: LipLocModel,
    preprocess: PreprocessConfig | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write ``model`` atomically to ``path``; returns its fingerprint.

    ``preprocess`` defaults to the one the model was built with; a different one may change
    only what does not change the network (the LiDAR sensor, the normalisation), not the
    input sizes the backbones were built for. ``extra`` is free-form JSON training info.
    """
    path = Path(path)
    preprocess = model.preprocess if preprocess is None else preprocess
    built = model.preprocess
    if (preprocess.camera.image_size, preprocess.lidar_image_size) != (
        built.camera.image_size,
        built.lidar_image_size,
    ):
        raise CheckpointError(
            f"cannot save {path}: the preprocessing's input sizes "
            f"({preprocess.camera.image_size}, {preprocess.lidar_image_size}) differ from those "
            f"the model was built for ({built.camera.image_size}, {built.lidar_image_size})"
        )
    try:
        training = json.dumps(dict(extra or {}), sort_keys=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot save {path}: training info is not JSON: {err}") from err
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    sha256 = state_dict_sha256(tensors)
    config = model.config
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model_config": json.dumps(to_dict(config), sort_keys=True),
        "preprocess_config": json.dumps(to_dict(preprocess), sort_keys=True),
        "embed_dim": str(config.embed_dim),
        "normalize": json.dumps(config.normalize),
        "sha256": sha256,
        "fingerprint": sha256[:SHORT_FINGERPRINT_LEN],
        "training": training,
        "liploc_ros_version": __version__,
    }
    try:
        data = safetensors_save(tensors, metadata=metadata)
        write_bytes_atomic(path, data, fsync=True)
    except (OSError, SafetensorError, ValueError) as err:
        raise CheckpointError(f"cannot write model file {path}: {err}") from err
    return sha256[:SHORT_FINGERPRINT_LEN]


def _read_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The safetensors header (tensor name -> dtype/shape/offsets) and metadata of ``path``,
    after checking that the file is exactly as long as the header says."""
    if not path.exists():
        raise CheckpointError(f"model file {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"model file {path} is not a regular file")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            raw = handle.read(length) if 2 <= length <= _MAX_HEADER_BYTES else b""
    except OSError as err:
        raise CheckpointError(f"cannot read model file {path}: {err.strerror or err}") from err
    if length < 2 or length > _MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} is not a safetensors model file (no valid header)")
    if len(raw) < length:
        raise CheckpointError(
            f"{path} is truncated or not a safetensors file: its header claims {length} bytes, "
            f"the file has {size}"
        )
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path} is not a safetensors model file (header is not JSON)"
        ) from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors model file (header is not a map)")
    metadata = header.pop("__metadata__", None) or {}
    end = 0
    for name, entry in header.items():
        try:
            _, stop = entry["data_offsets"]
            end = max(end, int(stop))
            _ = entry["dtype"], list(entry["shape"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: corrupt header entry for tensor {name!r}") from err
    expected = 8 + length + end
    if size < expected:
        raise CheckpointError(
            f"{path} is truncated: the header describes {expected} bytes, the file has {size}"
        )
    if size > expected:
        raise CheckpointError(f"{path} is corrupt: {size - expected} bytes follow the last tensor")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: corrupt metadata (not a map)")
    return header, metadata


def _parse_metadata(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    """Checked metadata: format and version, configs as dataclasses, training info."""
    if "format" not in metadata:
        raise CheckpointError(
            f"{path} has no liploc_ros metadata: not a liploc model file (an authors' .pth "
            "must be converted first: liploc convert-checkpoint)"
        )
    if metadata["format"] != FORMAT_NAME:
        raise CheckpointError(
            f"{path} holds format {metadata['format']!r}, not a liploc model ({FORMAT_NAME!r})"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in metadata]
    if missing:
        raise CheckpointError(f"{path}: missing metadata key(s): {', '.join(missing)}")
    try:
        version = int(metadata["format_version"])
    except ValueError as err:
        raise CheckpointError(
            f"{path}: invalid format_version {metadata['format_version']!r}"
        ) from err
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: model format version {version} is newer than this liploc_ros "
            f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade liploc_ros"
        )
    if version < 1:
        raise CheckpointError(f"{path}: invalid format_version {version}")
    try:
        model_config = from_dict(ModelConfig, json.loads(metadata["model_config"]))
        preprocess = from_dict(PreprocessConfig, json.loads(metadata["preprocess_config"]))
        training = json.loads(metadata.get("training", "{}"))
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: invalid configuration in the metadata: {err}") from err
    sha256 = metadata["sha256"]
    return {
        "format_version": version,
        "model_config": model_config,
        "preprocess": preprocess,
        "sha256": sha256,
        "fingerprint": sha256[:SHORT_FINGERPRINT_LEN],
        "training": training,
        "liploc_ros_version": metadata.get("liploc_ros_version"),
    }


def load_model(
    path: str | Path, *, device: str | torch.device = "cpu", verify: bool = True
) -> LoadedModel:
    """Load a liploc model file onto ``device`` in eval mode.

    ``verify`` recomputes the weights' SHA-256 and refuses a file whose weights changed
    since they were written (a flipped bit, a bad copy).
    """
    path = Path(path)
    _, raw_meta = _read_header(path)
    meta = _parse_metadata(path, raw_meta)
    target = resolve_device(device)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read the weights: {err}") from err
    if verify:
        actual = state_dict_sha256(state)
        if actual != meta["sha256"]:
            raise CheckpointError(
                f"{path} is corrupt: the weights' checksum {actual[:16]}... does not match the "
                f"one recorded when it was written ({meta['sha256'][:16]}...)"
            )
    model = create_empty_model(meta["model_config"], meta["preprocess"])
    load_state_strict(
        model, state, str(path), f"the model its metadata describes ({meta['model_config'].name})"
    )
    model.to(target).eval()
    return LoadedModel(
        model=model,
        model_config=meta["model_config"],
        preprocess=meta["preprocess"],
        fingerprint=meta["fingerprint"],
        sha256=meta["sha256"],
        metadata={
            "source": "liploc",
            "format_version": meta["format_version"],
            "training": meta["training"],
            "liploc_ros_version": meta["liploc_ros_version"],
        },
        path=path,
    )


def wrap_model(model: LipLocModel, *, metadata: Mapping[str, Any] | None = None) -> LoadedModel:
    """A model held in memory (fresh or being trained) in the form the rest of the package
    takes, with its fingerprint computed as if it had been saved."""
    sha256 = state_dict_sha256(model)
    return LoadedModel(
        model=model.eval(),
        model_config=model.config,
        preprocess=model.preprocess,
        fingerprint=sha256[:SHORT_FINGERPRINT_LEN],
        sha256=sha256,
        metadata={"source": "memory", **dict(metadata or {})},
    )


def read_model_info(path: str | Path) -> dict[str, Any]:
    """What a model file says about itself, from its header only (no weights are read)."""
    path = Path(path)
    header, raw_meta = _read_header(path)
    meta = _parse_metadata(path, raw_meta)
    return {
        "path": str(path),
        "format": FORMAT_NAME,
        "format_version": meta["format_version"],
        "model_config": to_dict(meta["model_config"]),
        "preprocess": to_dict(meta["preprocess"]),
        "embed_dim": meta["model_config"].embed_dim,
        "normalize": meta["model_config"].normalize,
        "fingerprint": meta["fingerprint"],
        "sha256": meta["sha256"],
        "num_parameters": count_parameters({k: v["shape"] for k, v in header.items()}),
        "num_tensors": len(header),
        "file_bytes": path.stat().st_size,
        "training": meta["training"],
        "liploc_ros_version": meta["liploc_ros_version"],
    }
