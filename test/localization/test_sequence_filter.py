"""The sequence localizer on a synthetic town: it converges where single frames fail, recovers
from a kidnap, refuses to fix off the map (and says so), works without odometry; and its
parts (dominant mode, resampling, measurement field, configuration, estimates, determinism,
reset). The town's map is calibrated as a user's would be: on a labelled drive of it."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from sequence_helpers import (
    DIM,
    HEIGHT_M,
    Town,
    kidnapped,
    make_town,
    odometry,
    staircase,
    stamps,
    truth_poses,
)

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.evaluation.tracks import relock, track_summary
from liploc_ros.geometry import wrap
from liploc_ros.localization.calibration import LabelledDrive, calibrate
from liploc_ros.localization.config import DEFAULT_CONFIG
from liploc_ros.localization.estimate import REASONS, message_fields
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.measurement import MapField
from liploc_ros.localization.motion import Motion, motions_from_odometry
from liploc_ros.localization.sequence import (
    SequenceFilter,
    TrackState,
    _logsumexp,
    run_sequence,
)
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_info

#: the product's default: with half as many, Monte Carlo error in the lateral posterior
#: (which this town's calibrated distance bands pin to only a few metres) can put a fix at a
#: corner 5.7 m out
PARTICLES = SequenceConfig().particles
#: frames (= metres) after which a converged filter is judged
SETTLE = 40


@functools.lru_cache(maxsize=1)
def town() -> Town:
    return make_town(0)


@functools.lru_cache(maxsize=1)
def route() -> np.ndarray:
    return staircase()


@functools.lru_cache(maxsize=1)
def evidence() -> EvidenceModel:
    """The town's calibration, measured on a labelled drive of its own (query noise seed 9:
    not a test drive's)."""
    r = route()
    drive = LabelledDrive(town().queries(r, seed=9), truth_poses(r), odometry(r, seed=9))
    return calibrate(town().database, [drive], model_fingerprint="town", same_drive=False,
                     config=config()).evidence()  # fmt: skip


def make_localizer(seed: int = 0, **kw) -> SequenceFilter:
    return SequenceFilter(town().database, evidence(), config(seed, **kw))


def config(seed: int = 0, **kw) -> SequenceConfig:
    return SequenceConfig(particles=PARTICLES, seed=seed, **kw)


def drive(
    route_xyyaw: np.ndarray,
    *,
    seed: int = 0,
    queries: np.ndarray | None = None,
    with_odometry: bool = True,
    blind_at: int | None = None,
    localizer: SequenceFilter | None = None,
):
    """Run a localizer along a drive; returns (estimates, truth, localizer)."""
    q = town().queries(route_xyyaw, seed=1 + seed) if queries is None else queries
    n = len(route_xyyaw)
    odom = odometry(route_xyyaw, seed=5 + seed, blind_at=blind_at) if with_odometry else None
    loc = localizer or make_localizer(seed)
    est = run_sequence(loc, q, stamps(n), motions_from_odometry(odom, n))
    return est, truth_poses(route_xyyaw), loc


def fixes(estimates) -> np.ndarray:
    return np.array([e.ok for e in estimates])


# ----------------------------------------------------------------------------- the town


