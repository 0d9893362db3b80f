"""Cross-traversal pairs: places, the nearest partner scan, its crop heading, the share."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.config import from_dict
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.errors import ConfigError
from liploc_ros.geometry import wrap_deg
from liploc_ros.training.config import DataSection, TrainConfig
from liploc_ros.training.cross_pairs import (
    choose_heading,
    find_cross_pairs,
    pick_partner,
    place_labels,
    yaw_deg,
)

HEADINGS = (0.0, 180.0)


def _poses(xs, ys, yaw_deg_value) -> np.ndarray:
    n = len(xs)
    poses = np.tile(np.eye(4), (n, 1, 1))
    yaw = np.radians(yaw_deg_value)
    poses[:, 0, 0], poses[:, 0, 1] = np.cos(yaw), -np.sin(yaw)
    poses[:, 1, 0], poses[:, 1, 1] = np.sin(yaw), np.cos(yaw)
    poses[:, 0, 3], poses[:, 1, 3] = xs, ys
    return poses


def _rows(counts) -> np.ndarray:
    return np.concatenate(
        [np.stack([np.full(n, s), np.arange(n)], 1) for s, n in enumerate(counts)]
    )


def _partners(cross, item):
    a, b = cross.offsets[item], cross.offsets[item + 1]
    return [
        (int(s), int(f), float(h))
        for s, f, h in zip(cross.sets[a:b], cross.frames[a:b], cross.headings[a:b], strict=True)
    ]


def test_places_group_synthetic_seeds_and_explicit_groups_only():
    specs = [
        "synthetic:5:0:300", "synthetic:5:3:300", "synthetic:6:0:300",
        "kitti360:/d:0", "kitti360:/d:2", "kitti:/k:00", "synthetic:5",
    ]  # fmt: skip
    labels = place_labels(specs)
    assert labels[0] == labels[1] == labels[6]
    assert labels[2] != labels[0]  # another seed: another town
    assert len({labels[3], labels[4], labels[5], labels[0], labels[2]}) == 5
    grouped = place_labels(specs, [["kitti360:/d:0", "kitti360:/d:2"]])
    assert grouped[3] == grouped[4]
    assert grouped[5] not in (grouped[3], grouped[0])
    with pytest.raises(ConfigError, match="not a training source"):
        place_labels(specs, [["kitti360:/d:0", "kitti360:/d:9"]])


def test_heading_choice_reversed_same_and_beyond_tolerance():
    needed = np.array([180.0, -178.0, 170.0, 0.0, 12.0, -25.0, 90.0, -120.0])
    got = choose_heading(needed, HEADINGS, 30.0)
    assert got.tolist() == [1, 1, 1, 0, 0, 0, -1, -1]
    assert choose_heading(np.array([40.0]), (0.0,), 30.0).tolist() == [-1]
    assert choose_heading(np.array([40.0]), (0.0,), 45.0).tolist() == [0]
    assert wrap_deg(np.array([-180.0, 190.0, 360.0, -90.0])).tolist() == [
        180.0,
        -170.0,
        0.0,
        -90.0,
    ]


def test_nearest_scan_within_the_radius_and_none_beyond():
    # drive 0 along x at y = 0 heading east; drive 1 reversed (west), 2 m to the side, its
    # frames every 1.5 m; drive 2 nearly the same direction as drive 0, 4 m to its right
    xs0 = np.array([0.0, 5.0, 10.0, 40.0])
    xs1 = np.arange(0.0, 13.0, 1.5)
    poses = [_poses(xs0, 0.0, 0.0), _poses(xs1, 2.0, 180.0), _poses(xs0 + 0.2, -4.0, 3.0)]
    rows = _rows([4, len(xs1), 4])
    cross = find_cross_pairs(
        rows, poses, [7, 7, 7], radius_m=3.0, headings=HEADINGS, tolerance_deg=30.0
    )
    assert len(cross) == len(rows)
    # camera at x = 5: drive 1's nearest is x = 4.5 (frame 3), reversed -> the rear crop
    assert _partners(cross, 1) == [(1, 3, 180.0)]
    assert _partners(cross, 0) == [(1, 0, 180.0)]
    assert _partners(cross, 3) == []  # x = 40: nothing within 3 m
    assert cross.distances[cross.offsets[1]] == pytest.approx(np.hypot(0.5, 2.0))
    # drive 1's frame at x = 1.5 sees drive 0 (x = 0, 2.5 m), not drive 2 (6 m away)
    assert _partners(cross, 4 + 1) == [(0, 0, 180.0)]
    assert _partners(cross, 8 + 1) == []  # drive 2: 4 m from drive 0, 6 m from drive 1
    # a larger radius reaches drive 2 from drive 0, the same direction: the forward crop
    wide = find_cross_pairs(
        rows, poses, [7, 7, 7], radius_m=4.5, headings=HEADINGS, tolerance_deg=30.0
    )
    assert (2, 1, 0.0) in _partners(wide, 1)
    assert [p[0] for p in _partners(wide, 1)] == [1, 2]  # one per other drive, in order


def test_different_places_and_missing_poses_never_pair():
    xs = np.arange(5.0)
    poses = [_poses(xs, 0.0, 0.0), _poses(xs, 0.0, 0.0), None]
    rows = _rows([5, 5, 5])
    apart = find_cross_pairs(rows, poses, [0, 1, 0], radius_m=3.0, headings=(0.0,),
                             tolerance_deg=30.0)  # fmt: skip
    assert apart.available == 0
    together = find_cross_pairs(rows, poses, [0, 0, 0], radius_m=3.0, headings=(0.0,),
                                tolerance_deg=30.0)  # fmt: skip
    assert together.available == 10  # each of drives 0 and 1 with the other; set 2 no poses
    poses[1][2, :2, 3] = np.nan
    holed = find_cross_pairs(rows, poses, [0, 0, 0], radius_m=0.5, headings=(0.0,),
                             tolerance_deg=30.0)  # fmt: skip
    assert _partners(holed, 2) == []  # its twin (drive 1 frame 2) has no pose
    assert _partners(holed, 5 + 2) == []
    assert _partners(holed, 3) == [(1, 3, 0.0)]


def test_partners_are_only_training_rows():
    xs = np.arange(6.0)
    poses = [_poses(xs, 0.0, 0.0), _poses(xs + 0.1, 0.0, 0.0)]
    rows = np.array([[0, 2], [1, 0], [1, 4]])  # drive 1's frames 1..3 held out
    cross = find_cross_pairs(rows, poses, [0, 0], radius_m=3.0, headings=(0.0,),
                             tolerance_deg=30.0)  # fmt: skip
    assert _partners(cross, 0) == [(1, 0, 0.0)]  # x = 2: frame 0 (1.9 m), not frame 2


def test_synthetic_drives_pair_forward_and_reversed():
    # poses only: nothing is rendered
    specs = ["synthetic:9:0:60", "synthetic:9:1:60", "synthetic:9:4:60", "synthetic:8:0:60"]
    drives = [make_drive(9, 0, 60), make_drive(9, 1, 60), make_drive(9, 4, 60),
              make_drive(8, 0, 60)]  # fmt: skip
    rows = _rows([len(d) for d in drives])
    cross = find_cross_pairs(
        rows, [d.poses for d in drives], place_labels(specs),
        radius_m=3.0, headings=HEADINGS, tolerance_deg=30.0,
    )  # fmt: skip
    of_map_drive = [p for item in np.flatnonzero(rows[:, 0] == 0) for p in _partners(cross, item)]
    by_set = {s: {h for t, _, h in of_map_drive if t == s} for s in range(4)}
    assert cross.counts()[rows[:, 0] == 0].min() >= 1  # every frame of the map drive
    assert by_set[1] == {0.0}  # another day, the same way: the forward crop
    assert by_set[2] == {180.0}  # the other direction: the rear crop
    assert by_set[3] == set()  # another town
    assert not np.isin(cross.sets, [3]).any()
    assert cross.counts()[rows[:, 0] == 3].max() == 0
    # the needed heading is the yaw difference of the two frames
    yaw = [yaw_deg(d.poses) for d in drives]
    for item in np.flatnonzero(rows[:, 0] == 0)[::7]:
        for s, f, h in _partners(cross, item):
            needed = wrap_deg(yaw[0][rows[item, 1]] - yaw[s][f])
            assert abs(wrap_deg(needed - h)) <= 30.0


def test_pick_partner_respects_the_share_and_is_deterministic():
    xs = np.arange(0.0, 4000.0)
    poses = [_poses(xs, 0.0, 0.0), _poses(xs, 1.0, 180.0), _poses(xs, 50.0, 0.0)]
    rows = _rows([4000, 4000, 4000])
    cross = find_cross_pairs(rows, poses, [0, 0, 0], radius_m=3.0, headings=HEADINGS,
                             tolerance_deg=30.0)  # fmt: skip
    has = cross.counts() > 0
    assert has[:8000].all()
    assert not has[8000:].any()
    picks = np.array([pick_partner(cross, i, seed=3, epoch=2, share=0.3) for i in range(12000)])
    assert 0.27 < (picks[:8000] >= 0).mean() < 0.33
    assert (picks[8000:] == -1).all()  # no partner: always its own scan
    chosen = picks[picks >= 0]
    items = np.flatnonzero(picks >= 0)
    assert ((chosen >= cross.offsets[items]) & (chosen < cross.offsets[items + 1])).all()
    again = [pick_partner(cross, i, seed=3, epoch=2, share=0.3) for i in range(12000)]
    assert picks.tolist() == again
    other_epoch = [pick_partner(cross, i, seed=3, epoch=3, share=0.3) for i in range(8000)]
    assert other_epoch != picks[:8000].tolist()
    assert all(pick_partner(cross, i, seed=3, epoch=2, share=0.0) == -1 for i in range(50))
    assert all(pick_partner(cross, i, seed=3, epoch=2, share=1.0) >= 0 for i in range(50))


def _data(**cross) -> DataSection:
    return from_dict(
        TrainConfig,
        {"data": {"train": ["synthetic:1:0:10", "synthetic:1:3:10", "kitti:/k:00"],
                  "cross_traversal": cross}},
    ).data  # fmt: skip


def test_cross_traversal_config_defaults_and_validation():
    default = from_dict(TrainConfig, {}).data.cross_traversal
    assert (default.share, default.radius_m, default.headings) == (0.0, 3.0, (0.0,))
    assert (default.heading_tolerance_deg, default.groups) == (30.0, ())
    ok = _data(share=0.5, headings=[0, 180], groups=[["synthetic:1:0:10", "kitti:/k:00"]])
    assert ok.cross_traversal.headings == (0.0, 180.0)
    bad = [
        ({"share": 1.5}, "share"),
        ({"radius_m": 0}, "radius_m"),
        ({"headings": [180]}, "must hold 0"),
        ({"headings": []}, "empty"),
        ({"headings": [0, 180, 180]}, "repeats"),
        ({"headings": [0, 270]}, "not within"),
        ({"heading_tolerance_deg": 200}, "tolerance"),
        ({"groups": [["synthetic:1:0:10"]]}, "two or more"),
        ({"groups": [["synthetic:1:0:10", "synthetic:2:0:10"]]}, "not one of data.train"),
        ({"groups": [["synthetic:1:0:10", "kitti:/k:00"], ["kitti:/k:00", "synthetic:1:3:10"]]},
         "two groups"),
        ({"radius": 3}, "unknown key"),
    ]  # fmt: skip
    for section, message in bad:
        with pytest.raises(ConfigError, match=message):
            _data(**section)
