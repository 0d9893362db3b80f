"""Dataset specs of training and evaluation configs -> frame sources.

A thin layer over :func:`liploc_ros.datasets.registry.open_source` (``kitti:ROOT:SEQ``,
``kitti360:ROOT:DRIVE``, ``bag:PATH``, ``synthetic:SEED:TRAVERSAL:FRAMES``) that first
replaces ``${VAR}`` from the environment, so that shipped configs can say
``kitti:${KITTI_ROOT}:08``.
"""

from __future__ import annotations

from liploc_ros.datasets.base import FrameSource
from liploc_ros.datasets.registry import open_source as _registry_open
from liploc_ros.training.config import expand_spec


def open_source(spec: str) -> FrameSource:
    """The frame source a spec names (``${VAR}`` expanded from the environment)."""
    return _registry_open(expand_spec(spec.strip()))