def test_single_frame_retrieval_in_the_town_is_mostly_wrong():
    """The premise of the scenario tests: one frame alone does not localize."""
    r = route()
    for seed in (1, 2):
        err = town().top1_error(town().queries(r, seed=seed), r)
        assert (err < 5.0).mean() < 0.4
        assert (err < 20.0).mean() < 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_converges_where_single_frames_fail(seed):
    est, truth, loc = drive(route(), seed=seed)
    s = track_summary(est, truth)
    ok = fixes(est)
    assert s["first_fix_distance_m"] is not None
    assert s["first_fix_distance_m"] <= SETTLE
    assert ok[SETTLE:].mean() >= 0.95
    assert s["wrong_fixes"] == 0
    assert s["fix_precision_5m"] == 1.0
    assert s["median_error_m"] < 1.5
    assert s["p95_error_m"] < 3.0
    assert s["median_yaw_error_deg"] < 3.0
    assert loc.state is TrackState.TRACKING
    assert est[-1].state == "tracking"
    # before the first fix the filter says it is initializing, not lost
    first = int(np.argmax(ok))
    assert {e.reason for e in est[:first]} == {"initializing"}
    assert loc.status.frames == len(est)
    assert loc.status.tracked_frames == int(ok.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_from_a_kidnap(seed):
    # at frame 100 (60, 40), heading north, the vehicle is carried 120 m along the drive, to
    # (120, 100), still heading north, while the odometry reads 1 m ahead: afterwards it
    # believes itself on the street x = 60 and turns east onto y = 60, which is also mapped
    at, jump = 100, 120
    r = kidnapped(route(), at, jump)
    assert math.dist(r[at - 1, :2], r[at, :2]) > 80.0
    est, truth, _ = drive(r, seed=seed, blind_at=at)
    ok = fixes(est)
    before = track_summary(est[:at], truth[:at])
    assert before["wrong_fixes"] == 0
    assert ok[SETTLE:at].mean() >= 0.95
    back = relock(est, truth, at)
    assert back["relock_distance_m"] is not None
    assert back["relock_distance_m"] <= 60.0
    assert back["wrong_fixes"] <= 6
    # the filter noticed: it went lost in between, then tracked again and stayed right
    states = [e.state for e in est[at:]]
    assert "lost" in states
    after = track_summary(est[at + 60 :], truth[at + 60 :])
    assert after["fix_ratio"] >= 0.95
    assert after["wrong_fixes"] == 0


def test_a_kidnapped_track_stops_fixing_at_once():
    """The frames after a kidnap score above the single-frame floor now and then; the
    evidence of the last two or three metres at the held place does not: at most the frame
    of the jump and the next get a wrong fix (the windows still hold frames from before
    it). Without the window floors (a calibration made before them) the same drives fix
    the held place for more frames."""
    at, jump = 100, 120
    r = kidnapped(route(), at, jump)
    assert evidence().window_floors  # the town's calibration measured them
    without = dataclasses.replace(evidence(), window_floors=())
    counts = {True: [], False: []}
    for seed in (1, 3, 4):
        for windows in (True, False):
            loc = SequenceFilter(town().database, evidence() if windows else without,
                                 config(seed))  # fmt: skip
            est, truth, _ = drive(r, seed=seed, blind_at=at, localizer=loc)
            counts[windows].append(relock(est, truth, at)["wrong_fixes"])
    assert max(counts[True]) <= 2, counts
    assert sum(counts[False]) > sum(counts[True]), counts


@pytest.mark.parametrize("seed", [0, 1])
def test_refuses_to_fix_off_the_map_and_says_so(seed):
    # tracking for 100 m, then the frames match nothing in the map (an unmapped street,
    # a blinded camera) while the odometry keeps driving
    r = route()
    on_map = 100
    q = town().queries(r, seed=1 + seed)
    q[on_map:] = town().off_map_queries(len(r) - on_map, seed=7 + seed)
    est, _, loc = drive(r, seed=seed, queries=q)
    ok = fixes(est)
    assert ok[SETTLE:on_map].mean() >= 0.95
    bounded = 10
    assert not ok[on_map + bounded :].any()
    assert ok[on_map:].sum() <= bounded
    assert all(e.state == "lost" for e in est[on_map + bounded :])
    assert {e.reason for e in est[on_map + bounded :]} <= {"lost", "uncertain", "off the map"}
    assert "off the map" in {e.reason for e in est[on_map + bounded :]}
    assert all(e.pose is None and e.covariance is None for e in est[on_map + bounded :])
    assert loc.state is TrackState.LOST
    # the off-map hypothesis: small while tracking, the posterior's bulk off the map
    off = np.array([e.offmap_probability for e in est])
    assert np.median(off[SETTLE:on_map]) < 0.01
    assert np.median(off[on_map + bounded :]) > 0.5
    assert loc.status.offmap_probability == pytest.approx(off[-1])


@pytest.mark.parametrize("seed", [0, 1])
def test_reenters_the_map_and_relocks_without_a_reset(seed):
    """60 m off the map (frames matching nothing, the odometry driving on), then the map
    again: the off-map probability rises, then falls, and the track is taken up again with
    no reset and no wrong fix."""
    r = route()
    leave, back = 100, 160
    q = town().queries(r, seed=1 + seed)
    q[leave:back] = town().off_map_queries(back - leave, seed=17 + seed)
    est, truth, loc = drive(r, seed=seed, queries=q)
    off = np.array([e.offmap_probability for e in est])
    assert np.max(off[leave:back]) > 0.5
    assert np.median(off[-40:]) < 0.05
    rel = relock(est, truth, back)
    assert rel["relock_distance_m"] is not None
    assert rel["relock_distance_m"] <= 60.0
    assert rel["wrong_fixes"] == 0
    assert track_summary(est, truth)["wrong_fixes"] == 0
    assert loc.status.frames == len(r)  # never reset


def test_never_fixes_when_nothing_ever_matches():
    r = route()[:200]
    est, _, loc = drive(r, queries=town().off_map_queries(len(r), seed=3))
    assert not fixes(est).any()
    assert loc.state is TrackState.INITIALIZING
    assert {e.reason for e in est} == {"initializing"}


@pytest.mark.parametrize("seed", [0, 1])
def test_converges_without_odometry(seed):
    # no motion: every particle walks forward at up to 20 m/s along its heading; the
    # filter converges too, loses the track for a while at corners (the particles overshoot
    # them), and next to never fixes wrong
    est, truth, loc = drive(route(), seed=seed, with_odometry=False)
    s = track_summary(est, truth)
    ok = fixes(est)
    assert s["first_fix_distance_m"] is not None
    assert s["first_fix_distance_m"] <= 2 * SETTLE
    assert ok[2 * SETTLE :].mean() >= 0.5
    assert s["wrong_fixes"] <= 2
    assert s["fix_precision_5m"] >= 0.9
    assert s["median_error_m"] < 2.0
    assert loc.status.tracked_frames == int(ok.sum())


def test_reset_starts_global_localization_again():
    # track along the first 80 m, reset, and continue from elsewhere in the town: no kidnap
    # to recover from, the filter starts afresh there
    r = route()
    est, _, loc = drive(r[:80])
    assert loc.state is TrackState.TRACKING
    loc.reset()
    assert loc.state is TrackState.INITIALIZING
    assert loc.particles.shape == (0, 3)
    assert loc.status.frames == 0
    assert loc.status.tracked_frames == 0
    elsewhere = r[200:]
    est, truth, _ = drive(elsewhere, seed=1, localizer=loc)
    assert loc.status.frames == len(elsewhere)
    assert est[0].state == "initializing"
    s = track_summary(est, truth)
    assert s["wrong_fixes"] == 0
    assert s["first_fix_distance_m"] <= SETTLE


def test_the_first_frame_draws_every_particle_from_the_matches():
    loc = make_localizer()
    q = town().queries(route()[:1])[0]
    loc.step(q, 0.0, None)
    assert loc.status.injected == PARTICLES
    assert loc.particles.shape == (PARTICLES, 3)
    top = town().database.search(q, loc.config.inject_top_k).indices[0]
    d = np.min(np.hypot(*(loc.particles[:, None, :2] - town().xyyaw[top][None, :, :2]).T), axis=0)
    assert np.quantile(d, 0.99) < 4 * loc.config.inject_position_std_m
    loc.step(q, 0.1, None)
    assert loc.status.injected == round(loc.config.inject_fraction * PARTICLES)


def test_the_kidnap_prior_flows_into_elsewhere_per_metre_travelled():
    """kidnap_probability is per metre: a vehicle standing still hands nothing to
    elsewhere, a metre's drive hands that share of the particles' mass."""
    r = route()[:60]
    q = town().queries(r)
    motions = motions_from_odometry(odometry(r), len(r))
    loc = make_localizer(kidnap_probability=0.01)
    for i in range(40):
        loc.step(q[i], 0.1 * i, motions[i])
    before = math.exp(loc._log_elsewhere)
    loc._predict(4.0, Motion(0.0, 0.0, 0.0))
    assert math.exp(loc._log_elsewhere) == pytest.approx(before, rel=1e-9)
    mass = math.exp(_logsumexp(loc._log_w))
    loc._predict(4.1, Motion(10.0, 0.0, 0.0))
    moved = 1.0 - 0.99**10
    assert math.exp(loc._log_elsewhere) == pytest.approx(before + moved * mass, rel=1e-6)


# ----------------------------------------------------------------------------- estimates


def test_estimates_carry_state_covariance_and_stamp():
    cfg = config()
    r = route()[:80]
    est, _, _ = drive(r)
    floors = DEFAULT_CONFIG.std_floors
    good = [e for e in est if e.ok]
    assert len(good) > 30
    for e, t in zip(est, stamps(len(r)), strict=True):
        assert e.stamp == pytest.approx(t)
        assert e.state in ("initializing", "tracking", "lost")
        assert len(e.indices) == cfg.inject_top_k
        assert set(e.timings_ms) == {"search", "filter", "total"}
        assert e.best_pose is not None
        assert e.best_pose.shape == (4, 4)
        if not e.ok:
            assert e.reason in REASONS
            assert e.pose is None
            assert e.covariance is None
            continue
        assert e.state == "tracking"
        assert e.reason == ""
        T = e.pose
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(T[3], [0, 0, 0, 1])
        assert T[2, 3] == pytest.approx(HEIGHT_M)  # z from the nearest entry
        np.testing.assert_array_equal(e.best_pose, T)
        C = e.covariance
        assert C.shape == (6, 6)
        np.testing.assert_allclose(C, C.T, atol=1e-15)
        assert np.linalg.eigvalsh(C).min() > 0
        diag = np.diag(C)
        assert diag[0] >= cfg.extra_position_std_m**2
        assert diag[1] >= cfg.extra_position_std_m**2
        assert diag[5] >= math.radians(cfg.extra_yaw_std_deg) ** 2
        # z, roll, pitch: the filter knows nothing of them beyond the floors
        np.testing.assert_allclose(diag[2:5], np.square(floors[2:5]))
        # x and y: the mode's spread on top of the floor
        spread2 = 0.5 * (diag[0] + diag[1]) - cfg.extra_position_std_m**2
        assert spread2 == pytest.approx(e.spread_m**2, rel=1e-6, abs=1e-12)
        assert e.spread_m <= cfg.max_position_std_m
        assert e.confidence >= cfg.keep_probability
        assert 0.0 <= e.offmap_probability <= 1.0 - e.confidence + 1e-9
        position, quaternion, cov36 = message_fields(e)
        np.testing.assert_allclose(position, T[:3, 3])
        assert cov36.shape == (36,)
        assert quaternion.shape == (4,)


def test_same_seed_same_run_other_seed_other_particles():
    r = route()[:60]
    q = town().queries(r)
    a, _, la = drive(r, queries=q)
    b, _, lb = drive(r, queries=q)
    assert [e.ok for e in a] == [e.ok for e in b]
    for ea, eb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ea.best_pose, eb.best_pose)
        assert ea.confidence == eb.confidence
    np.testing.assert_array_equal(la.particles, lb.particles)
    _, _, lc = drive(r, queries=q, localizer=make_localizer(seed=3))
    assert not np.array_equal(la.particles, lc.particles)


