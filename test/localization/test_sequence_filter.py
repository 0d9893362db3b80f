"""The sequence localizer on a synthetic town: it converges where single frames fail, recovers
from a kidnap, refuses to fix off the map, works without odometry; and its parts (dominant
mode, resampling, measurement field, configuration, estimates, determinism, reset)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
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

from liploc_ros.config import from_dict
from liploc_ros.errors import ConfigError, MapError
from liploc_ros.localization.config import DEFAULT_CONFIG
from liploc_ros.localization.estimate import REASONS, message_fields
from liploc_ros.localization.measurement import MapField, calibrate
from liploc_ros.localization.particles import (
    dominant_mode,
    effective_count,
    normalized,
    systematic_resample,
)
from liploc_ros.localization.sequence import (
    SequenceLocalizer,
    TrackState,
    motions_from_odometry,
    run_sequence,
)
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.localization.track_metrics import relock, track_summary

PARTICLES = 500
#: frames (= metres) after which a converged filter is judged
SETTLE = 40


@functools.lru_cache(maxsize=1)
def town() -> Town:
    return make_town(0)


@functools.lru_cache(maxsize=1)
def route() -> np.ndarray:
    return staircase()


def config(seed: int = 0, **kw) -> SequenceConfig:
    return SequenceConfig(particles=PARTICLES, seed=seed, **kw)


def drive(
    route_xyyaw: np.ndarray,
    *,
    seed: int = 0,
    queries: np.ndarray | None = None,
    with_odometry: bool = True,
    blind_at: int | None = None,
    localizer: SequenceLocalizer | None = None,
):
    """Run a localizer along a drive; returns (estimates, truth, localizer)."""
    q = town().queries(route_xyyaw, seed=1 + seed) if queries is None else queries
    n = len(route_xyyaw)
    odom = odometry(route_xyyaw, seed=5 + seed, blind_at=blind_at) if with_odometry else None
    loc = localizer or SequenceLocalizer(town().database, config(seed))
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


@pytest.mark.parametrize("seed", [0, 1])
def test_refuses_to_fix_off_the_map(seed):
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
    # "uncertain" is lost too: the map seemed to agree for a moment, the mode did not hold
    assert {e.reason for e in est[on_map + bounded :]} <= {"lost", "uncertain"}
    assert all(e.pose is None and e.covariance is None for e in est[on_map + bounded :])
    assert loc.state is TrackState.LOST


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
    loc = SequenceLocalizer(town().database, config())
    q = town().queries(route()[:1])[0]
    loc.step(q, 0.0, None)
    assert loc.status.injected == PARTICLES
    assert loc.particles.shape == (PARTICLES, 3)
    top = town().database.search(q, loc.config.inject_top_k).indices[0]
    d = np.min(np.hypot(*(loc.particles[:, None, :2] - town().xyyaw[top][None, :, :2]).T), axis=0)
    assert np.quantile(d, 0.99) < 4 * loc.config.inject_position_std_m
    loc.step(q, 0.1, None)
    assert loc.status.injected == round(loc.config.inject_fraction * PARTICLES)


def test_no_kidnap_prior_injects_only_when_the_likelihood_falls():
    # kidnap_probability 0 is valid: "anywhere else" then gets prior mass only while the
    # short-term likelihood is below the long-term one (augmented MCL), else none at all
    r = route()[:100]
    loc = SequenceLocalizer(town().database, config(kidnap_probability=0.0))
    q = town().queries(r)
    motions = motions_from_odometry(odometry(r), len(r))
    injected = []
    est = []
    for i, (qq, m) in enumerate(zip(q, motions, strict=True)):
        est.append(loc.step(qq, 0.1 * i, m))
        injected.append(loc.status.injected)
    assert injected[0] == PARTICLES
    assert 0 in injected[1:]
    s = track_summary(est, truth_poses(r))
    assert s["first_fix_distance_m"] <= SETTLE
    assert s["wrong_fixes"] == 0


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
        assert diag[0] >= cfg.min_position_std_m**2
        assert diag[1] >= cfg.min_position_std_m**2
        assert diag[5] >= math.radians(cfg.min_yaw_std_deg) ** 2
        # z, roll, pitch: the filter knows nothing of them beyond the floors
        np.testing.assert_allclose(diag[2:5], np.square(floors[2:5]))
        # x and y: the mode's spread on top of the floor
        spread2 = 0.5 * (diag[0] + diag[1]) - cfg.min_position_std_m**2
        assert spread2 == pytest.approx(e.spread_m**2, rel=1e-6, abs=1e-12)
        assert e.spread_m <= cfg.max_position_std_m
        assert e.confidence >= cfg.min_mode_weight
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
    loc = SequenceLocalizer(town().database, config(seed=3))
    _, _, lc = drive(r, queries=q, localizer=loc)
    assert not np.array_equal(la.particles, lc.particles)


def test_retrieval_done_by_the_caller_gives_the_same_run():
    r = route()[:30]
    q = town().queries(r)
    motions = motions_from_odometry(odometry(r), len(r))
    inside = SequenceLocalizer(town().database, config())
    outside = SequenceLocalizer(town().database, config())
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
    loc = SequenceLocalizer(db, config())
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
        SequenceLocalizer(db, DEFAULT_CONFIG)  # a single-frame config
    with pytest.raises(ConfigError):
        run_sequence(loc, np.zeros((3, DIM), np.float32), [0.0, 0.1], [None, None, None])


# ----------------------------------------------------------------------------- particles


def cluster(centre, n, spread, gen):
    p = np.empty((n, 3))
    p[:, 0] = centre[0] + gen.uniform(-spread, spread, n)
    p[:, 1] = centre[1] + gen.uniform(-spread, spread, n)
    p[:, 2] = centre[2] + gen.uniform(-0.1, 0.1, n)
    return p


def test_estimate_is_the_dominant_mode_not_the_mean():
    gen = np.random.default_rng(0)
    a = cluster((0.0, 0.0, 0.0), 300, 1.5, gen)
    b = cluster((60.0, 0.0, 0.0), 300, 1.5, gen)
    p = np.concatenate([a, b])
    w = np.concatenate([np.full(300, 0.6 / 300), np.full(300, 0.4 / 300)])
    mode = dominant_mode(p, w, 10.0, 45.0)
    assert mode.weight == pytest.approx(0.6)
    np.testing.assert_array_equal(mode.members, np.arange(600) < 300)
    np.testing.assert_allclose(mode.pose[:2], a[:, :2].mean(axis=0), atol=1e-9)
    assert abs(mode.pose[0] - (w @ p[:, 0])) > 20.0  # the mean lies between the streets
    assert mode.position_std == pytest.approx(1.5 / math.sqrt(3), rel=0.15)
    cov = mode.covariance
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() >= 0
    # weight decides, not the particle count
    w2 = np.concatenate([np.full(300, 0.3 / 300), np.full(300, 0.7 / 300)])
    many = np.concatenate([a, b[:60]])
    w3 = np.concatenate([np.full(300, 0.3 / 300), np.full(60, 0.7 / 60)])
    assert dominant_mode(p, w2, 10.0, 45.0).pose[0] == pytest.approx(60.0, abs=0.5)
    assert dominant_mode(many, w3, 10.0, 45.0).pose[0] == pytest.approx(60.0, abs=0.5)


def test_dominant_mode_separates_headings_and_wraps_them():
    gen = np.random.default_rng(1)
    # one place, two opposite headings: two modes; one of them straddles +-pi
    east = cluster((0.0, 0.0, 0.0), 200, 1.0, gen)
    west = cluster((0.0, 0.0, math.pi), 200, 1.0, gen)
    west[:, 2] = (west[:, 2] + math.pi) % (2 * math.pi) - math.pi
    p = np.concatenate([east, west])
    w = np.concatenate([np.full(200, 0.35 / 200), np.full(200, 0.65 / 200)])
    mode = dominant_mode(p, w, 10.0, 45.0)
    assert mode.weight == pytest.approx(0.65)
    assert abs(abs(mode.pose[2]) - math.pi) < 0.05
    assert math.sqrt(mode.covariance[2, 2]) < 0.1  # not a spread of 2 pi


def test_dominant_mode_finds_a_mode_split_over_grid_cells():
    # the heavier cloud sits on a corner of the mode grid (cells of mode_radius_m), so its
    # weight is shared by four cells, each lighter than the compact other cloud's one
    gen = np.random.default_rng(2)
    a = cluster((10.0, 10.0, 0.0), 400, 1.0, gen)
    b = cluster((55.0, 55.0, 0.0), 100, 1.0, gen)
    p = np.concatenate([a, b])
    w = np.concatenate([np.full(400, 0.55 / 400), np.full(100, 0.45 / 100)])
    mode = dominant_mode(p, w, 10.0, 45.0)
    assert mode.weight == pytest.approx(0.55)
    np.testing.assert_allclose(mode.pose[:2], [10.0, 10.0], atol=0.2)


def test_resampling_keeps_counts_proportional_to_weights():
    gen = np.random.default_rng(3)
    w = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    counts = np.bincount(systematic_resample(w, 800, gen), minlength=5)
    np.testing.assert_array_equal(counts, [400, 200, 100, 100, 0])
    for _ in range(20):
        w = gen.random(50) ** 3
        w[gen.random(50) < 0.2] = 0.0
        w /= w.sum()
        idx = systematic_resample(w, 1000, gen)
        counts = np.bincount(idx, minlength=50)
        assert np.abs(counts - 1000 * w).max() < 1.0 + 1e-9  # low variance: within one
        assert (counts[w == 0] == 0).all()
        assert idx.min() >= 0
        assert idx.max() < 50
        assert np.all(np.diff(idx) >= 0)


def test_weights_from_log_weights():
    w = normalized(np.array([1000.0, 1000.0 + math.log(3.0), -1e9]))
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0])
    assert effective_count(np.full(40, 1 / 40)) == pytest.approx(40.0)
    assert effective_count(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)


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


def test_field_explains_a_particle_by_nearby_entries_of_its_heading():
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
            [x, y + 3.0, yaw],  # 3 m off
            [x, y, yaw + math.pi],  # facing the other way
            [x, y + 30.0, yaw],  # between streets: nothing in reach
        ]
    )
    s = field.score(q, particles)
    assert s.entry[0] == i
    assert s.log_likelihood[0] > 1.0
    assert s.log_likelihood[1] > 0.5 * s.log_likelihood[0]
    assert s.log_likelihood[2] < s.log_likelihood[0]
    assert s.entry[3] == -1
    assert s.log_likelihood[3] == 0.0  # no worse than off the map
    assert s.entry[4] == -1
    assert s.log_likelihood[4] == 0.0
    assert (s.log_likelihood >= 0).all()


def test_calibration_on_the_town():
    t = town()
    r = route()
    field = MapField(t.database, config())
    cal = calibrate(field, t.queries(r, seed=4), truth_poses(r))
    assert cal.frames == len(r)
    assert cal.match_mean > 2.0  # the true place stands out of the map's scores...
    assert cal.match_std < cal.match_mean  # ...in spite of the noise
    assert cal.gain > 0
    assert cal.z_break_even == pytest.approx(cal.match_mean / 2)
    far = truth_poses(r[:5]).copy()
    far[:, :2, 3] += 30.0  # in the middle of a block: out of reach
    with pytest.raises(MapError):
        calibrate(field, t.queries(r[:5]), far)


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "bad",
    [
        {"particles": 5},
        {"particles": 100.0},
        {"particles": True},
        {"seed": 1.5},
        {"neighbours": 0},
        {"inject_top_k": 0},
        {"gain": 0.0},
        {"gain": float("nan")},
        {"entry_radius_m": -1.0},
        {"max_speed_mps": float("inf")},
        {"alpha1": -0.01},
        {"alpha3": float("nan")},
        {"lateral_noise": -1.0},
        {"inject_fraction": 1.5},
        {"kidnap_probability": -0.1},
        {"min_mode_weight": 1.01},
        {"kidnap_probability": 0.5, "inject_max_fraction": 0.3},
        {"alpha_slow": 0.2, "alpha_fast": 0.1},
        {"alpha_fast": 1.5},
        {"support_rate": 2.0},
        {"z_break_even": float("nan")},
        {"min_support": float("inf")},
        {"heading_tolerance_deg": 200.0},
        {"mode_yaw_deg": 181.0},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        SequenceConfig(**bad)
    with pytest.raises(ConfigError):  # the way the node and the CLI read it
        from_dict(SequenceConfig, bad)


def test_config_accepts_edge_values_and_parses():
    SequenceConfig(
        particles=10,
        alpha1=0.0,
        alpha2=0.0,
        alpha3=0.0,
        alpha4=0.0,
        inject_fraction=0.0,
        kidnap_probability=0.0,
        min_mode_weight=1.0,
        heading_tolerance_deg=180.0,
        min_support=-1.0,
    )
    parsed = from_dict(SequenceConfig, {"particles": 300, "gain": 2, "seed": 4})
    assert parsed == dataclasses.replace(SequenceConfig(), particles=300, gain=2.0, seed=4)
    with pytest.raises(ConfigError):
        from_dict(SequenceConfig, {"particle": 300})
    with pytest.raises(ConfigError):
        from_dict(SequenceConfig, {"inject_fraction": "lots"})
