"""Sequence localization: Monte Carlo localization fusing odometry with map retrieval, and
publishing a pose only when the evidence says it is right with the target probability.

:class:`SequenceFilter` is a particle filter over the sensor's ground pose (x, y, yaw)
in the map frame, in the manner of AMCL, beside one explicit hypothesis more:
**elsewhere**, the vehicle at a place no particle holds: off the map, or on a part of it
the particles have not found. Its mass starts at 1 (no prior: the filter finds itself) and
it explains every frame no better and no worse than chance (likelihood ratio 1).

1. **Predict**: every particle moves by the odometry with noise that grows with the motion
   (:mod:`~liploc_ros.localization.motion`), or by a bounded random walk without odometry;
   ``kidnap_probability`` per metre of the particles' mass flows to elsewhere.
2. **Weigh** each particle by the evidence of the entry that explains it
   (:mod:`~liploc_ros.localization.measurement`, :mod:`~liploc_ros.localization.evidence`):
   the map's calibrated log-likelihood ratio of the frame's standardised score there,
   tempered by the metres driven since the previous frame. A particle no entry explains
   (beyond the map's coverage, or facing where no crop looks) is off the map: ratio 1. A
   place that scores like elsewhere loses weight to it: odometry carrying particles off the
   map, or frames that match no place, hand the posterior to elsewhere.
3. **Inject** (sensor resetting): a few particles are drawn at the frame's top-k retrieved
   entries, each carrying elsewhere's prior mass of its entry (``1 / entries`` of it,
   divided by the draw's probability) times its evidence. A map ten times bigger gives each
   place a tenth of the prior: a look-alike among more places needs more evidence to win.
4. **Estimate** from the dominant mode (:mod:`~liploc_ros.localization.particles`), never
   the mean of two streets, then resample the particles (elsewhere keeps its mass).

A fix is published only when the dominant mode holds at least ``target_precision`` of the
posterior, against every other mode and elsewhere together: hypotheses that explain the
same frames (a mirror driving the other way further along the road, the other lane, a
look-alike street) stay apart as modes until turns, the road network (a hypothesis driving
off the mapped roads is off the map) and the scores separate them; one that overtakes a
hypothesis the posterior held earns its confidence anew (:meth:`SequenceFilter._switched`).
``offmap_probability`` is elsewhere's mass plus the off-map particles'.

z, roll and pitch of the published pose come from the map entry nearest to the mode. The
cost per frame is linear in the particle count and independent of the map's size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.geometry import wrap
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import (
    INITIALIZING,
    LOST,
    MISMATCH,
    OFF_MAP,
    UNCERTAIN,
    PoseEstimate,
)
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.evidence_trail import EvidenceTrail
from liploc_ros.localization.filter_status import FilterStatus, TrackState
from liploc_ros.localization.fix_gate import GateInputs, GateRule
from liploc_ros.localization.held_hypothesis import HeldHypothesis
from liploc_ros.localization.initial_pose import prior_on_map
from liploc_ros.localization.measurement import MapField
from liploc_ros.localization.mode_pose import mode_covariance, pose_on_map
from liploc_ros.localization.motion import Motion, apply_odometry, random_walk
from liploc_ros.localization.particles import (
    Mode,
    dominant_mode,
    effective_count,
    systematic_resample,
)
from liploc_ros.localization.sequence_config import DEFAULT_SEQUENCE_CONFIG, SequenceConfig
from liploc_ros.mapdb import MapDatabase


@dataclass(frozen=True)
class _Gate:
    """What the fix gate reads of a frame's posterior."""

    mode: Mode
    #: elsewhere's mass plus the off-map particles'
    offmap: float
    #: this frame's untempered evidence at the mode (its particles', mass-weighted)
    frame_evidence: float
    #: and summed over the last few frame steps at the same mode (the evidence trail)
    window_evidence: tuple[float, ...]