def test_retrieval_done_by_the_caller_gives_the_same_run():
    r = route()[:30]
    q = town().queries(r)
    motions = motions_from_odometry(odometry(r), len(r))
    inside = make_localizer()
    outside = make_localizer()
    k = outside.config.inject_top_k
    for i, (qq, m) in enumerate(zip(q, motions, strict=True)):
        found = town().database.search(qq, k)
        a = inside.step(qq, 0.1 * i, m)
        b = outside.step(qq, 0.1 * i, m, retrieved=(found.indices[0], found.scores[0]))
        np.testing.assert_array_equal(a.best_pose, b.best_pose)
        np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(inside.particles, outside.particles)


def test_bad_input_is_refused():
    db = town().database
    loc = make_localizer()
    with pytest.raises(MapError):
        loc.step(np.zeros(DIM + 1, np.float32), 0.0, None)
    q = np.zeros(DIM, np.float32)
    q[3] = np.nan
    with pytest.raises(MapError):
        loc.step(q, 0.0, None)
    with pytest.raises(MapError):  # nothing retrieved at the start: nothing to start from
        loc.step(np.ones(DIM, np.float32), 0.0, None, retrieved=(np.full(3, -1), np.zeros(3)))
    assert loc.state is TrackState.INITIALIZING
    with pytest.raises(ConfigError):
        SequenceFilter(db, evidence(), DEFAULT_CONFIG)  # a single-frame config
    with pytest.raises(ConfigError):
        SequenceFilter(db, config(), config())  # no evidence model
    with pytest.raises(ConfigError):
        run_sequence(loc, np.zeros((3, DIM), np.float32), [0.0, 0.1], [None, None, None])


