"""Inference backends: which runtime runs the two encoders (PyTorch, OpenVINO, ONNX Runtime),
and ``auto``, which measures them and picks the fastest verified one (:mod:`.auto`).

A backend is one module in this package with a ``create(loaded, *, device, precision,
cache_dir, sides, calibration)`` function that returns an
:class:`~liploc_ros.model.backends.base.EncoderRunner` and a ``native_precisions(device)``
function (what ``auto`` may pick from it), plus one entry in :data:`BACKENDS`. A backend that
runs INT8 also gives ``int8_recipe`` / ``has_cached_int8`` (see :mod:`.int8`). Modules are
imported only when their backend is chosen, so an optional runtime is needed only by whoever
uses it, and a missing one is an error naming the pip extra that installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from liploc_ros.errors import BackendUnavailableError, ConfigError
from liploc_ros.model.backends.base import SIDES, EncoderGraph, EncoderRunner, Side
from liploc_ros.model.backends.calibration import CalibrationSet, as_calibration_set
from liploc_ros.model.liploc_file import LoadedModel


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what it needs installed."""

    #: the module with its ``create`` function
    module: str
    #: import names that must be installed
    packages: tuple[str, ...]
    #: the liploc_ros pip extra that installs them (None: always there)
    extra: str | None
    #: one line for --help and docs
    summary: str


#: the name of the automatic choice
AUTO = "auto"
BACKENDS: dict[str, BackendSpec] = {
    AUTO: BackendSpec(
        "liploc_ros.model.backends.auto",
        (),
        None,
        "the fastest verified configuration for this model on this machine, measured once",
    ),
    "torch": BackendSpec(
        "liploc_ros.model.backends.torch_backend", (), None, "PyTorch (CPU or CUDA)"
    ),
    "openvino": BackendSpec(
        "liploc_ros.model.backends.openvino_backend",
        ("openvino",),
        "openvino",
        "OpenVINO (CPU; bf16 on CPUs with AMX / AVX512-BF16, INT8 via NNCF)",
    ),
    "onnxruntime": BackendSpec(
        "liploc_ros.model.backends.onnxruntime_backend",
        ("onnxruntime", "onnx", "onnxscript"),
        "onnx",
        "ONNX Runtime (CPU fp32 / INT8; CUDA and TensorRT with onnxruntime-gpu)",
    ),
}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
DEFAULT_BACKEND = AUTO


def missing_packages(name: str) -> list[str]:
    """The packages backend ``name`` needs that are not installed."""
    spec = backend_spec(name)
    return [pkg for pkg in spec.packages if importlib.util.find_spec(pkg) is None]


def backend_spec(name: str) -> BackendSpec:
    """The registry entry of ``name``; an unknown name is a ConfigError listing the known."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown inference backend {name!r}; use one of {', '.join(BACKEND_NAMES)}"
        ) from None


def require_packages(what: str, packages: tuple[str, ...], extra: str | None) -> None:
    """Raise BackendUnavailableError naming the pip extra if any of ``packages`` is missing."""
    missing = [pkg for pkg in packages if importlib.util.find_spec(pkg) is None]
    if missing:
        raise BackendUnavailableError(
            f"{what} needs {', '.join(missing)}, which is not installed: "
            f"pip install 'liploc_ros[{extra}]' (or pip install {' '.join(missing)})"
        )


def require_backend(name: str) -> BackendSpec:
    """``name``'s entry, after checking that its packages are installed."""
    spec = backend_spec(name)
    require_packages(f"inference backend {name!r}", spec.packages, spec.extra)
    return spec


def available_backends() -> list[str]:
    """The runtimes (not ``auto``) whose packages are installed here."""
    return [name for name in BACKEND_NAMES if name != AUTO and not missing_packages(name)]


def create_runner(
    name: str,
    loaded: LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    sides: tuple[Side, ...] = SIDES,
    calibration: str | CalibrationSet | None = None,
    batch_size: int = 1,
) -> EncoderRunner:
    """``loaded``'s encoders of ``sides`` ready to run in backend ``name`` (converted and
    cached first where the backend needs a converted model). ``calibration``: a source spec
    or :class:`CalibrationSet` to quantize INT8 on (and verify with); ``batch_size``: the
    batch ``auto`` measures at (capped at its probe batch)."""
    spec = require_backend(name)
    module = importlib.import_module(spec.module)
    options = {"batch_size": batch_size} if name == AUTO else {}
    return module.create(
        loaded,
        device=device,
        precision=precision,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        sides=sides,
        calibration=as_calibration_set(calibration),
        **options,
    )


__all__ = [
    "AUTO",
    "BACKENDS",
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "SIDES",
    "BackendSpec",
    "CalibrationSet",
    "EncoderGraph",
    "EncoderRunner",
    "Side",
    "available_backends",
    "backend_spec",
    "create_runner",
    "missing_packages",
    "require_backend",
    "require_packages",
]
