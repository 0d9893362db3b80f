"""A model and a map -> the localizer of a mode: the one place a localizer is assembled.

``liploc localize``, the localizer node and the demo all call :func:`open_localizer`, so a
mode, a model file kind (:func:`liploc_ros.model.model_file.load_embedder`: a liploc
.safetensors or an authors' .pth, ``normalize``, ``sensor``) or a check added here reaches
every one of them. The modes:

- ``single``: every frame alone, a :class:`~liploc_ros.localization.localizer.Localizer`;
- ``sequence``: the frames in time order through the sequence filter with odometry, a
  :class:`~liploc_ros.localization.tracking.TrackingLocalizer` around that Localizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig, LocalizerMode
from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.localization.tracking import TrackingLocalizer
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model.backends import DEFAULT_BACKEND
from liploc_ros.model.inference import Embedder
from liploc_ros.model.liploc_file import LoadedModel
from liploc_ros.model.model_file import load_embedder

__all__ = [
    "MODES",
    "AnyLocalizer",
    "LocalizerMode",
    "check_mode",
    "frame_localizer",
    "open_localizer",
    "with_mode",
]

#: the localizer modes (``mode`` of the node, ``liploc localize`` and ``liploc eval``)
MODES: tuple[str, ...] = LocalizerMode.values()
#: what :func:`open_localizer` returns, by mode
AnyLocalizer: TypeAlias = Localizer | TrackingLocalizer


def check_mode(mode: str) -> LocalizerMode:
    """``mode`` as a :class:`LocalizerMode`; a ConfigError naming the modes if it is none."""
    return LocalizerMode.parse(mode, "mode")


def with_mode(
    localizer: Localizer, mode: str, sequence: SequenceConfig | None = None
) -> AnyLocalizer:
    """``localizer`` as ``mode`` runs it: alone, or in front of the sequence filter
    (``sequence``: its settings, None for the defaults)."""
    if check_mode(mode) == "sequence":
        return TrackingLocalizer(localizer, sequence or DEFAULT_SEQUENCE_CONFIG)
    return localizer


def frame_localizer(localizer: AnyLocalizer) -> Localizer:
    """The single-frame :class:`Localizer` of either mode (its embedder, map, latency)."""
    return localizer.localizer if isinstance(localizer, TrackingLocalizer) else localizer


def open_localizer(
    model: str | Path | LoadedModel | Embedder,
    database: str | Path | MapDatabase,
    *,
    mode: str = "sequence",
    config: LocalizerConfig = DEFAULT_CONFIG,
    sequence: SequenceConfig | None = None,
    device: str = "auto",
    precision: str = "auto",
    backend: str = DEFAULT_BACKEND,
    batch_size: int = 1,
    normalize: bool | None = None,
    sensor: str | None = None,
) -> AnyLocalizer:
    """The ``mode`` localizer of ``model`` in ``database`` (not warmed up); ``config``: the
    single-frame settings, ``sequence``: the filter's (sequence mode; None: the defaults).

    ``model``: any model file, a loaded model, or an :class:`Embedder` used as it is (the
    device, precision, backend, batch size and model options then do not apply). The mode is
    checked before anything is loaded; the map is loaded before the model, whose mismatch
    with it is a :class:`~liploc_ros.errors.ModelMismatchError`.
    """
    check_mode(mode)
    if not isinstance(database, MapDatabase):
        database = MapDatabase.load(database)
    if isinstance(model, Embedder):
        embedder = model
    else:
        embedder = load_embedder(
            model, device=device, precision=precision, batch_size=batch_size, backend=backend,
            normalize=normalize, sensor=sensor,
        )  # fmt: skip
    return with_mode(Localizer(embedder, database, config), mode, sequence)
