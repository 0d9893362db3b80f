"""An operator's initial pose (the node's ``initialpose``) as the sequence filter's prior: the
mount's lever arm, the draw, and on the synthetic town a first fix within a few metres from a
good prior, no wrong fix from a wrong one; the no-motion update and reconfiguration."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from sequence_helpers import odometry, stamps
from test_sequence_filter import config, make_localizer, route, town

from liploc_ros.errors import ConfigError, MapError
from liploc_ros.localization.initial_pose import draw_prior, sensor_prior
from liploc_ros.localization.motion import Motion, motions_from_odometry
from liploc_ros.localization.sequence import run_sequence

#: RViz's "2D Pose Estimate" covariance over x, y, yaw
RVIZ = np.diag([0.25, 0.25, 0.0685])


def _pose(x: float, y: float, yaw: float) -> np.ndarray:
    T = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = x, y
    return T


def test_the_prior_moves_to_the_lidar_with_the_lever_arm():
    mount = _pose(1.5, 0.0, 0.0)
    mount[2, 3] = 1.73  # 1.5 m ahead of base_link, 1.73 m up
    cov6 = np.diag([0.3, 0.2, 9.0, 9.0, 9.0, 0.04])
    cov6[0, 5] = cov6[5, 0] = 0.01
    mean, cov = sensor_prior(_pose(10.0, 5.0, math.pi / 2), cov6, mount)
    np.testing.assert_allclose(mean, [10.0, 6.5, math.pi / 2], atol=1e-12)
    # facing +y, a yaw error swings the LiDAR along -x by 1.5 m per radian
    jac = np.array([[1.0, 0.0, -1.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    planar = cov6[np.ix_([0, 1, 5], [0, 1, 5])]
    np.testing.assert_allclose(cov, jac @ planar @ jac.T, atol=1e-12)
    # a Monte Carlo check of the same first-order propagation
    gen = np.random.default_rng(0)
    base = gen.multivariate_normal([10.0, 5.0, math.pi / 2], planar, size=200_000)
    lidar_x = base[:, 0] + 1.5 * np.cos(base[:, 2])
    assert np.var(lidar_x) == pytest.approx(cov[0, 0], rel=0.05)


@pytest.mark.parametrize(
    ("T", "cov", "what"),
    [
        (np.eye(3), np.eye(6), "4 x 4 pose"),
        (np.eye(4), np.eye(3), "6 x 6 covariance"),
        (np.full((4, 4), np.nan), np.eye(6), "4 x 4 pose"),
    ],
)
def test_a_malformed_prior_is_refused_with_the_reason(T, cov, what):
    with pytest.raises(ConfigError, match=what):
        sensor_prior(T, cov, np.eye(4))


def test_the_draw_spreads_at_least_as_an_injection_and_refuses_a_bad_covariance():
    cfg = config()
    p = draw_prior(np.array([5.0, 5.0, 3.1]), np.zeros((3, 3)), cfg, np.random.default_rng(1))
    assert p.shape == (cfg.particles, 3)
    assert np.std(p[:, 0]) == pytest.approx(cfg.inject_position_std_m, rel=0.1)
    assert np.abs(p[:, 2]).max() <= math.pi  # headings wrapped
    with pytest.raises(ConfigError, match="positive semi-definite"):
        draw_prior(np.zeros(3), -100.0 * np.eye(3), cfg, np.random.default_rng(1))


def _run(start: int, given: np.ndarray | None, seed: int = 0) -> tuple[list, np.ndarray]:
    r = route()[start:]
    q = town().queries(r, seed=3)
    moves = motions_from_odometry(odometry(r, seed=4), len(r))
    loc = make_localizer(seed)
    if given is not None:
        loc.seed(given, RVIZ)
    return run_sequence(loc, q, stamps(len(r)), moves), r


def _first_fix(est: list, r: np.ndarray) -> tuple[int | None, int]:
    """(frame of the first fix, fixes further than 20 m from the truth)."""
    errors = [float(np.hypot(*(e.pose[:2, 3] - r[i, :2]))) for i, e in enumerate(est) if e.ok]
    first = next((i for i, e in enumerate(est) if e.ok), None)
    return first, sum(err > 20.0 for err in errors)


def test_a_good_initial_pose_fixes_within_a_few_metres_and_sooner_than_none():
    start = 100
    truth = route()[start]
    unseeded, wrong = _first_fix(*_run(start, None))
    assert wrong == 0
    for offset in ((3.0, -4.0, math.radians(15)), (-2.0, 2.0, math.radians(-20))):
        first, wrong = _first_fix(*_run(start, truth + np.array(offset)))
        assert wrong == 0
        assert first is not None
        assert first <= 5  # one frame per metre: within 5 m of travel
        assert unseeded is None or first < unseeded


def test_a_wrong_initial_pose_gives_no_wrong_fix_and_is_given_up():
    start = 0
    r = route()
    far = np.array([180.0, 120.0, math.pi / 2])  # another street, over 200 m away
    assert np.hypot(*(far[:2] - r[start, :2])) > 200.0
    est, rr = _run(start, far)
    first, wrong = _first_fix(est, rr)
    assert wrong == 0
    assert first is not None  # found itself anyway
    assert est[first].pose is not None


def test_a_prior_wholly_off_the_map_is_refused_and_the_filter_kept():
    loc = make_localizer()
    q = town().queries(route()[:3], seed=3)
    loc.step(q[0], 0.0, None)
    before = loc.particles.copy()
    off = np.array([5000.0, -5000.0, 0.3])  # kilometres from every map entry
    with pytest.raises(MapError, match=r"initial pose \(x 5000\.0 y -5000\.0.*off the map"):
        loc.seed(off, RVIZ)
    np.testing.assert_array_equal(loc.particles, before)
    loc.seed(route()[1], RVIZ)  # a prior on the map is taken
    assert loc.status.mode_probability > 0.9


def test_a_no_motion_update_weighs_a_standing_frame():
    r = route()[:1]
    q = town().queries(route()[:40], seed=3)

    def confidences(full: bool) -> list[float]:
        loc = make_localizer()
        loc.seed(r[0], RVIZ)
        out = []
        for i in range(3):
            if full:
                loc.request_full_update()
            out.append(loc.step(q[0], 0.1 * i, Motion(0.0, 0.0, 0.0) if i else None).confidence)
        return out

    still, asked = confidences(False), confidences(True)
    # standing still, frames 2 and 3 are worth (almost) nothing; asked for, they count
    assert abs(still[2] - still[1]) < abs(asked[2] - asked[1])


def test_reconfigure_takes_gates_but_not_the_particle_count():
    loc = make_localizer()
    loc.reconfigure(dataclasses.replace(loc.config, target_precision=0.999))
    assert loc.config.target_precision == 0.999
    with pytest.raises(ConfigError, match=r"sequence\.particles cannot change"):
        loc.reconfigure(dataclasses.replace(loc.config, particles=50))
