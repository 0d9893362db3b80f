"""How much the sequence filter may trust its evidence: a factor on it, measured so that no
wrong place gathers more of it than a true likelihood ratio allows.

Per frame the calibration's log-likelihood ratio is honest, but frames along a drive are
not independent looks: a look-alike street explains a stretch of frames as well as the true
place does, and the tempering by the true place's correlation length does not capture how
long a look-alike lasts. So the calibration drives *wrong tracks*: the drive's own motion,
started at a sample of the map's entries farther than the null radius from the drive (each
with its heading: the mirror and the other lane are among them), each pose explained as the
filter explains a particle (:meth:`~liploc_ros.localization.measurement.MapField.explaining`)
and its frame's evidence tempered by the metres driven. A true likelihood ratio ``L`` obeys
Ville's inequality, ``P(sup_k L_k >= y) <= 1 / y`` over a whole drive; so the largest factor
``s`` for which the wrong tracks' evidence ``S`` obeys ``P(sup_k s * S_k >= x) <= exp(-x)``
at every rank of the sample is the scale the filter uses. With it, the posterior odds a
wrong place reaches against "elsewhere", with the ``1 / entries`` prior each place has,
mislead no more often than they say, on a map of any size: a map ten times bigger holds ten
times more look-alikes, and gives each place a tenth of the prior.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.geometry import yaw_of
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.measurement import MapField
from liploc_ros.localization.score_samples import NULL_RADIUS_M, pair_scores
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.mapdb import MapDatabase

__all__ = ["MAX_SCALE", "evidence_scale"]

#: frames of a wrong track, starts along each drive, wrong starting entries per start
TRACK_FRAMES = 60
TRACK_STARTS = 24
TRACK_ENTRIES = 400
#: the check only ever discounts the calibrated evidence: a check that finds the wrong tracks
#: weaker than a likelihood ratio allows (few tracks, a small map) does not amplify it
MAX_SCALE = 1.0
#: the check's tracks stand for one drive over the map; a vehicle meets many more
#: look-alikes (longer drives, other days, streets off the map that resemble mapped ones):
#: the tail bound is demanded at half the sampled exceedance rate
MARGIN = 2.0


def evidence_scale(
    database: MapDatabase,
    evidence: EvidenceModel,
    drives: list[tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    cov: np.ndarray,
    config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG,
) -> tuple[float, dict[str, Any]]:
    """The factor on the tempered evidence (see the module docstring) from ``drives``
    ((Q, D) embeddings, (Q, 4, 4) poses, in time order), and the check's figures."""
    field = MapField(database, config)
    emb = np.asarray(database.embeddings, np.float32)
    rng = np.random.default_rng(0)
    sups = [_track_sups(evidence, q, t, field, emb, mean, cov, rng) for q, t in drives]
    sup = np.sort(np.concatenate([s for s in sups if s.size] or [np.zeros(0)]))[::-1]
    if sup.size == 0:
        return 1.0, {}
    rank = np.arange(1, len(sup) + 1)
    tail = sup > 0
    # Ville: for every rank i, exp(-s * sup_(i)) >= MARGIN * i / N, i.e.
    # s <= ln(N / (MARGIN * i)) / sup_(i): the tail bound holds with MARGIN to spare
    limits = np.log(len(sup) / (MARGIN * rank[tail])) / sup[tail]
    limits = limits[np.isfinite(limits) & (limits > 0)]
    scale = float(min(limits.min(), MAX_SCALE)) if limits.size else MAX_SCALE
    figures = {
        "wrong_tracks": len(sup),
        "track_frames": TRACK_FRAMES,
        "best_wrong_evidence": round(float(sup[0]), 2),
        "evidence_scale": round(scale, 3),
    }
    return scale, figures


def _track_sups(
    evidence: EvidenceModel,
    q: np.ndarray,
    truth: np.ndarray,
    field: MapField,
    emb: np.ndarray,
    mean: np.ndarray,
    cov: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Each wrong track's highest accumulated tempered evidence (one drive)."""
    xy, yaw = field.xy, field.yaw
    n = len(q)
    length = min(TRACK_FRAMES, n - 1)
    if length < 5:
        return np.zeros(0)
    starts = np.unique(np.linspace(0, n - 1 - length, TRACK_STARTS).round().astype(int))
    steps = np.hypot(*np.diff(truth[:, :2, 3], axis=0).T)
    weights = np.array([evidence.temper(float(d)) for d in steps])
    out = []
    for s in starts:
        far = np.flatnonzero(np.hypot(*(xy - truth[s, :2, 3]).T) > NULL_RADIUS_M)
        if far.size == 0:
            continue
        pick = far if far.size <= TRACK_ENTRIES else rng.choice(far, TRACK_ENTRIES, False)
        # each wrong start: the entry's pose, then the drive's motion since frame s
        rel = np.linalg.inv(truth[s]) @ truth[s : s + length + 1]  # (L+1, 4, 4)
        c, sn = np.cos(yaw[pick])[:, None], np.sin(yaw[pick])[:, None]
        dx, dy = rel[None, :, 0, 3], rel[None, :, 1, 3]
        px = xy[pick, 0, None] + c * dx - sn * dy
        py = xy[pick, 1, None] + sn * dx + c * dy
        pyaw = yaw[pick, None] + yaw_of(rel)[None, :]
        poses = np.column_stack([px.ravel(), py.ravel(), pyaw.ravel()])
        entry = field.explaining(poses)
        near = xy[np.maximum(entry, 0)]
        dist = np.where(entry >= 0, np.hypot(near[:, 0] - poses[:, 0], near[:, 1] - poses[:, 1]),
                        np.nan)  # fmt: skip
        entry, dist = entry.reshape(px.shape), dist.reshape(px.shape)
        frame = np.broadcast_to(np.arange(s, s + length + 1), px.shape)
        z = np.full(px.shape, np.nan)
        ok = entry >= 0
        if ok.any():
            z[ok] = pair_scores(q, emb, np.column_stack([frame[ok], entry[ok]]), mean, cov)
        llr = np.where(ok, np.nan_to_num(evidence.llr(z, dist)), 0.0)
        llr[:, 1:] *= weights[s : s + length][None, :]
        llr[:, 0] *= evidence.temper(None)
        out.append(np.cumsum(llr, axis=1).max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)
