"""The synthetic town: streets, objects, route, configs (no rendering)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from liploc_ros.config import from_dict
from liploc_ros.datasets.synthetic import (
    Material,
    RigConfig,
    TownConfig,
    TraversalConfig,
    make_drive,
    make_town,
)
from liploc_ros.datasets.synthetic.primitives import BOX, Primitives
from liploc_ros.errors import ConfigError

SEED = 3


def _generate(seed: int):
    # bypass make_town's cache: determinism means two fresh generations agree
    return make_town.__wrapped__(TownConfig(seed=seed))


def _assert_same_prims(a: Primitives, b: Primitives) -> None:
    for f in dataclasses.fields(Primitives):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)


def test_town_is_deterministic():
    a, b = _generate(SEED), _generate(SEED)
    _assert_same_prims(a.static, b.static)
    np.testing.assert_array_equal(a.roads.xs, b.roads.xs)
    np.testing.assert_array_equal(a.roads.ns, b.roads.ns)
    _assert_same_prims(a.parked_cars(2, 0.4), b.parked_cars(2, 0.4))
    ra, rb = a.route(500.0), b.route(500.0)
    np.testing.assert_array_equal(ra.x, rb.x)


def test_different_seed_makes_a_different_town():
    a, b = _generate(SEED), _generate(SEED + 1)
    assert not np.array_equal(a.roads.xs, b.roads.xs)
    assert len(a.static) != len(b.static) or not np.array_equal(a.static.cx, b.static.cx)


def test_street_network_has_junctions_and_missing_streets():
    roads = make_town(TownConfig(seed=SEED)).roads
    assert roads.is_connected()
    deg = roads.degree[roads.node]
    assert deg.min() >= 2  # no dead ends
    assert (deg == 3).any()
    assert (deg == 4).any()
    n_segments = roads.ns.size + roads.ew.size
    missing = n_segments - roads.ns.sum() - roads.ew.sum()
    assert 0 < missing <= round(0.2 * n_segments)
    spacing = np.diff(roads.xs)
    assert spacing.min() >= 55.0
    assert spacing.max() <= 110.0
    assert spacing.std() > 1.0


def test_ground_materials_follow_the_street_layout():
    roads = make_town(TownConfig(seed=SEED)).roads
    i, j = np.argwhere(roads.ns)[0]  # a north-south street segment
    x0 = roads.xs[i]
    y = roads.ys[j] + np.linspace(roads.half_walk + 6.0, roads.half_walk + 30.0, 400)
    centre = roads.ground_material(np.full_like(y, x0), y)
    # the dashed centre line: paint and asphalt alternating every 3 m
    assert set(np.unique(centre)) == {Material.ASPHALT, Material.LANE_PAINT}
    assert 0.3 < np.mean(centre == Material.LANE_PAINT) < 0.7
    across = x0 + np.array([1.75, roads.lane_width, roads.half_road + 1.5])
    mats = roads.ground_material(across, np.full(3, y[200]))
    assert list(mats) == [Material.ASPHALT, Material.LANE_PAINT, Material.SIDEWALK]


def test_objects_stand_off_the_road():
    town = make_town(TownConfig(seed=SEED))
    scene = town.scene()
    boxes = np.flatnonzero((scene.shape == BOX) & (scene.material == Material.FACADE))
    assert len(boxes) > 200
    corners = []
    for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        hx, hy = sx * scene.hx[boxes], sy * scene.hy[boxes]
        corners.append(
            (
                scene.cx[boxes] + hx * scene.cos[boxes] - hy * scene.sin[boxes],
                scene.cy[boxes] + hx * scene.sin[boxes] + hy * scene.cos[boxes],
            )
        )
    x = np.concatenate([c[0] for c in corners] + [scene.cx[boxes]])
    y = np.concatenate([c[1] for c in corners] + [scene.cy[boxes]])
    ground = town.roads.ground_material(x, y)
    assert not np.isin(ground, [Material.ASPHALT, Material.LANE_PAINT, Material.SIDEWALK]).any()
    # buildings vary: heights, footprints, colours
    assert np.ptp(scene.z1[boxes]) > 20.0
    assert np.ptp(scene.hx[boxes]) > 5.0
    assert len(np.unique(scene.colour[boxes].round(2), axis=0)) > 50
    # parked cars stand in the parking lane, on asphalt
    cars = np.flatnonzero(scene.material == Material.CAR_BODY)
    assert len(cars) > 50
    assert np.all(town.roads.ground_material(scene.cx[cars], scene.cy[cars]) == Material.ASPHALT)


def test_route_turns_smoothly_and_longer_routes_extend_shorter_ones():
    drive = make_drive(0, 0, frames=300)
    yaw = np.unwrap(drive.trajectory.yaw)
    assert np.ptp(yaw) > np.radians(60.0)  # at least one turn
    assert np.abs(np.diff(yaw)).max() < 0.15  # no kinks: rounded corners
    # 10 m/s at 10 Hz along the route's centre line; the lane is longer or shorter in turns
    np.testing.assert_allclose(np.diff(drive.trajectory.s), 1.0, atol=1e-9)
    steps = np.linalg.norm(np.diff(drive.poses[:, :2, 3], axis=0), axis=1)
    assert np.median(steps) == pytest.approx(1.0, abs=1e-6)
    assert steps.min() > 0.75
    assert steps.max() < 1.25
    town = drive.town
    short, long = town.route(300.0), town.route(1500.0)
    s = np.linspace(0.0, 300.0, 301)
    np.testing.assert_allclose(short.sample(s)[0], long.sample(s)[0], atol=1e-9)
    np.testing.assert_allclose(short.sample(s)[1], long.sample(s)[1], atol=1e-9)


def test_configs_reject_bad_values_and_unknown_keys():
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TownConfig, {"seed": 1, "blocks": 4})
    with pytest.raises(ConfigError, match="missing_streets"):
        TownConfig(missing_streets=0.9)
    with pytest.raises(ConfigError, match="seed"):
        TownConfig(seed=-1)
    with pytest.raises(ConfigError, match="lidar_fov_deg"):
        RigConfig(lidar_fov_deg=(-5.0, 2.0))
    with pytest.raises(ConfigError, match="lane"):
        TraversalConfig(lane="middle")  # type: ignore[arg-type]
    cfg = from_dict(RigConfig, {"image_scale": 0.25, "lidar_azimuth_steps": 1024})
    assert cfg.image_size == (310, 94)
    with pytest.raises(ConfigError, match="unknown town option"):
        make_drive(0, 0, 10, blocks=3)
    with pytest.raises(ConfigError, match="frames"):
        make_drive(0, 0, 0)
