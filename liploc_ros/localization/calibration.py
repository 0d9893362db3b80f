"""A model's scores on a map, measured on camera frames whose poses are known: the
calibration every score threshold of the localizers comes from.

A frame's standardised score z (:mod:`~liploc_ros.localization.evidence`) is sampled twice:

- **match**: at the entries that show the frame's place, facing the camera's heading
  (within 45 degrees), in bands of distance from the frame (:data:`BAND_EDGES_M`, up to
  :data:`MATCH_RADIUS_M`): an entry seen from a few metres aside scores lower, and the
  filter weighs a particle by its distance to the entry that explains it;
- **null**: at the entries farther than :data:`NULL_RADIUS_M` from the frame (any heading):
  what "elsewhere" scores, including the look-alikes of a big map.

The log-likelihood ratio of z is their density ratio, a monotone (isotonic) estimate on
bins at the match's quantiles with a half count added to each side (so no bin is
infinitely sure), held constant above the match's 95th percentile (too few true places
score higher to say more). The correlation length is fitted to the
lag-one correlation of the match scores along the drive (frames in time order).

**The map's own drive is optimistic**: its camera saw the scene at the very instant and
from the very spot its LiDAR scanned, in the same light with the same parked cars. So a
frame of the map drive is matched as if it were :data:`SAME_DRIVE_OFFSET_M` farther from
each entry than it is: a band of distances [a, b) is sampled at [a + 1.5, b + 1.5), and
never at its own scan. On the synthetic towns that puts the map drive's scores within
about 0.2 standard deviations of another day's at the same distance. A labelled drive of
another day (``liploc calibrate --queries``) is the better data and needs no such offset.

The result, :class:`ScoreCalibration`, is stored in the map file with the fingerprint of
the model it was measured with; a localizer with another model does not use it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from liploc_ros.errors import MapError
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.evidence_trail import WINDOW_STEPS, calibration_windows
from liploc_ros.localization.gate_check import evidence_scale
from liploc_ros.localization.score_samples import (
    BAND_EDGES_M,
    MATCH_RADIUS_M,
    NULL_RADIUS_M,
    band_samples,
    correlation_length,
    entry_yaw,
    lag_pairs,
    nearest_match_series,
    null_scores,
    null_subset,
    pair_scores,
    ratio_table,
)
from liploc_ros.localization.scores import embedding_stats
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.mapdb import MapDatabase

__all__ = [
    "BAND_EDGES_M",
    "MATCH_RADIUS_M",
    "NULL_RADIUS_M",
    "SAME_DRIVE_OFFSET_M",
    "LabelledDrive",
    "ScoreCalibration",
    "calibrate",
]

#: a frame of the map's own drive is matched with entries at least this far away (m)
SAME_DRIVE_OFFSET_M = 1.5
#: fewest matched frames a calibration is made from
MIN_FRAMES = 20
#: seed of the odometry simulated for a drive without any
_ODOMETRY_SEED = 0
#: the gate's floors together stop at most this share of the true place's frames: half of it
#: the frame floor's, the rest shared by the windows' (a Bonferroni bound)
_FLOOR_QUANTILE = 0.01
#: a floor this close to the top of the table is at it
_SATURATED = 1e-6


@dataclass(frozen=True)
class ScoreCalibration:
    """What a model's scores mean on one map (see the module docstring)."""

    #: the model measured (a map's localizer uses it only with this model)
    model_fingerprint: str
    #: what the frames were: "map drive" (same drive, offset matches) or "labelled drive"
    method: str
    #: the frames' source, for people
    source: str
    frames: int
    match_samples: int
    null_samples: int
    #: entries of the map it was measured on
    entries: int
    #: the evidence table (see :class:`~liploc_ros.localization.evidence.EvidenceModel`)
    z: tuple[float, ...]
    #: one row per distance band (see :data:`BAND_EDGES_M`)
    log_ratio: tuple[tuple[float, ...], ...]
    band_edges_m: tuple[float, ...]
    null_mean_ratio_below: tuple[float, ...]
    correlation_length_m: float
    frame_step_m: float
    #: summaries for people (map-info) and checks
    match_mean: float
    match_std: float
    null_mean: float
    null_std: float
    #: per frame, the best score among the null entries: its median and 95th percentile, at
    #: ``null_entries_per_frame`` entries; and its Gumbel fit (location, scale), which moves
    #: by scale * ln(10) for a map ten times bigger
    null_best_median: float
    null_best_p95: float
    null_entries_per_frame: int
    gumbel_location: float
    gumbel_scale: float
    #: the frame floor (None: none) and the factor on the tempered evidence from the
    #: check on wrong tracks (:mod:`~liploc_ros.localization.gate_check`)
    frame_floor: float | None = None
    evidence_scale: float = 1.0
    #: the floors of the evidence summed over the last few frame steps
    #: (:mod:`~liploc_ros.localization.evidence_trail`; empty: none, a calibration before them)
    window_floors: tuple[float, ...] = ()
    #: the check's figures (empty: not run)
    check: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def evidence(self) -> EvidenceModel:
        return EvidenceModel(
            z=np.asarray(self.z),
            log_ratio=np.asarray(self.log_ratio),
            band_edges_m=np.asarray(self.band_edges_m),
            correlation_length_m=self.correlation_length_m,
            frame_step_m=self.frame_step_m,
            null_mean_ratio_below=np.asarray(self.null_mean_ratio_below),
            scale=self.evidence_scale,
            frame_floor=-math.inf if self.frame_floor is None else self.frame_floor,
            window_floors=self.window_floors,
        )

    def separates(self) -> bool:
        """Whether true places score above elsewhere at all (a random model does not)."""
        return bool(np.max(np.asarray(self.log_ratio)[0]) > 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ScoreCalibration:
        """From a map header; MapError when it is not a calibration."""
        if not isinstance(data, dict):
            raise MapError(f"calibration must be a mapping, not {type(data).__name__}")
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MapError(f"calibration: unknown key(s) {', '.join(unknown)}")
        try:
            values = dict(data)
            for key in ("z", "band_edges_m", "null_mean_ratio_below", "window_floors"):
                if key in values:
                    values[key] = tuple(float(v) for v in values[key])
            values["log_ratio"] = tuple(
                tuple(float(v) for v in row) for row in values["log_ratio"]
            )
            out = cls(**values)
            out.evidence()  # validates the table
        except (TypeError, ValueError, KeyError) as err:
            raise MapError(f"calibration: {err}") from err
        return out

    def describe(self) -> list[str]:
        """Lines for ``liploc map-info`` and logs."""
        lines = [
            f"calibration: {self.method}, {self.frames} frames of {self.source} "
            f"(model {self.model_fingerprint}, {self.created or 'undated'})",
            f"  true place z {self.match_mean:.2f} +- {self.match_std:.2f} "
            f"({self.match_samples} frames); elsewhere z {self.null_mean:.2f} +- "
            f"{self.null_std:.2f} ({self.null_samples} scores)",
            f"  best of {self.null_entries_per_frame} entries elsewhere: z "
            f"{self.null_best_median:.2f} (median), {self.null_best_p95:.2f} (95th pct); on a "
            f"map 10x bigger about {self.null_best_median + self.gumbel_scale * math.log(10):.2f}",
            f"  log-likelihood ratio at the place {min(self.log_ratio[0]):+.2f} .. "
            f"{max(self.log_ratio[0]):+.2f} (z {self.z[0]:.2f} .. {self.z[-1]:.2f}), "
            f"{len(self.log_ratio)} distance bands; scores decorrelate over "
            f"{self.correlation_length_m:.1f} m",
            f"  evidence scale {self.evidence_scale:.2f} (no wrong track gathers more than a "
            "likelihood ratio allows); a frame scoring below "
            + ("-inf" if self.frame_floor is None else f"{self.frame_floor:+.2f}")
            + " at the tracked place gets no fix",
        ]
        if self.window_floors:
            lines.append(
                "  nor one after which the last "
                + ", ".join(
                    f"{k} frame steps sum below {v:+.2f}"
                    for k, v in zip(WINDOW_STEPS, self.window_floors, strict=True)
                )
            )
        if not self.separates():
            lines.append(
                "  this model's scores do not tell places apart: no fix will be published"
            )
        if self.check:
            lines.append(
                "  gate check on these frames: "
                + ", ".join(f"{k} {v}" for k, v in self.check.items())
            )
        return lines


@dataclass(frozen=True)
class LabelledDrive:
    """Camera frames of a drive with their poses, in time order: what a calibration is
    measured on."""

    #: (Q, D) the frames' camera embeddings
    queries: np.ndarray
    #: (Q, 4, 4) T_map_lidar of each frame, in the map's frame (non-finite: unknown)
    truth: np.ndarray
    #: (Q, 4, 4) odometry poses (T_odom_lidar) or None (then simulated from ``truth``)
    odometry: np.ndarray | None = None
    name: str = ""

    def usable(self) -> LabelledDrive:
        """The frames with a finite pose and embedding (their order kept)."""
        q = np.asarray(self.queries, np.float32)
        t = np.asarray(self.truth, np.float64)
        if q.ndim != 2 or t.shape != (len(q), 4, 4):
            raise MapError(f"calibration: {q.shape} queries with {t.shape} poses ({self.name})")
        keep = np.isfinite(t).reshape(len(t), -1).all(axis=1) & np.isfinite(q).all(axis=1)
        odom = None if self.odometry is None else np.asarray(self.odometry, np.float64)[keep]
        return LabelledDrive(q[keep], t[keep], odom, self.name)


def calibrate(
    database: MapDatabase,
    drives: Sequence[LabelledDrive],
    *,
    model_fingerprint: str,
    same_drive: bool,
    config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG,
) -> ScoreCalibration:
    """Measure ``database``'s scores of the frames of ``drives`` and the sequence filter's
    acquisition bar on them (:mod:`~liploc_ros.localization.gate_check`, with ``config``).
    ``same_drive``: the drives are the map's own (their matches are offset, see the module
    docstring). MapError when fewer than :data:`MIN_FRAMES` frames have a place on the map,
    or the map is too small to hold elsewhere."""
    used = [d.usable() for d in drives]
    used = [d for d in used if len(d.queries)]
    dim = database.dim
    if not used or any(d.queries.shape[1] != dim for d in used):
        raise MapError(f"calibration: no frames, or frames not {dim}-d like the map's entries")
    mean, cov = embedding_stats(np.asarray(database.embeddings))
    xy = np.asarray(database.positions[:, :2], np.float64)
    yaw = entry_yaw(np.asarray(database.orientations, np.float64))
    tree = cKDTree(xy)
    emb = np.asarray(database.embeddings, np.float32)
    offset = SAME_DRIVE_OFFSET_M if same_drive else 0.0
    null_rows = null_subset(len(xy))
    band_z: list[list[np.ndarray]] = [[] for _ in range(len(BAND_EDGES_M) + 1)]
    nulls, bests, lags, steps, places = [], [], [], [], []
    matched = 0
    for d in used:
        bands = band_samples(tree, yaw, d.truth, offset)
        for b, (_, pairs) in enumerate(bands):
            band_z[b].append(pair_scores(d.queries, emb, pairs, mean, cov))
        frames, z_place = nearest_match_series([p for _, p in bands], [z[-1] for z in band_z])
        matched += len(frames)
        step, pairs = lag_pairs(d.truth[frames], z_place)
        steps.append(step)
        lags.append(pairs)
        places.append((z_place, d.truth[frames, :2, 3]))
        z_null, best = null_scores(d.queries, d.truth, xy, emb, null_rows, mean, cov)
        nulls.append(z_null)
        bests.append(best[np.isfinite(best)])
    if matched < MIN_FRAMES:
        raise MapError(
            f"calibration: only {matched} of {sum(len(d.queries) for d in used)} frames lie "
            f"within {BAND_EDGES_M[0] + offset:g} m of a map entry facing their way (need "
            f"{MIN_FRAMES}): are the frames' poses in the map's frame?"
        )
    z_null = np.concatenate(nulls)
    if z_null.size < 10 * MIN_FRAMES:
        raise MapError(
            f"calibration: the map reaches only {z_null.size} scores farther than "
            f"{NULL_RADIUS_M:g} m from the frames: a map this small cannot be calibrated"
        )
    z_bands = [np.concatenate(zs) for zs in band_z]
    grid, llr, below = ratio_table(z_bands, z_null)
    step = float(np.median(steps))
    length = correlation_length(np.concatenate(lags), step)
    evidence = EvidenceModel(grid, llr, length, step, below, np.asarray(BAND_EDGES_M))
    z_match = z_bands[0]
    floor, windows = gate_floors(evidence, places)
    evidence = dataclasses.replace(evidence, frame_floor=floor, window_floors=windows)
    scale, check = evidence_scale(
        database, evidence, [(d.queries, d.truth) for d in used], mean, cov, config
    )
    best = np.concatenate(bests)
    beta = float(best.std()) * math.sqrt(6.0) / math.pi
    return ScoreCalibration(
        model_fingerprint=model_fingerprint,
        method="map drive" if same_drive else "labelled drive",
        source=", ".join(d.name or "unnamed" for d in used),
        frames=int(sum(len(d.queries) for d in used)),
        match_samples=matched,
        null_samples=int(z_null.size),
        entries=len(database),
        z=tuple(float(v) for v in grid),
        log_ratio=tuple(tuple(float(v) for v in row) for row in llr),
        band_edges_m=tuple(float(v) for v in BAND_EDGES_M),
        null_mean_ratio_below=tuple(float(v) for v in below),
        correlation_length_m=length,
        frame_step_m=step,
        match_mean=float(z_match.mean()),
        match_std=float(z_match.std()),
        null_mean=float(z_null.mean()),
        null_std=float(z_null.std()),
        null_best_median=float(np.median(best)),
        null_best_p95=float(np.percentile(best, 95)),
        null_entries_per_frame=len(null_rows),
        gumbel_location=float(best.mean() - 0.5772156649 * beta),
        gumbel_scale=beta,
        frame_floor=floor if math.isfinite(floor) else None,
        evidence_scale=scale,
        window_floors=windows,
        check=check,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def gate_floors(
    evidence: EvidenceModel, drives: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, tuple[float, ...]]:
    """The fix gate's floors: quantiles of the true place's evidence per frame (at the
    nearest entry facing its heading) and of its sums over the windows of
    :data:`~liploc_ros.localization.evidence_trail.WINDOW_STEPS` along each drive (its matched
    frames' z-scores and (F, 2) positions, in time order), which together stop at most
    :data:`_FLOOR_QUANTILE` of the true place's frames. A floor at the top of the table
    (the true place never scored below where the table saturates) cannot tell a poor frame:
    none (-inf; no window floors)."""
    singles, sums = [], []
    top = float(np.max(evidence.log_ratio[0]))
    for z_place, positions in drives:
        if len(z_place) == 0:
            continue
        values = evidence.llr(z_place)
        singles.append(values)
        sums.append(calibration_windows(values, positions, evidence.frame_step_m))
    floor = float(np.quantile(np.concatenate(singles), _FLOOR_QUANTILE / 2.0))
    floor = -math.inf if floor >= top - _SATURATED else floor
    table = np.concatenate(sums)
    windows = []
    for k, column in zip(WINDOW_STEPS, table.T, strict=True):
        sums_at = column[np.isfinite(column)]
        if len(sums_at) < MIN_FRAMES:
            return floor, ()
        value = float(np.quantile(sums_at, _FLOOR_QUANTILE / 2.0 / len(WINDOW_STEPS)))
        if value >= k * top - _SATURATED:
            return floor, ()
        windows.append(value)
    return floor, tuple(windows)


#: what a map without a calibration of its model's gets: the evidence of a weak model whose
#: true places score 2 standard deviations above the map's mean (the null's 98th
#: percentile), with a unit spread, decorrelating over 10 m. Few fixes, slowly: calibrate
#: the map (``liploc calibrate``) to replace it.
CONSERVATIVE_MATCH_Z = 2.0
CONSERVATIVE_CORRELATION_M = 10.0


def conservative_evidence() -> EvidenceModel:
    """The evidence model of an uncalibrated map (see :data:`CONSERVATIVE_MATCH_Z`): the log
    ratio of N(2, 1) to N(0, 1), ``2 z - 2``, clamped to z in [0, 2]."""
    z = np.linspace(0.0, CONSERVATIVE_MATCH_Z, 9)
    llr = CONSERVATIVE_MATCH_Z * z - CONSERVATIVE_MATCH_Z**2 / 2.0
    # E[exp(2z - 2) | z <= t] for z ~ N(0, 1) below the grid's z, numerically
    grid = np.linspace(-6.0, CONSERVATIVE_MATCH_Z, 4001)
    density = np.exp(-0.5 * grid**2)
    ratio = np.exp(np.interp(grid, z, llr))
    mean = np.cumsum(density * ratio) / np.cumsum(density)
    below = np.interp(z, grid, mean)
    return EvidenceModel(z, llr, CONSERVATIVE_CORRELATION_M, 1.0, below)


def map_calibration(database: MapDatabase) -> ScoreCalibration | None:
    """The calibration stored with ``database`` (None: none); MapError if it is invalid."""
    data = database.calibration
    if data is None:
        return None
    try:
        return ScoreCalibration.from_dict(data)
    except MapError as err:
        raise MapError(f"map {database.path or ''}: {err}") from err


def evidence_for(database: MapDatabase) -> tuple[EvidenceModel, str]:
    """The evidence model of ``database``'s calibration, and "" ; or the conservative one
    and why (no calibration, or one measured with another model): a warning to show."""
    calibration = map_calibration(database)
    fingerprint = database.info.model_fingerprint
    if calibration is None:
        return conservative_evidence(), (
            f"map {database.path or ''} has no score calibration: conservative settings (few "
            "fixes, late); calibrate it with `liploc calibrate --map MAP --model MODEL "
            "--queries SOURCE` or rebuild it from a source with camera frames"
        )
    if calibration.model_fingerprint != fingerprint:
        return conservative_evidence(), (
            f"map {database.path or ''} holds a calibration of model "
            f"{calibration.model_fingerprint}, not of its own model {fingerprint}: "
            "conservative settings; recalibrate it with `liploc calibrate`"
        )
    return calibration.evidence(), ""


def calibration_summary(database: MapDatabase) -> str:
    """One line: the map's score calibration, for logs, /diagnostics and summary.json."""
    cal = map_calibration(database)
    if cal is None:
        return "none"
    return (
        f"{cal.method}, {cal.frames} frames of {cal.source}: true place z {cal.match_mean:.2f}"
        f" +- {cal.match_std:.2f}, elsewhere best {cal.null_best_median:.2f}; evidence scale "
        f"{cal.evidence_scale:.2f}"
    )
