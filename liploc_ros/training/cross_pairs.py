"""Cross-traversal training pairs: the camera of one drive with the LiDAR of another.

A map is built from one drive, but vehicles come back in the other lane and the other
direction. Same-instant pairs never show the model a camera frame next to a scan taken a
few metres to the side, or facing the other way. A cross pair does: the camera frame of
one drive with the nearest scan (ground-plane distance, within a radius) of another drive
of the same place, its range-image crop turned to where the camera looks, i.e. the
camera's yaw minus the scan's in the map frame (camera and LiDAR share the rig, so the
frames' ``T_map_lidar`` give both).

Everything here is a pure function of the poses and the configuration; which item becomes
a cross pair in which epoch is a pure function of (seed, epoch, item)
(:func:`pick_partner`), as the rest of the data pipeline (:mod:`liploc_ros.training.data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from liploc_ros.datasets.registry import expand_spec, parse_spec
from liploc_ros.errors import ConfigError
from liploc_ros.geometry import wrap_deg, yaw_of

#: salt of the per-item draw that keeps it apart from the shuffle and the augmentation
SALT_CROSS = 0xC055


def place_labels(specs: Sequence[str], groups: Sequence[Sequence[str]] = ()) -> np.ndarray:
    """One integer per spec; specs with the same label are drives of one place (poses in
    one map frame): those of one explicit group, and synthetic specs of one seed not in a
    group. Every other spec is a place of its own."""
    labels = np.full(len(specs), -1, dtype=np.int64)
    keys: dict[object, int] = {}
    where = {spec.strip(): i for i, spec in enumerate(specs)}
    for g, group in enumerate(groups):
        for spec in group:
            if spec.strip() not in where:
                raise ConfigError(f"cross-traversal group: {spec!r} is not a training source")
            labels[where[spec.strip()]] = keys.setdefault(("group", g), len(keys))
    for i, spec in enumerate(specs):
        if labels[i] >= 0:
            continue
        key: object = ("spec", i)
        expanded = expand_spec(spec.strip())
        kind, rest = parse_spec(expanded)
        seed = rest.split(":")[0].strip()
        if kind == "synthetic" and seed.lstrip("-").isdigit():
            key = ("synthetic", int(seed))
        labels[i] = keys.setdefault(key, len(keys))
    return labels


def yaw_deg(poses: np.ndarray) -> np.ndarray:
    """Heading (degrees, counter-clockwise about the map's z) of (N, 4, 4) poses' x axes."""
    return np.degrees(yaw_of(poses))


def choose_heading(
    needed_deg: np.ndarray, headings: Sequence[float], tolerance_deg: float
) -> np.ndarray:
    """Per needed crop heading, the index of the nearest of ``headings`` (on the circle),
    or -1 where even that is more than ``tolerance_deg`` away."""
    needed = np.asarray(needed_deg, dtype=np.float64).reshape(-1)
    have = np.asarray(headings, dtype=np.float64)
    off = np.abs(wrap_deg(needed[:, None] - have[None, :]))
    slot = np.argmin(off, axis=1)
    return np.where(off[np.arange(len(needed)), slot] <= tolerance_deg, slot, -1)


@dataclass(frozen=True)
class CrossPairs:
    """The partner scans of each training item (CSR layout): item ``i``'s candidates are
    entries ``offsets[i]:offsets[i + 1]``, at most one per other drive of its place."""

    offsets: np.ndarray  #: (items + 1,) int64
    sets: np.ndarray  #: (m,) picture set of each candidate scan
    frames: np.ndarray  #: (m,) its frame
    headings: np.ndarray  #: (m,) the cached crop heading (degrees) its LiDAR picture takes
    distances: np.ndarray  #: (m,) ground-plane distance (m) from the camera frame

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def counts(self) -> np.ndarray:
        """(items,) how many partners each item has."""
        return np.diff(self.offsets)

    @property
    def available(self) -> int:
        """Items with at least one partner."""
        return int(np.count_nonzero(self.counts()))


def find_cross_pairs(
    rows: np.ndarray,
    poses: Sequence[np.ndarray | None],
    places: np.ndarray | Sequence[int],
    *,
    radius_m: float,
    headings: Sequence[float],
    tolerance_deg: float,
) -> CrossPairs:
    """For each item of ``rows`` ((set, frame) pairs), the nearest item of each other set
    of its place (``places``: one label per set) within ``radius_m`` of it on the ground
    plane, with the cached heading that scan's crop takes (:func:`choose_heading`); the
    partner scans are among ``rows`` themselves (so no validation scan is trained on).
    Frames without a pose (NaN) neither get nor give a partner."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
    place_of = np.asarray(places)
    if len(place_of) != len(poses):
        raise ConfigError(f"{len(place_of)} place labels for {len(poses)} picture sets")
    items: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for s, set_poses in enumerate(poses):
        if set_poses is None:
            continue
        at = np.flatnonzero(rows[:, 0] == s)
        chosen = np.asarray(set_poses, dtype=np.float64)[rows[at, 1]]
        xy = chosen[:, :2, 3]
        ok = np.isfinite(xy).all(axis=1) & np.isfinite(chosen[:, :2, 0]).all(axis=1)
        items[s] = (at[ok], xy[ok], yaw_deg(chosen[ok]))
    found: list[np.ndarray] = []  # (item, set, frame, slot, distance) columns
    for a, (at_a, xy_a, yaw_a) in items.items():
        for b, (at_b, xy_b, yaw_b) in items.items():
            if a == b or place_of[a] != place_of[b] or not len(at_a) or not len(at_b):
                continue
            dist, nearest = cKDTree(xy_b).query(xy_a, k=1)
            near = np.flatnonzero(dist <= radius_m)
            needed = wrap_deg(yaw_a[near] - yaw_b[nearest[near]])
            slot = choose_heading(needed, headings, tolerance_deg)
            keep = near[slot >= 0]
            found.append(np.stack([
                at_a[keep].astype(np.float64), np.full(len(keep), float(b)),
                rows[at_b[nearest[keep]], 1].astype(np.float64),
                slot[slot >= 0].astype(np.float64), dist[keep],
            ], axis=1))  # fmt: skip
    table = np.concatenate(found) if found else np.zeros((0, 5))
    table = table[np.lexsort((table[:, 1], table[:, 0]))]
    item = table[:, 0].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(item, minlength=len(rows)))])
    return CrossPairs(
        offsets=offsets.astype(np.int64),
        sets=table[:, 1].astype(np.int64),
        frames=table[:, 2].astype(np.int64),
        headings=np.asarray(headings, dtype=np.float64)[table[:, 3].astype(np.int64)],
        distances=table[:, 4].copy(),
    )


def pick_partner(cross: CrossPairs, item: int, *, seed: int, epoch: int, share: float) -> int:
    """Which candidate of ``cross`` item ``item`` trains with in ``epoch`` (an index into
    its arrays), or -1 for its own same-instant scan: with probability ``share`` when it
    has candidates, one of them uniformly; drawn from (seed, epoch, item) alone."""
    start, end = int(cross.offsets[item]), int(cross.offsets[item + 1])
    if share <= 0.0 or end == start:
        return -1
    rng = np.random.default_rng([seed, SALT_CROSS, int(epoch), int(item)])
    if rng.random() >= share:
        return -1
    return start + int(rng.integers(end - start))