# ----------------------------------------------------------------------------- measurement


def test_field_statistics_are_the_whole_maps():
    field = MapField(town().database, config())
    q = town().queries(route()[:5], seed=9)
    emb = np.asarray(town().database.embeddings, np.float64)
    for qq in q:
        scores = emb @ qq.astype(np.float64)
        mean, std = field.frame_stats(qq)
        assert mean == pytest.approx(scores.mean(), rel=1e-6, abs=1e-9)
        assert std == pytest.approx(scores.std(ddof=1), rel=1e-6)
        z = field.zscores(qq, np.array([0, 5, -1, 5]))
        assert z[0] == pytest.approx((scores[0] - scores.mean()) / scores.std(ddof=1), rel=1e-5)
        assert np.isnan(z[2])
        assert z[1] == z[3]


def test_field_explains_a_particle_by_the_nearest_entry_facing_its_way():
    cfg = config()
    t = town()
    field = MapField(t.database, cfg)
    i = 20  # an entry on the street y = 0, heading east
    x, y, yaw = t.xyyaw[i]
    q = np.asarray(t.database.embeddings[i], np.float32)
    particles = np.array(
        [
            [x, y, yaw],  # at the entry
            [x + 0.3, y + 0.2, yaw + 0.1],  # next to it
            [x, y + 3.0, yaw],  # 3 m off: the same entry, farther
            [x, y, yaw + math.pi],  # facing the other way: no crop looks there
            [x, y + 30.0, yaw],  # between streets: nothing in reach
        ]
    )
    s = field.score(q, particles)
    assert s.entry[0] == i
    assert s.distance[0] == pytest.approx(0.0)
    assert s.entry[1] == i
    assert s.entry[2] == i
    assert s.distance[2] == pytest.approx(3.0)
    assert s.z[0] == s.z[2]  # the frame's score at that entry; the distance weighs it
    assert s.entry[3] == -1
    assert s.entry[4] == -1
    np.testing.assert_array_equal(s.covered, [True, True, True, False, False])
    assert np.isnan(s.z[3])
    assert np.isnan(s.distance[4])
    # the evidence: the entry itself beats it seen from 3 m aside, for its own embedding
    llr = evidence().llr(s.z[:3], s.distance[:3])
    assert llr[0] > 0
    assert llr[0] >= llr[2]


