"""A localization run's figures for summary.json, one module per metric.

A metric is a module in this package with a function ``figures(run: RunData) -> dict``
(names of figures to JSON values). :func:`run_metrics` finds every module here
(``pkgutil``, in name order; a name starting with ``_`` is not a metric) and merges their
figures, so that a new metric is that one file: ``liploc localize``, ``liploc eval`` and
the demo's summary pick it up with no other edit. Two metrics giving the same figure name
is an error, never a silent overwrite.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from liploc_ros.errors import LiplocError

if TYPE_CHECKING:
    from liploc_ros.localization.estimate import PoseEstimate
    from liploc_ros.localization.run import FrameRecord
    from liploc_ros.mapdb import MapDatabase

__all__ = ["MetricError", "RunData", "metric_modules", "run_metrics"]


class MetricError(LiplocError):
    """A metric module that cannot be used: no ``figures``, or a figure name taken."""


@dataclass(frozen=True)
class RunData:
    """What a metric may read of a run."""

    #: one per frame, in order
    records: Sequence[FrameRecord]
    #: their estimates (``records[i].estimate``)
    estimates: Sequence[PoseEstimate]
    #: (N, 4, 4) true LiDAR poses in the map frame; NaN where a frame has none
    truth: np.ndarray
    #: the map the run localized in
    database: MapDatabase
    #: a fix or a retrieval is right within this ground distance (m)
    threshold_m: float


def metric_modules() -> list[ModuleType]:
    """Every metric module of this package, in name order."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    for module in modules:
        if not callable(getattr(module, "figures", None)):
            raise MetricError(f"metric module {module.__name__} has no figures(run) function")
    return modules


def run_metrics(run: RunData) -> dict[str, Any]:
    """The figures of every metric module, merged (a name given twice is an error)."""
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for module in metric_modules():
        figures = module.figures(run)
        for name, value in figures.items():
            if name in owner:
                raise MetricError(
                    f"metric {module.__name__} gives '{name}', which {owner[name]} gives too"
                )
            owner[name] = module.__name__
            out[name] = value
    return out
