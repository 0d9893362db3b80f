"""The sequence localizer's motion model: AMCL's odometry noise against hand-computed cases,
exact composition without noise, reverse driving, and the bounded random walk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liploc_ros.errors import ConfigError
from liploc_ros.geometry import integrate_steps, planar, se2_matrices, wrap
from liploc_ros.localization.motion import (
    Motion,
    apply_odometry,
    motions_from_odometry,
    odometry_noise,
    random_walk,
)
from liploc_ros.localization.sequence_config import SequenceConfig

#: round numbers so that the expected deviations are easy to compute by hand
ALPHAS = {"alpha1": 0.1, "alpha2": 0.01, "alpha3": 0.04, "alpha4": 0.09}
#: no sideways term and no floors: only the alphas act
ONLY_ALPHAS = SequenceConfig(
    **ALPHAS, lateral_noise=0.0, min_step_noise_m=0.0, min_step_yaw_noise_deg=0.0
)
#: no noise at all
EXACT = SequenceConfig(
    alpha1=0.0,
    alpha2=0.0,
    alpha3=0.0,
    alpha4=0.0,
    lateral_noise=0.0,
    min_step_noise_m=0.0,
    min_step_yaw_noise_deg=0.0,
)


def gen(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def compose(p: np.ndarray, m: Motion) -> np.ndarray:
    """(N, 3) particles moved by ``m`` expressed in each particle's own frame."""
    c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
    return np.column_stack(
        [p[:, 0] + c * m.dx - s * m.dy, p[:, 1] + s * m.dx + c * m.dy, wrap(p[:, 2] + m.dyaw)]
    )


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(wrap(np.asarray(a) - np.asarray(b)))


def at_origin(n: int, yaw: float = 0.0) -> np.ndarray:
    p = np.zeros((n, 3))
    p[:, 2] = yaw
    return p


# ----------------------------------------------------------------------------- noise formulas


def test_pure_forward_motion_noise_is_from_translation_only():
    # rot1 = rot2 = 0, trans = 2: sd_rot = sqrt(a2 * 4), sd_trans = sqrt(a3 * 4)
    sd_rot1, sd_trans, sd_rot2 = odometry_noise(Motion(2.0, 0.0, 0.0), ONLY_ALPHAS)
    assert sd_rot1 == pytest.approx(0.2)
    assert sd_trans == pytest.approx(0.4)
    assert sd_rot2 == pytest.approx(0.2)


def test_rotation_in_place_noise_is_from_rotation_only():
    # trans = 0: rot1 is undefined and taken as 0, rot2 = pi / 2
    sd_rot1, sd_trans, sd_rot2 = odometry_noise(Motion(0.0, 0.0, math.pi / 2), ONLY_ALPHAS)
    assert sd_rot1 == pytest.approx(0.0)
    assert sd_trans == pytest.approx(0.3 * math.pi / 2)  # sqrt(a4 * (pi/2)^2)
    assert sd_rot2 == pytest.approx(math.sqrt(0.1) * math.pi / 2)  # sqrt(a1 * (pi/2)^2)


def test_turning_motion_noise_mixes_all_four_alphas():
    # forward 1, left 1, turn 90 deg: rot1 = 45 deg, trans = sqrt(2), rot2 = 45 deg
    sd_rot1, sd_trans, sd_rot2 = odometry_noise(Motion(1.0, 1.0, math.pi / 2), ONLY_ALPHAS)
    q = math.pi / 4
    assert sd_rot1 == pytest.approx(math.sqrt(0.1 * q**2 + 0.01 * 2.0))
    assert sd_trans == pytest.approx(math.sqrt(0.04 * 2.0 + 0.09 * 2 * q**2))
    assert sd_rot2 == pytest.approx(sd_rot1)