def _corner_map(crops: tuple[float, ...]) -> MapDatabase:
    """A street east along y = 0 (x = 0..20, 1 m apart) and one north along x = 25, each
    keyframe holding a crop per heading offset in ``crops`` (degrees)."""
    east = [(float(x), 0.0, 0.0) for x in range(21)]
    north = [(25.0, float(y), 90.0) for y in range(21)]
    poses = []
    for x, y, heading in east + north:
        for crop in crops:
            T = np.eye(4)
            T[:3, :3] = Rotation.from_euler("z", heading + crop, degrees=True).as_matrix()
            T[:2, 3] = (x, y)
            poses.append(T)
    emb = np.random.default_rng(0).standard_normal((len(poses), 8)).astype(np.float32)
    keyframes = np.repeat(np.arange(len(east + north)), len(crops))
    return MapDatabase.from_poses(
        emb, np.stack(poses), np.arange(len(poses), dtype=float), synthetic_info(8),
        keyframes=keyframes, heading_deg=np.tile(np.mod(crops, 360.0), len(east + north)),
    )  # fmt: skip


@pytest.mark.parametrize("crops", [(0.0,), (0.0, 180.0)])
def test_a_particle_facing_away_from_its_nearest_keyframe_finds_the_street_it_faces(crops):
    database = _corner_map(crops)
    corner_north = 21 * len(crops)  # the first entry of the north street, at (25, 0)
    p = np.array([[20.2, 0.1, math.radians(88.0)]])  # at the east street's end, facing north
    assert MapField(database, config()).explaining(p)[0] == corner_north
    # ... found among the `neighbours` nearest keyframes only: the east street's last six
    # keyframes are nearer than (25, 0)
    assert MapField(database, config(neighbours=4)).explaining(p)[0] == -1


