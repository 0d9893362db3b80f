"""INT8 encoders: post-training quantized on the user's frames, verified, cached.

Shared by the backends that run INT8 (OpenVINO through NNCF, ONNX Runtime through its static
QDQ quantizer): each gives an :class:`Int8Recipe` (how to quantize one encoder into a folder,
how to load it, and the settings that shape the result), and this module does the rest:

- the cache folder ``<backend>-int8-<calibration id>[-r7]/<encoder>/`` (``-r7``: built with
  7-bit weights, the overflow fix for CPUs without VNNI), whose manifest key holds the
  model, the calibration (:meth:`CalibrationSet.describe`), the quantizer's settings and
  versions and the acceptance rule, so that a change to any of them builds a new model;
- the build: calibrate, load the result, verify it on the held-out frames
  (:mod:`.acceptance`), and store the verdict beside the graph, passed or not;
- the load: a model whose stored verdict is a refusal raises VerificationError with its
  figures (the caller falls back to fp32), and is not rebuilt until something in its key
  changes;
- without a calibration source, the newest verified INT8 model of this model, backend,
  encoder and CPU class in the cache is used (made by ``liploc export --precision int8``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liploc_ros.errors import BackendError
from liploc_ros.model.backends.acceptance import (
    MIN_COSINE,
    RECALL_RADIUS_M,
    RECALL_TOLERANCE,
    Verification,
    read_verification,
    verify_runner,
    write_verification,
)
from liploc_ros.model.backends.base import EncoderRunner, Side
from liploc_ros.model.backends.cache import (
    MANIFEST,
    cache_folder,
    cached,
    graph_key,
    model_cache_root,
    read_manifest,
    stale_reason,
)
from liploc_ros.model.backends.calibration import CalibrationSet
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

#: the folder of the fp32 reference embeddings, inside the model's cache folder
REFERENCE_FOLDER = "reference"


@dataclass(frozen=True)
class Int8Recipe:
    """How one backend quantizes and loads an encoder."""

    backend: str
    #: ``quantize(folder, loaded, side, calibration inputs)`` writes the INT8 graph there
    quantize: Callable[[Path, LoadedModel, Side, Any], None]
    #: ``load(folder, loaded, side)`` -> a runner of that one encoder
    load: Callable[[Path, LoadedModel, Side], EncoderRunner]
    #: what shapes the result beside the calibration (quantizer, versions, overflow fix)
    settings: dict[str, Any] = field(default_factory=dict)
    #: True: 7-bit weights (the overflow fix of CPUs without VNNI)
    reduced_range: bool = False


@dataclass(frozen=True)
class Int8Model:
    """A loaded INT8 encoder and the verification it passed."""

    runner: EncoderRunner
    verification: Verification
    folder: Path


def _acceptance_rule() -> dict[str, float]:
    return {
        "min_cosine": MIN_COSINE["int8"],
        "recall_tolerance": RECALL_TOLERANCE,
        "radius_m": RECALL_RADIUS_M,
    }


def _key(
    loaded: LoadedModel, recipe: Int8Recipe, side: Side, calibration: dict[str, Any]
) -> dict[str, Any]:
    return graph_key(loaded, recipe.backend, "int8", side=side, calibration=calibration,
                     quantizer=recipe.settings, acceptance=_acceptance_rule())  # fmt: skip


def _suffix(recipe: Int8Recipe) -> str:
    return "-r7" if recipe.reduced_range else ""


def int8_folder(
    loaded: LoadedModel, recipe: Int8Recipe, side: Side, calibration_id: str, root: Path | None
) -> Path:
    variant = f"int8-{calibration_id}{_suffix(recipe)}"
    return cache_folder(loaded, recipe.backend, variant, root, side=side)


def _load(folder: Path, loaded: LoadedModel, recipe: Int8Recipe, side: Side) -> Int8Model:
    result = read_verification(folder)
    if result is None:
        raise BackendError(f"{folder} holds no verification")
    result.raise_if_refused()
    return Int8Model(recipe.load(folder, loaded, side), result, folder)


def build_int8(
    loaded: LoadedModel,
    recipe: Int8Recipe,
    side: Side,
    calibration: CalibrationSet,
    root: Path | None = None,
) -> Int8Model:
    """``side``'s INT8 encoder calibrated on ``calibration``: from the cache, else quantized
    and verified now (a minute or more for a ViT); VerificationError if it was refused."""
    folder = int8_folder(loaded, recipe, side, calibration.id, root)
    references = model_cache_root(loaded, root) / REFERENCE_FOLDER

    def build(tmp: Path) -> None:
        inputs = calibration.calibration_inputs(loaded, side)
        log.info(
            "quantizing the %s encoder to INT8 with %s on %d frames of %s", side,
            recipe.backend, len(inputs), calibration.spec,
        )  # fmt: skip
        recipe.quantize(tmp, loaded, side, inputs)
        runner = recipe.load(tmp, loaded, side)
        write_verification(tmp, verify_runner(runner, side, loaded, calibration, references))

    key = _key(loaded, recipe, side, calibration.describe())
    return cached(folder, key, build, lambda f: _load(f, loaded, recipe, side))


def cached_int8(
    loaded: LoadedModel, recipe: Int8Recipe, side: Side, root: Path | None = None
) -> list[tuple[Path, Verification]]:
    """The INT8 models of ``side`` already in the cache for this model, backend, quantizer
    settings and CPU class, intact, with their verdicts; newest first."""
    prefix = f"{recipe.backend}-int8-"
    base = model_cache_root(loaded, root)
    found = []
    try:
        entries = sorted(base.iterdir()) if base.is_dir() else []
    except OSError:
        entries = []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or name.endswith("-r7") != recipe.reduced_range:
            continue
        folder = entry / side
        manifest = read_manifest(folder)
        if manifest is None or not isinstance(manifest.get("key"), dict):
            continue
        calibration = manifest["key"].get("calibration")
        if not isinstance(calibration, dict):
            continue
        if stale_reason(folder, _key(loaded, recipe, side, calibration)) is not None:
            continue
        try:
            result = read_verification(folder)
        except BackendError:
            continue
        if result is not None:
            found.append((folder, result, os.stat(folder / MANIFEST).st_mtime))
    found.sort(key=lambda item: -item[2])
    return [(folder, result) for folder, result, _ in found]


def load_cached_int8(
    loaded: LoadedModel, recipe: Int8Recipe, side: Side, root: Path | None = None
) -> Int8Model | None:
    """The newest INT8 model of ``side`` in the cache (None: there is none); its refusal,
    if the newest was refused, raises VerificationError with the figures."""
    found = cached_int8(loaded, recipe, side, root)
    if not found:
        return None
    folder, _ = found[0]
    return _load(folder, loaded, recipe, side)


def no_int8_message(loaded: LoadedModel, backend: str) -> str:
    return (
        f"no INT8 model of {loaded.model_config.name} ({loaded.fingerprint}) for {backend} "
        "on this CPU class in the cache: make one with `liploc export MODEL --precision int8 "
        "--calibration SOURCE` (SOURCE: the map's drive, e.g. bag:PATH), or give a "
        "calibration source"
    )