@pytest.mark.parametrize("dyaw", [0.0, 0.3, -0.4])
def test_reverse_motion_is_not_a_half_turn(dyaw):
    # driving 2 m backwards: rot1 = pi counts as 0 (its distance from pi), as in amcl
    backward = odometry_noise(Motion(-2.0, 0.0, dyaw), ONLY_ALPHAS)
    forward = odometry_noise(Motion(2.0, 0.0, dyaw), ONLY_ALPHAS)
    assert backward == pytest.approx(forward)
    assert backward[0] == pytest.approx(0.2)  # no pi^2 * alpha1 in it


def test_zero_alphas_give_zero_noise():
    assert odometry_noise(Motion(3.0, -1.0, 0.7), EXACT) == (0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- sampling


def test_samples_follow_the_noise_formulas():
    n = 40_000
    out = apply_odometry(at_origin(n), Motion(2.0, 0.0, 0.0), ONLY_ALPHAS, gen(1))
    dist = np.hypot(out[:, 0], out[:, 1])
    bearing = np.arctan2(out[:, 1], out[:, 0])  # = the perturbed rot1
    assert dist.mean() == pytest.approx(2.0, abs=0.01)
    assert dist.std() == pytest.approx(0.4, rel=0.03)
    assert bearing.std() == pytest.approx(0.2, rel=0.03)
    # final heading = rot1 + rot2: independent, sd sqrt(0.2^2 + 0.2^2)
    assert out[:, 2].std() == pytest.approx(math.sqrt(0.08), rel=0.03)
    assert abs(np.corrcoef(dist, bearing)[0, 1]) < 0.03


def test_sideways_noise_grows_with_the_step_and_floors_apply_when_standing():
    n = 40_000
    side_only = SequenceConfig(
        alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0, lateral_noise=0.1,
        min_step_noise_m=0.0, min_step_yaw_noise_deg=0.0,
    )  # fmt: skip
    out = apply_odometry(at_origin(n), Motion(3.0, 0.0, 0.0), side_only, gen(2))
    np.testing.assert_allclose(out[:, 0], 3.0)
    assert out[:, 1].std() == pytest.approx(0.3, rel=0.03)  # 0.1 * 3 m
    np.testing.assert_allclose(out[:, 2], 0.0)
    # standing still: only the floors move particles
    floors = SequenceConfig(min_step_noise_m=0.05, min_step_yaw_noise_deg=0.3)
    still = apply_odometry(at_origin(n), Motion(0.0, 0.0, 0.0), floors, gen(3))
    assert still[:, 0].std() == pytest.approx(0.05, rel=0.03)
    assert still[:, 1].std() == pytest.approx(0.05, rel=0.03)
    assert still[:, 2].std() == pytest.approx(math.radians(0.3), rel=0.03)


def test_reverse_samples_move_backwards_and_keep_their_heading():
    n = 20_000
    out = apply_odometry(at_origin(n, yaw=0.5), Motion(-2.0, 0.0, 0.0), ONLY_ALPHAS, gen(4))
    dist = np.hypot(out[:, 0], out[:, 1])
    assert dist.mean() == pytest.approx(2.0, abs=0.02)
    assert dist.std() == pytest.approx(0.4, rel=0.05)
    # straight back: the bearing is the heading plus pi, with rot1's deviation of 0.2 rad
    bearing = wrap(np.arctan2(out[:, 1], out[:, 0]) - (0.5 + math.pi))
    assert abs(bearing.mean()) < 0.01
    assert bearing.std() == pytest.approx(0.2, rel=0.05)
    # the heading noise is that of a straight drive, not of two half turns
    assert angle_diff(out[:, 2], 0.5).max() < 8 * math.sqrt(0.08)
    assert wrap(out[:, 2] - 0.5).std() == pytest.approx(math.sqrt(0.08), rel=0.05)


def test_without_noise_particles_move_exactly_by_the_motion_in_their_own_frame():
    rng = gen(5)
    p = np.column_stack(
        [rng.uniform(-50, 50, 200), rng.uniform(-50, 50, 200), rng.uniform(-math.pi, math.pi, 200)]
    )
    motions = [
        Motion(1.0, 0.0, 0.0),
        Motion(2.0, 0.5, 0.3),
        Motion(-1.5, 0.2, -0.1),  # reversing
        Motion(0.0, 3.0, math.pi / 2),  # sideways (rot1 = 90 deg)
        Motion(0.7, -0.7, 3.0),
    ]
    for m in motions:
        out = apply_odometry(p, m, EXACT, rng)
        expected = compose(p, m)
        np.testing.assert_allclose(out[:, :2], expected[:, :2], atol=1e-9)
        assert angle_diff(out[:, 2], expected[:, 2]).max() < 1e-9
        assert (out[:, 2] >= -math.pi).all()
        assert (out[:, 2] < math.pi).all()


def test_rotation_in_place_turns_without_moving():
    p = np.array([[3.0, 4.0, 0.2], [-1.0, 2.0, -3.0]])
    out = apply_odometry(p, Motion(0.0, 0.0, 1.0), EXACT, gen())
    np.testing.assert_allclose(out[:, :2], p[:, :2])
    np.testing.assert_allclose(out[:, 2], wrap(p[:, 2] + 1.0))


def test_a_drive_composes_in_each_particles_frame():
    # an odometry drive with turns and a reverse; a particle that starts at the odometry's
    # first pose ends at its last one, a particle elsewhere ends at the same drive moved
    # rigidly with it
    steps = np.array([[1.0, 0.0, 0.1]] * 10 + [[0.8, 0.1, -0.3]] * 5 + [[-0.5, 0.0, 0.05]] * 4)
    drive = integrate_steps(np.array([2.0, -1.0, 0.4]), steps)
    motions = motions_from_odometry(se2_matrices(drive), len(drive))
    assert motions[0] is None
    starts = np.array([drive[0], [100.0, 50.0, -2.0], [-7.0, 3.0, 3.1]])
    p = starts.copy()
    for m in motions[1:]:
        p = apply_odometry(p, m, EXACT, gen())
    np.testing.assert_allclose(p[0, :2], drive[-1, :2], atol=1e-9)
    assert angle_diff(p[0, 2], drive[-1, 2]) < 1e-9
    for start, end in zip(starts[1:], p[1:], strict=True):
        # the same steps from another start: integrate them there
        expected = integrate_steps(start, steps)[-1]
        np.testing.assert_allclose(end[:2], expected[:2], atol=1e-9)
        assert angle_diff(end[2], expected[2]) < 1e-9


def test_apply_odometry_leaves_its_input_alone():
    p = np.array([[1.0, 2.0, 0.3]])
    before = p.copy()
    apply_odometry(p, Motion(1.0, 0.0, 0.0), SequenceConfig(), gen())
    np.testing.assert_array_equal(p, before)


# ----------------------------------------------------------------------------- random walk

NO_WALK_NOISE = SequenceConfig(
    random_walk_yaw_deg=0.0,
    random_walk_lateral_m=0.0,
    min_step_noise_m=0.0,
    min_step_yaw_noise_deg=0.0,
    max_speed_mps=20.0,
    max_gap_s=1.0,
)


def headings(n: int) -> np.ndarray:
    p = np.zeros((n, 3))
    p[:, 0] = np.arange(n) * 10.0
    p[:, 2] = wrap(np.linspace(-math.pi, math.pi, n, endpoint=False))
    return p


def along_and_across(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = after[:, :2] - before[:, :2]
    c, s = np.cos(before[:, 2]), np.sin(before[:, 2])
    return c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]


def test_random_walk_moves_forward_along_each_heading_within_max_speed():
    p = np.repeat(headings(8), 2_000, axis=0)
    out = random_walk(p, 0.1, NO_WALK_NOISE, gen(6))
    along, across = along_and_across(p, out)
    np.testing.assert_allclose(across, 0.0, atol=1e-9)
    assert along.min() >= 0.0
    assert along.max() <= 20.0 * 0.1 + 1e-12
    # uniform on [0, 2 m] for every heading alike
    for k in range(8):
        part = along[k * 2_000 : (k + 1) * 2_000]
        assert part.mean() == pytest.approx(1.0, abs=0.05)
        assert part.max() > 1.9
    np.testing.assert_allclose(angle_diff(out[:, 2], p[:, 2]), 0.0, atol=1e-12)


def test_random_walk_gap_is_clamped():
    p = np.repeat(headings(4), 500, axis=0)
    long_gap = along_and_across(p, random_walk(p, 30.0, NO_WALK_NOISE, gen(7)))[0]
    assert long_gap.max() <= 20.0 * 1.0 + 1e-9  # max_gap_s caps the step
    assert long_gap.max() > 15.0
    backwards = random_walk(p, -0.5, NO_WALK_NOISE, gen(8))  # stamps going back: no motion
    np.testing.assert_allclose(backwards, p, atol=1e-12)
    unknown = along_and_across(p, random_walk(p, float("nan"), NO_WALK_NOISE, gen(9)))[0]
    assert unknown.max() <= 20.0 + 1e-9
    assert unknown.max() > 15.0


def test_random_walk_with_its_noise_stays_near_the_heading():
    cfg = SequenceConfig()  # 4 deg heading walk, 0.3 m sideways, floors
    p = np.repeat(headings(6), 3_000, axis=0)
    out = random_walk(p, 0.1, cfg, gen(10))
    along, across = along_and_across(p, out)
    bound = cfg.max_speed_mps * 0.1
    assert along.mean() == pytest.approx(bound / 2, abs=0.05)
    assert np.quantile(along, 0.999) < bound + 0.5
    assert across.std() == pytest.approx(math.hypot(0.3, 0.05), rel=0.1)
    yaw_sd = math.radians(math.hypot(cfg.random_walk_yaw_deg, cfg.min_step_yaw_noise_deg))
    assert wrap(out[:, 2] - p[:, 2]).std() == pytest.approx(yaw_sd, rel=0.05)


# ----------------------------------------------------------------------------- Motion


def test_motion_between_two_poses_is_in_the_earlier_frame():
    previous = se2_matrices(np.array([[1.0, 2.0, math.pi / 2]]))[0]
    current = se2_matrices(compose(planar(previous), Motion(3.0, -1.0, 0.2)))[0]
    m = Motion.between(previous, current)
    assert (m.dx, m.dy, m.dyaw) == pytest.approx((3.0, -1.0, 0.2))
    assert m.translation == pytest.approx(math.sqrt(10.0))


@pytest.mark.parametrize(
    "bad", [(float("nan"), 0.0, 0.0), (0.0, float("inf"), 0.0), (0, 0, -np.inf)]
)
def test_motion_must_be_finite(bad):
    with pytest.raises(ConfigError):
        Motion(*bad)


def test_motions_from_odometry():
    assert motions_from_odometry(None, 3) == [None, None, None]
    odom = se2_matrices(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]] * 2))
    odom[3] = np.nan  # a gap: no motion into it nor out of it
    motions = motions_from_odometry(odom, 6)
    assert [m is None for m in motions] == [True, False, False, True, True, False]
    assert (motions[1].dx, motions[1].dy, motions[1].dyaw) == pytest.approx((1.0, 0.0, 0.0))
    assert motions[5].dx == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        motions_from_odometry(odom, 5)


def test_wrap_range():
    a = wrap(np.array([-3 * math.pi, -math.pi, 0.0, math.pi, 2.5 * math.pi]))
    np.testing.assert_allclose(a, [-math.pi, -math.pi, 0.0, -math.pi, 0.5 * math.pi])
