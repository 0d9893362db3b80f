"""How much a camera frame's score at a map entry says about the vehicle being there.

Raw scores mean nothing across models, so every frame's score at entry e is first
standardised over the whole map (SeqSLAM's contrast enhancement; the statistics are the
map's own, :class:`~liploc_ros.localization.measurement.MapField`):

    z_e = (q . e - q . mu) / sqrt(q^T Sigma q)

A :class:`EvidenceModel` turns z into evidence from a calibration measured on data
(:mod:`~liploc_ros.localization.calibration`), never from numbers chosen here:

- **Log-likelihood ratio** ``log p(z | the camera is d metres from e) - log p(z | it is
  elsewhere)``, a table per band of d (an entry seen from a few metres aside scores lower
  than from its own spot: so the distance tells the lateral position a road map cannot),
  each monotone in z and interpolated: positive where true places score, negative where
  only other places do. Beyond the measured range it stays at its last value.
- **Temper per metre travelled.** Consecutive frames see nearly the same scene, so their
  scores are correlated and a product of per-frame ratios would be overconfident. With
  scores correlated as ``rho(d) = exp(-d / L)`` over distance d (L measured along the
  calibration drive), a frame ``d`` metres after the previous one adds the equivalent of
  ``tanh(d / 2L)`` independent frames: ``(1 - rho) / (1 + rho)``, the effective-sample-size
  factor of an AR(1) series. A vehicle standing still adds (almost) nothing, however many
  frames it sends.
- **The single-frame probability of a place** among all the map's entries, for the
  single-frame mode's gate: the ratio of the place's entries to the sum over the whole map,
  the entries not retrieved counted at their expected ratio under the null.
- **A scale on the tempered evidence of being on the map at all**
  (:mod:`~liploc_ros.localization.gate_check`), so that no wrong track gathers more of it,
  against "elsewhere", than a true likelihood ratio allows. Which place, given the map, is
  weighed at the full tempered evidence.
- **The frame floor**: the evidence below which a single frame contradicts the tracked
  place (the true place scores lower on 1% of frames): no fix for that frame; and the
  **window floors** of the evidence summed over the last few frame steps
  (:mod:`~liploc_ros.localization.evidence_trail`), which catch a kidnap at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from liploc_ros.errors import MapError
from liploc_ros.localization.evidence_trail import WINDOW_STEPS

#: a frame counts at least this share of an independent frame (stationary vehicles, no
#: odometry: never exactly nothing)
_MIN_TEMPER = 1e-3


@dataclass(frozen=True)
class EvidenceModel:
    """The log-likelihood ratio of a standardised score and how it accumulates."""

    #: (G,) ascending z grid and, per distance band, the log-likelihood ratio at each
    #: (B, G), non-decreasing along z
    z: np.ndarray
    log_ratio: np.ndarray
    #: correlation length (m) of a true place's scores along a drive
    correlation_length_m: float
    #: the frame step (m) of the calibration drive: what a frame without odometry counts as
    frame_step_m: float
    #: expected ratio E[LR | z <= t] of a map entry under the null, at each grid z ``t``:
    #: the entries a search did not retrieve (all below the last retrieved score)
    null_mean_ratio_below: np.ndarray
    #: (B - 1,) the upper edges (m) of every band but the last (which is open): band b holds
    #: distances in [edges[b - 1], edges[b])
    band_edges_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: a factor on the tempered evidence that the vehicle is on the map at all (rather than
    #: elsewhere): the sequence filter discounts the particles' gain against "elsewhere"
    #: by it (1: none); see :mod:`~liploc_ros.localization.gate_check`
    scale: float = 1.0
    #: a frame whose evidence at the tracked place is below this gets no fix (-inf: none)
    frame_floor: float = -math.inf
    #: nor one after which the evidence summed over the last k frame steps is below these
    #: (one per window of :data:`~liploc_ros.localization.evidence_trail.WINDOW_STEPS`;
    #: empty: none)
    window_floors: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        z = np.asarray(self.z, np.float64)
        lr = np.atleast_2d(np.asarray(self.log_ratio, np.float64))
        below = np.asarray(self.null_mean_ratio_below, np.float64)
        edges = np.asarray(self.band_edges_m, np.float64).reshape(-1)
        if z.ndim != 1 or lr.shape[1:] != z.shape or z.shape != below.shape or len(z) < 2:
            raise MapError("evidence model: z, log_ratio rows and null ratios must be alike")
        if len(edges) != len(lr) - 1 or np.any(np.diff(edges) <= 0) or np.any(edges <= 0):
            raise MapError(
                f"evidence model: {len(lr)} distance bands need {len(lr) - 1} increasing "
                f"positive band edges, got {edges.tolist()}"
            )
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(lr)) and np.all(np.diff(z) > 0)):
            raise MapError("evidence model: z must be finite and increasing, log_ratio finite")
        if np.any(np.diff(lr, axis=1) < -1e-9):
            raise MapError("evidence model: log_ratio must not decrease with z")
        for name in ("correlation_length_m", "frame_step_m", "scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise MapError(f"evidence model: {name} must be > 0, got {value}")
        if math.isnan(self.frame_floor) or self.frame_floor == math.inf:
            raise MapError("evidence model: frame_floor must be a number or -inf")
        floors = tuple(float(v) for v in self.window_floors)
        if len(floors) not in (0, len(WINDOW_STEPS)) or any(math.isnan(v) for v in floors):
            raise MapError(
                f"evidence model: window_floors must be {len(WINDOW_STEPS)} numbers (one per "
                f"window of {WINDOW_STEPS} frame steps) or none, got {list(floors)}"
            )
        object.__setattr__(self, "window_floors", floors)
        object.__setattr__(self, "z", z)
        object.__setattr__(self, "log_ratio", lr)
        object.__setattr__(self, "band_edges_m", edges)
        object.__setattr__(self, "null_mean_ratio_below", np.maximum(below, 0.0))

    def llr(self, z: np.ndarray, distance_m: np.ndarray | None = None) -> np.ndarray:
        """The untempered log-likelihood ratio at ``z`` for entries ``distance_m`` from the
        claimed pose (None: at it, the first band); NaN stays NaN."""
        zz = np.asarray(z, np.float64)
        band = np.zeros(zz.shape, np.int64)
        if distance_m is not None and len(self.band_edges_m):
            d = np.broadcast_to(np.asarray(distance_m, np.float64), zz.shape)
            band = np.searchsorted(self.band_edges_m, np.nan_to_num(d, nan=0.0), side="right")
        out = np.empty(zz.shape)
        for b in np.unique(band):
            rows = band == b
            out[rows] = np.interp(zz[rows], self.z, self.log_ratio[b])
        return np.where(np.isfinite(zz), out, np.nan)

    def temper(self, step_m: float | None) -> float:
        """The weight of a frame ``step_m`` metres after the previous one (None: unknown, a
        calibration drive's step): the independent frames it is worth."""
        step = self.frame_step_m if step_m is None or not math.isfinite(step_m) else step_m
        return max(math.tanh(abs(step) / (2.0 * self.correlation_length_m)), _MIN_TEMPER)

    def place_probability(
        self, z_place: np.ndarray, z_retrieved: np.ndarray, entries: int
    ) -> float:
        """P(the place whose entries score ``z_place`` is where the frame was taken | the
        frame was taken somewhere on the map), one frame alone: its ratio over the sum of
        every entry's (``z_retrieved``: the retrieved ones, the place's included; the other
        ``entries - len(z_retrieved)`` at their expected ratio below the lowest retrieved)."""
        place = np.asarray(z_place, np.float64)
        found = np.asarray(z_retrieved, np.float64)
        found = found[np.isfinite(found)]
        if place.size == 0 or found.size == 0:
            return 0.0
        # ratios relative to the largest (no overflow, however steep the table)
        llr_found = self.llr(found)
        peak = float(llr_found.max())
        top = float(np.exp(self.llr(place) - peak).sum())
        rest = max(int(entries) - found.size, 0)
        below = float(np.interp(found.min(), self.z, self.null_mean_ratio_below))
        total = float(np.exp(llr_found - peak).sum()) + rest * below * math.exp(-peak)
        return min(top / total, 1.0) if total > 0 else 0.0
