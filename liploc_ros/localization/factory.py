"""A model and a map -> the localizer of a mode: the one place a localizer is assembled.

``liploc localize``, the localizer node and the demo all call :func:`open_localizer`, so a
mode, a model file kind (:func:`liploc_ros.model.model_file.load_embedder`: a liploc
.safetensors or an authors' .pth, ``normalize``, ``sensor``) or a check added here reaches
every one of them. The modes are :mod:`~liploc_ros.localization.mode_registry`'s; every one
is driven through the same :class:`~liploc_ros.localization.localizer.Localizer`.
"""

from __future__ import annotations

from pathlib import Path

from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.mode import ModeSettings
from liploc_ros.localization.mode_registry import check_mode
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model.backends import DEFAULT_BACKEND
from liploc_ros.model.inference import Embedder
from liploc_ros.model.liploc_file import LoadedModel
from liploc_ros.model.model_file import load_embedder

__all__ = ["open_localizer"]


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
) -> Localizer:
    """The ``mode`` localizer of ``model`` in ``database`` (not warmed up); ``config``: the
    single-frame settings, ``sequence``: the filter's (None: the defaults).

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
    settings = ModeSettings(config, sequence or DEFAULT_SEQUENCE_CONFIG)
    return Localizer(embedder, database, config, mode=mode, settings=settings)