class SequenceFilter:
    """A particle filter over (x, y, yaw) in one map; feed it frames in time order.

    ``evidence``: what the map's scores mean (its calibration's
    :meth:`~liploc_ros.localization.calibration.ScoreCalibration.evidence`, see
    :func:`~liploc_ros.localization.calibration.evidence_for`).
    """

    def __init__(
        self,
        database: MapDatabase,
        evidence: EvidenceModel,
        config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG,
        localizer_config: LocalizerConfig = DEFAULT_CONFIG,
    ) -> None:
        if not isinstance(config, SequenceConfig):
            raise ConfigError(f"config must be a SequenceConfig, not {type(config).__name__}")
        if not isinstance(evidence, EvidenceModel):
            raise ConfigError(f"evidence must be an EvidenceModel, not {type(evidence).__name__}")
        self.database = database
        self.evidence = evidence
        self.config = config
        self.localizer_config = localizer_config
        self.field = MapField(database, config)
        self._trail = EvidenceTrail(
            evidence.frame_step_m, config.mode_radius_m, math.radians(config.mode_yaw_deg)
        )
        self._gen = np.random.default_rng(config.seed)
        self.reset()

    # ------------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything: the next frame starts global localization from scratch."""
        self._particles = np.zeros((0, 3))
        self._log_w = np.zeros(0)  # log posterior mass of each particle
        self._log_elsewhere = 0.0  # log posterior mass of elsewhere (all of it, at first)
        self._state = TrackState.INITIALIZING
        self._held = HeldHypothesis()  # see _switched
        self._last_stamp: float | None = None
        self._status = FilterStatus(TrackState.INITIALIZING, 0.0, 0.0, 1.0, 0, 0, 0)
        self._full_update = False
        self._trail.clear()

    def seed(self, mean: np.ndarray, covariance: np.ndarray) -> None:
        """Start from a prior pose, as AMCL does from an operator's initial pose: the
        particles are drawn from N(``mean``, ``covariance`` + the injection spread) over
        the sensor's x, y, yaw in the map (3, and 3 x 3; see
        :func:`~liploc_ros.localization.initial_pose.sensor_prior`), and hold
        ``initial_pose_probability`` of the posterior, elsewhere the rest. Draws that no map
        entry explains (a heading no crop faces) are drawn again, and those left after
        a few rounds are replaced by copies of the others: the prior is conditioned on the
        map. A prior wholly off the map is refused (:class:`MapError`, the filter
        unchanged): off the map is what *elsewhere* already stands for, and particles there
        would hold the posterior against no evidence. The fix gate is unchanged: the frames
        must support the prior before a pose is published (a frame below the map's floor
        takes no track up), and a wrong one loses its mass to elsewhere as a kidnapped
        track does, while the frames' matches are injected from elsewhere's share."""
        cfg = self.config
        particles = prior_on_map(mean, covariance, cfg, self.field, self._gen)
        self.reset()
        n = len(particles)
        self._particles = particles
        prior = cfg.initial_pose_probability
        self._log_w = np.full(n, math.log(prior / n))
        self._log_elsewhere = math.log1p(-prior)
        self._status = FilterStatus(TrackState.INITIALIZING, float(n), prior, 1.0 - prior,
                                    0, 0, 0)  # fmt: skip

    def request_full_update(self) -> None:
        """Weigh the next frame's evidence as a whole frame step even if the odometry says
        the vehicle stood still (AMCL's ``request_nomotion_update``)."""
        self._full_update = True

    def reconfigure(self, config: SequenceConfig) -> None:
        """Take new gates, targets and noise between frames; the particle count, the seed
        and the map field's geometry are fixed once the filter exists."""
        if not isinstance(config, SequenceConfig):
            raise ConfigError(f"config must be a SequenceConfig, not {type(config).__name__}")
        fixed = ("particles", "seed", "neighbours", "entry_radius_m", "heading_tolerance_deg")
        changed = [f for f in fixed if getattr(config, f) != getattr(self.config, f)]
        if changed:
            raise ConfigError(
                f"sequence.{', sequence.'.join(changed)} cannot change while the filter runs"
            )
        self.config = config

    @property
    def state(self) -> TrackState:
        return self._state

    @property
    def status(self) -> FilterStatus:
        return self._status

    @property
    def particles(self) -> np.ndarray:
        """(N, 3) x, y, yaw after the latest frame (equal weights); empty before any frame."""
        return self._particles.copy()

    # ------------------------------------------------------------------------ one frame

    def step(
        self,
        query: np.ndarray,
        stamp: float,
        motion: Motion | None,
        *,
        retrieved: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> PoseEstimate:
        """One frame: its embedding (D,), stamp (s), the odometry motion since the previous
        frame (None: no odometry), and optionally its top-k (indices, scores) already
        retrieved from this map (else the filter searches the map's index)."""
        t0 = time.perf_counter()
        cfg = self.config
        q = np.asarray(query, np.float32).reshape(-1)
        if q.shape[0] != self.database.dim or not np.isfinite(q).all():
            raise MapError(
                f"query embedding has shape {np.shape(query)} or non-finite values; the map "
                f"holds {self.database.dim}-d embeddings"
            )
        if retrieved is None:
            found = self.database.search(q, cfg.inject_top_k)
            indices, scores = found.indices[0], found.scores[0]
        else:
            indices = np.asarray(retrieved[0], np.int64).reshape(-1)
            scores = np.asarray(retrieved[1], np.float32).reshape(-1)
        t1 = time.perf_counter()
        weight = self._predict(stamp, motion)
        measured = self.field.score(q, self._particles)
        covered = measured.covered
        raw = np.where(covered, np.nan_to_num(self.evidence.llr(measured.z, measured.distance)),
                       0.0)  # fmt: skip
        self._weigh(weight * raw)
        injected = self._inject(q, indices, weight)
        covered = np.concatenate([covered, np.ones(injected, bool)])
        mass, elsewhere = self._normalize()
        mode = dominant_mode(
            self._particles, np.where(covered, mass, 0.0), cfg.mode_radius_m, cfg.mode_yaw_deg
        )
        if self._switched(mode):
            mass, elsewhere = self._hand_back(mass, elsewhere)
            mode = replace(mode, weight=float(mass[mode.members].sum()))
        offmap = elsewhere + float(mass[~covered].sum())
        members = np.where(mode.members, mass, 0.0)
        share = members / members.sum() if members.sum() > 0 else members
        evidence = float(share @ np.concatenate([raw, self._injected_llr]))
        window = self._trail.push(mode.pose, self._trail_moved(motion), evidence,
                                  None if motion is None else motion.translation)  # fmt: skip
        gate = _Gate(mode, offmap, evidence, window)
        estimate = self._decide(gate, stamp, indices, scores)
        n_eff = effective_count(mass / max(float(mass.sum()), 1e-300))
        self._resample_if_needed(mass, n_eff)
        frames = self._status.frames + 1
        tracked = self._status.tracked_frames + int(estimate.ok)
        self._status = FilterStatus(
            self._state, n_eff, mode.weight, offmap, injected, frames, tracked
        )
        t2 = time.perf_counter()
        timings = {"search": 1000.0 * (t1 - t0), "filter": 1000.0 * (t2 - t1)}
        timings["total"] = timings["search"] + timings["filter"]
        return replace(estimate, timings_ms=timings)

    def _predict(self, stamp: float, motion: Motion | None) -> float:
        """Move the particles; hand the kidnap share of their mass to elsewhere. Returns the
        weight of this frame's evidence (its metres, tempered)."""
        cfg = self.config
        step: float | None = None
        if len(self._particles):
            dt = stamp - self._last_stamp if self._last_stamp is not None else 0.0
            self._held.move(motion, dt, cfg)
            if motion is not None:
                self._particles = apply_odometry(self._particles, motion, cfg, self._gen)
                step = motion.translation
            else:
                self._particles = random_walk(self._particles, dt, cfg, self._gen)
            metres = self.evidence.frame_step_m if step is None else step
            kidnap = 1.0 - (1.0 - cfg.kidnap_probability) ** metres
            if kidnap > 0.0:
                moved = _logsumexp(self._log_w) + math.log(kidnap)
                self._log_elsewhere = float(np.logaddexp(self._log_elsewhere, moved))
                self._log_w = self._log_w + math.log1p(-kidnap)
        self._last_stamp = float(stamp)
        if self._full_update:  # asked for (no-motion update): a whole frame's evidence
            self._full_update = False
            return self.evidence.temper(None)
        return self.evidence.temper(step)

    def _weigh(self, llr: np.ndarray) -> None:
        """Weigh the particles by this frame's tempered evidence; the particles' gain against
        elsewhere, where they gained, counts only ``evidence.scale`` of it (the relative
        weights among them are the full evidence's): see the module docstring. An operator's
        initial pose (:meth:`seed`) is discounted alike: its frames are no less correlated."""
        if not len(self._log_w):
            return
        before = _logsumexp(self._log_w)
        self._log_w = self._log_w + llr
        gain = _logsumexp(self._log_w) - before
        if gain > 0.0:
            self._log_w = self._log_w - (1.0 - self.evidence.scale) * gain

    def _trail_moved(self, motion: Motion | None) -> np.ndarray | None:
        """Where the previous frame's mode has moved to by the odometry (None: no trail)."""
        last = self._trail.pose
        return last if last is None or motion is None else motion.applied_to(last)

    def _switched(self, mode: Mode) -> bool:
        """Whether the dominant mode is another hypothesis (beyond the mode radius or heading
        window of where the held one has moved) than the one the posterior held, tracked or
        at ``keep_probability`` before a fix: one of the two was wrongly believed."""
        return not self._held.holds(mode.pose, self.config)

    def _hand_back(self, mass: np.ndarray, elsewhere: float) -> tuple[np.ndarray, float]:
        """After a switch: the posterior's confidence of being on the map was earned by
        the hypothesis now lost, so half of it goes back to elsewhere; the new one must earn
        it again at the map's evidence scale, as a first fix does."""
        self._held.clear()
        if self._state is TrackState.TRACKING:
            self._state = TrackState.LOST
        if elsewhere >= _HAND_BACK:
            return mass, elsewhere
        mass = mass * (1.0 - _HAND_BACK) / max(float(mass.sum()), 1e-300)
        self._log_w = np.log(np.maximum(mass, 1e-300))
        self._log_elsewhere = math.log(_HAND_BACK)
        return mass, _HAND_BACK

    def _inject(self, query: np.ndarray, indices: np.ndarray, weight: float) -> int:
        """Draw particles at the retrieved entries from elsewhere's prior (see the module
        docstring); the first frame draws all of them. Returns how many."""
        cfg = self.config
        sites = indices[indices >= 0]
        first = len(self._particles) == 0
        self._injected_llr = np.zeros(0)
        if sites.size == 0:
            if first:
                raise MapError("the first frame retrieved no map entry: nothing to start from")
            return 0
        count = cfg.particles if first else max(1, round(cfg.inject_fraction * cfg.particles))
        llr = weight * np.nan_to_num(self.evidence.llr(self.field.zscores(query, sites)))
        p = np.exp(llr - llr.max())
        p /= p.sum()
        draw = self._gen.choice(len(sites), size=count, p=p)
        chosen = sites[draw]
        new = np.empty((count, 3))
        noise = self._gen.standard_normal((count, 3))
        new[:, :2] = self.field.xy[chosen] + cfg.inject_position_std_m * noise[:, :2]
        turn = math.radians(cfg.inject_yaw_std_deg) * noise[:, 2]
        new[:, 2] = wrap(self.field.yaw[chosen] + turn)
        prior = self._log_elsewhere - math.log(len(self.field)) - math.log(count)
        gain = llr[draw]
        log_new = prior - np.log(p[draw]) + np.where(gain > 0, self.evidence.scale * gain, gain)
        self._particles = np.concatenate([self._particles, new])
        self._injected_llr = llr[draw] / max(weight, 1e-12)
        self._log_w = np.concatenate([self._log_w, log_new])
        return count

    def _normalize(self) -> tuple[np.ndarray, float]:
        """Particle masses and elsewhere's, summing to 1 (log-sum-exp)."""
        total = float(np.logaddexp(_logsumexp(self._log_w), self._log_elsewhere))
        self._log_w = self._log_w - total
        self._log_elsewhere -= total
        return np.exp(self._log_w), math.exp(self._log_elsewhere)

    def _resample_if_needed(self, mass: np.ndarray, n_eff: float) -> None:
        """Resample to ``particles`` when the weights degenerate or the injected particles
        have grown the set by half; their total mass stays theirs (elsewhere keeps its own).
        Else the weights carry over, so that a hypothesis injected with a small prior keeps
        gathering evidence over several frames instead of being dropped at once."""
        n = self.config.particles
        if n_eff < 0.5 * n or len(self._particles) > 1.5 * n:
            total = float(mass.sum())
            keep = systematic_resample(mass / total, n, self._gen)
            self._particles = self._particles[keep]
            self._log_w = np.full(n, math.log(max(total, 1e-300) / n))

    def _decide(
        self, gate: _Gate, stamp: float, indices: np.ndarray, scores: np.ndarray
    ) -> PoseEstimate:
        """The fix gate (:mod:`~liploc_ros.localization.fix_gate`) and the estimate."""
        cfg, mode = self.config, gate.mode
        rule = GateRule.of(cfg, self.evidence)
        inputs = GateInputs(mode.weight, mode.position_std, gate.frame_evidence,
                            gate.window_evidence)  # fmt: skip
        was_tracking = self._state is TrackState.TRACKING
        tracking, ok, why = rule.decide(was_tracking, inputs)
        if tracking:
            self._state = TrackState.TRACKING
        elif was_tracking:
            # the place stays held (moved with the odometry): taken up again there, the
            # track goes on; another hypothesis dominating first is a switch (hand-back)
            self._state = TrackState.LOST
        if tracking or mode.weight >= rule.keep:
            self._held.hold(mode.pose)
        if ok:
            reason = ""
        elif why == "mismatch":
            reason = MISMATCH
        elif self._state is TrackState.INITIALIZING:
            reason = INITIALIZING
        elif gate.offmap >= mode.weight:
            reason = OFF_MAP
        else:
            reason = UNCERTAIN if why == "uncertain" else LOST
        pose = pose_on_map(self.field, mode.pose)
        finite = np.isfinite(scores)
        return PoseEstimate(
            stamp=float(stamp),
            ok=ok,
            reason=reason,
            pose=pose if ok else None,
            covariance=mode_covariance(mode, cfg, self.localizer_config) if ok else None,
            confidence=float(mode.weight),
            score=float(scores[finite].max()) if finite.any() else float("nan"),
            indices=np.asarray(indices, np.int64),
            scores=np.asarray(scores, np.float32),
            spread_m=mode.position_std,
            best_pose=pose,
            state=self._state.value,
            offmap_probability=gate.offmap,
            frame_evidence=gate.frame_evidence,
            window_evidence=gate.window_evidence,
        )


#: the share of the posterior a switch of the held hypothesis hands back to elsewhere
_HAND_BACK = 0.5


def _logsumexp(values: np.ndarray) -> float:
    if values.size == 0:
        return -math.inf
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))


def run_sequence(
    localizer: SequenceFilter,
    queries: np.ndarray,
    stamps: np.ndarray | Sequence[float],
    motions: Sequence[Motion | None],
) -> list[PoseEstimate]:
    """Feed a whole stream of embedded frames to ``localizer``, in order."""
    if not len(queries) == len(stamps) == len(motions):
        raise ConfigError("run_sequence: queries, stamps and motions differ in length")
    return [
        localizer.step(q, float(t), m) for q, t, m in zip(queries, stamps, motions, strict=True)
    ]