@pytest.mark.parametrize("crops", [(0.0,), (0.0, 180.0), (0.0, 90.0, 180.0, 270.0)])
def test_the_explaining_entry_is_the_nearest_facing_one_among_the_nearest_keyframes(crops):
    """Against the definition, brute force: random particles around a corner."""
    database = _corner_map(crops)
    cfg = config()
    field = MapField(database, cfg)
    rng = np.random.default_rng(3)
    n = 3000
    p = np.c_[rng.uniform(-15, 40, n), rng.uniform(-15, 35, n), rng.uniform(-4, 4, n)]
    got = field.explaining(p)
    xy = database.positions[:, :2]
    yaw = Rotation.from_quat(database.orientations).as_euler("ZYX")[:, 0]
    tol = math.radians(cfg.heading_tolerance_deg)
    depth = cfg.neighbours * len(crops)
    for i in range(n):
        d = np.hypot(*(xy - p[i, :2]).T)
        order = np.argsort(d, kind="stable")[:depth]
        near = order[d[order] < cfg.entry_radius_m]
        facing = near[np.abs(wrap(yaw[near] - p[i, 2])) <= tol]
        want = facing[0] if len(facing) else -1
        # ties in distance (the crops of one keyframe) may come in either order: only one
        # of them faces within the tolerance unless two crops are closer than it
        assert got[i] == want or d[got[i]] == d[want], (i, got[i], want)


def test_the_towns_calibration_separates_its_places():
    t = town()
    r = route()
    drive_ = LabelledDrive(t.queries(r, seed=4), truth_poses(r))
    cal = calibrate(t.database, [drive_], model_fingerprint="town", same_drive=False)
    assert cal.frames == len(r)
    assert cal.match_mean > 1.5  # the true place stands out of the map's scores...
    assert abs(cal.null_mean) < 0.3  # ...elsewhere is the map's average
    assert cal.separates()
    ev = cal.evidence()
    assert ev.llr(np.array([cal.match_mean]))[0] > 0 > ev.llr(np.array([cal.null_mean]))[0]
    assert 0.0 < ev.scale <= 2.0
    assert cal.correlation_length_m > 0
    far = truth_poses(r[:40]).copy()
    far[:, :2, 3] += 30.0  # in the middle of a block: no entry of the place in reach
    with pytest.raises(MapError, match="frames lie within"):
        calibrate(t.database, [LabelledDrive(t.queries(r[:40]), far)], model_fingerprint="town",
                  same_drive=False)  # fmt: skip
