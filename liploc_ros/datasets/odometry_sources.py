"""Simulated odometry for sources that record none (KITTI layouts), and a source adapter.

KITTI and KITTI-360 folders hold ground-truth poses but no odometry, so their readers derive
one from the poses with :func:`~liploc_ros.datasets.odometry.simulate_odometry`, seeded by
the dataset and sequence name (the same folder always gives the same drift, two sequences
drift differently) and labelled ``Frame.meta["odometry"] = "simulated"``.

:class:`WithOdometry` gives any indexed source another odometry (or none): ``liploc synth``
renders a traversal once and copies it into further layouts through a reader, and the copies
must carry the traversal's odometry, made with the error model asked for on the command line.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator

import numpy as np

from liploc_ros.datasets.base import Frame, IndexedSource
from liploc_ros.datasets.odometry import OdometryErrorModel, simulate_odometry
from liploc_ros.errors import DatasetError

__all__ = ["WithOdometry", "describe_model", "simulated_from_poses", "stable_seed"]


def stable_seed(*parts: str) -> tuple[int, ...]:
    """A seed from names, equal across runs and machines (Python's ``hash`` of a str is not)."""
    return tuple(zlib.crc32(part.encode("utf-8")) for part in parts)


def describe_model(model: OdometryErrorModel) -> str:
    """One line for logs, summaries and bag metadata."""
    return (
        f"scale error +-{100 * model.scale_error:g}%, yaw drift up to "
        f"{model.yaw_drift_deg_per_m:g} deg/m, noise {100 * model.translation_noise:g}% of "
        f"each step and {model.yaw_noise_deg:g} deg per step"
    )


def simulated_from_poses(
    poses: np.ndarray | None, seed: tuple[int, ...], model: OdometryErrorModel | None
) -> np.ndarray | None:
    """(N, 4, 4) ``T_odom_lidar`` simulated along ``poses``; NaN rows where a frame has no
    pose (nothing tells its motion); ``None`` without poses, without any finite pose, or
    without a model."""
    if poses is None or model is None:
        return None
    poses = np.asarray(poses, np.float64)
    posed = np.isfinite(poses).all(axis=(1, 2))
    if not posed.any():
        return None
    odometry = simulate_odometry(poses, seed, model)
    odometry[~posed] = np.nan
    odometry.setflags(write=False)
    return odometry


class WithOdometry(IndexedSource):
    """``source`` whose frames carry ``odometry`` (N, 4, 4) instead of their own (``None``:
    no odometry at all), labelled ``label`` in ``Frame.meta["odometry"]``."""

    def __init__(
        self,
        source: IndexedSource,
        odometry: np.ndarray | None,
        *,
        label: str = "simulated",
        model: str | None = None,
    ) -> None:
        if odometry is not None:
            odometry = np.asarray(odometry, np.float64)
            if odometry.shape != (len(source), 4, 4):
                raise DatasetError(
                    f"{source.name}: odometry of shape {odometry.shape} for {len(source)} frames"
                )
        self.source = source
        self.name = source.name
        self.calibration = source.calibration
        self._odometry = odometry
        self.label = label
        self.model = model

    def __len__(self) -> int:
        return len(self.source)

    @property
    def stamps(self) -> np.ndarray:
        return self.source.stamps

    @property
    def poses(self) -> np.ndarray | None:
        return self.source.poses

    @property
    def odometry(self) -> np.ndarray | None:
        return None if self._odometry is None else self._odometry.copy()

    def _patch(self, frame: Frame) -> Frame:
        meta = {k: v for k, v in frame.meta.items() if k not in ("odometry", "odometry_model")}
        odometry = None
        if self._odometry is not None:
            row = self._odometry[frame.index]
            if np.isfinite(row).all():
                odometry = row.copy()
                meta["odometry"] = self.label
                if self.model:
                    meta["odometry_model"] = self.model
        return dataclasses.replace(frame, odometry=odometry, meta=meta)

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        return self._patch(self.source.frame(index, image=image, points=points))

    def iter_frames(self, *, image: bool = True, points: bool = True) -> Iterator[Frame]:
        # the wrapped source's own iteration (it may prefetch or render in parallel)
        for frame in self.source.iter_frames(image=image, points=points):
            yield self._patch(frame)
