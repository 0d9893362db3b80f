"""Multi-heading maps: the headings spec, and one entry per keyframe and crop heading.

A keyframe's entries are its scan's range image with the crop centred at each heading, at
the LiDAR pose turned by that heading about its z axis (same position), sharing one
keyframe id; batching, the worker pool and a resumed build must not change that.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mapping_helpers import ListIndexedSource, ListSource, drive_frames

from liploc_ros.config import from_dict
from liploc_ros.errors import ConfigError, PreprocessError
from liploc_ros.mapping import (
    BuildCheckpoint,
    MapBuildConfig,
    MapBuilder,
    build_map,
    checkpoint_path_for,
    select_keyframes,
)
from liploc_ros.mapping.headings import (
    DEFAULT_HEADINGS,
    format_headings,
    heading_turn,
    parse_headings,
    turn_pose,
)
from liploc_ros.mapping.pipeline import checkpoint_match
from liploc_ros.preprocess import lidar_input

KD = 2.0


# ------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("value", "headings"),
    [
        ([0, 180], (0.0, 180.0)),
        ([180, 0], (0.0, 180.0)),
        ((0.0,), (0.0,)),
        (np.array([270.0, 90.0]), (90.0, 270.0)),
        ([-90, 450, 0], (0.0, 90.0, 270.0)),  # taken modulo 360
        (1, (0.0,)),
        (2, (0.0, 180.0)),
        (4, (0.0, 90.0, 180.0, 270.0)),
        (3, (0.0, 120.0, 240.0)),
        ("0,180", (0.0, 180.0)),
        (" 180 , 0 ", (0.0, 180.0)),
        ("4", (0.0, 90.0, 180.0, 270.0)),
        ("90,", (90.0,)),
        ("0", (0.0,)),  # on the command line, "0" reads as the heading 0
        ("-45,45", (45.0, 315.0)),
    ],
)
def test_parse_headings_accepts_degrees_counts_and_text(value, headings):
    got = parse_headings(value)
    assert got == headings
    assert all(type(h) is float for h in got)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "the list is empty"),
        ("", "give degrees separated by commas"),
        ([0, 360], "0 and 360 are the same heading"),
        ("90,-270", "'90,-270': 90.0 and -270.0 are the same heading"),
        ([10, 10.0000001], "are the same heading"),
        ([0, float("nan")], "nan is not a finite number"),
        ([0, float("inf")], "inf is not a finite number"),
        (0, "must be 1 to 36"),
        (37, "got 37"),
        (-2, "got -2"),
        (list(range(37)), "37 headings, at most 36"),
        ("abc", "a single value is a count"),
        ("2.5", "a single value is a count"),
        ("0,north", "'north' is not a number of degrees"),
        ([0, "180"], "'180' is not a number of degrees"),
        (True, "not a boolean"),
        (90.0, "expected a list of degrees, an integer count"),
        (None, "expected a list of degrees"),
    ],
)
def test_parse_headings_refuses_with_a_clear_message(value, message):
    with pytest.raises(ConfigError) as err:
        parse_headings(value)
    assert str(err.value).startswith("headings")
    assert message in str(err.value)


def test_heading_turn_and_turn_pose():
    assert DEFAULT_HEADINGS == (0.0,)
    np.testing.assert_array_equal(heading_turn(0.0), np.eye(4))
    rear = heading_turn(180.0)
    np.testing.assert_array_equal(rear[:3, :3], np.diag([-1.0, -1.0, 1.0]))  # exact
    np.testing.assert_array_equal(heading_turn(90.0)[:2, :2], [[0.0, -1.0], [1.0, 0.0]])
    h = math.radians(30.0)
    np.testing.assert_allclose(
        heading_turn(30.0)[:2, :2], [[math.cos(h), -math.sin(h)], [math.sin(h), math.cos(h)]]
    )
    pose = np.eye(4)
    pose[:3, 3] = (5.0, -2.0, 1.0)
    pose[:2, :2] = heading_turn(90.0)[:2, :2]  # the vehicle faces +y
    turned = turn_pose(pose, 180.0)
    np.testing.assert_array_equal(turned[:3, 3], pose[:3, 3])  # same position
    np.testing.assert_allclose(turned[:3, 0], (0.0, -1.0, 0.0), atol=1e-15)  # faces -y
    assert format_headings((0.0, 90.0, 187.5)) == "0, 90, 187.5"


def test_build_config_headings_are_validated_and_normalised():
    assert MapBuildConfig().headings == (0.0,)
    assert MapBuildConfig(headings=(180.0, 0.0)).headings == (0.0, 180.0)
    assert MapBuildConfig(headings=4).headings == (0.0, 90.0, 180.0, 270.0)
    assert from_dict(MapBuildConfig, {"headings": [0, 180]}).headings == (0.0, 180.0)
    with pytest.raises(ConfigError, match=r"headings .*same heading"):
        from_dict(MapBuildConfig, {"headings": [0, 360]})
    with pytest.raises(ConfigError, match="headings: expected a list"):
        from_dict(MapBuildConfig, {"headings": "0,180"})  # YAML and ROS give lists


# ------------------------------------------------------------------------ building a map


def assert_heading_map(db, embedder, frames, kept, headings) -> None:
    """Entries keyframe by keyframe, one per heading, as the module docstring says."""
    per = len(headings)
    assert len(db) == per * len(kept)
    assert db.keyframe_count == len(kept)
    np.testing.assert_array_equal(db.keyframes, np.repeat(np.arange(len(kept)), per))
    np.testing.assert_array_equal(db.heading_deg, np.tile(np.float32(headings), len(kept)))
    np.testing.assert_array_equal(db.frame_index, np.repeat(kept, per))
    np.testing.assert_allclose(db.stamps, np.repeat([frames[i].stamp for i in kept], per))
    assert db.headings == tuple(headings)
    pre = embedder.loaded.preprocess
    inputs = np.stack([lidar_input(frames[i].points, pre, h) for i in kept for h in headings])
    np.testing.assert_allclose(
        np.asarray(db.embeddings), embedder.embed_lidar(inputs), rtol=1e-5, atol=1e-6
    )
    poses = db.poses.reshape(len(kept), per, 4, 4)
    for j, i in enumerate(kept):
        lidar = frames[i].pose
        for k, h in enumerate(headings):
            rz = heading_turn(h)[:3, :3]
            np.testing.assert_allclose(poses[j, k, :3, 3], lidar[:3, 3], atol=1e-9)
            np.testing.assert_allclose(poses[j, k, :3, :3], lidar[:3, :3] @ rz, atol=1e-9)


@pytest.mark.parametrize(
    ("indexed", "workers", "batch"),
    [(False, 0, 3), (True, 2, 4), (False, 2, 1)],  # odd batch, whole keyframes, batch < H
    ids=["stream-serial-b3", "indexed-pool-b4", "stream-pool-b1"],
)
def test_build_map_stores_one_entry_per_keyframe_and_heading(embedder, indexed, workers, batch):
    frames = list(drive_frames(3, 10))
    source = ListIndexedSource(frames, jitter=0.005) if indexed else ListSource(frames)
    config = MapBuildConfig(keyframe_distance=KD, batch_size=batch, workers=workers,
                            headings=(0.0, 180.0))  # fmt: skip
    db, summary = build_map(source, embedder, config, progress=False)
    kept = select_keyframes(np.stack([f.pose for f in frames]), KD)
    assert_heading_map(db, embedder, frames, kept, (0.0, 180.0))
    assert summary.entries == 2 * len(kept)
    assert (summary.keyframes, summary.headings) == (len(kept), (0.0, 180.0))
    assert f"({len(kept)} keyframes x 2 crop headings: 0, 180 deg)" in summary.lines()[1]
    # the rear crop sees something else than the forward one
    assert not np.allclose(db.embeddings[0::2], db.embeddings[1::2], atol=1e-3)


def test_incremental_builder_with_four_headings(embedder):
    frames = list(drive_frames(3, 10))
    headings = (0.0, 90.0, 180.0, 270.0)
    builder = MapBuilder(embedder, MapBuildConfig(keyframe_distance=KD, batch_size=6,
                                                  headings=4))  # fmt: skip
    for f in frames:
        builder.add_scan(f.points, f.pose, f.stamp, frame_index=f.index)
    kept = select_keyframes(np.stack([f.pose for f in frames]), KD)
    assert builder.keyframe_count == len(kept)
    assert len(builder) == 4 * len(kept)
    assert_heading_map(builder.to_database(), embedder, frames, kept, headings)


def test_the_default_heading_is_the_old_forward_map(embedder):
    frames = list(drive_frames(3, 6))
    db, summary = build_map(ListSource(frames), embedder, MapBuildConfig(keyframe_distance=0),
                            progress=False)  # fmt: skip
    np.testing.assert_array_equal(db.heading_deg, np.zeros(6))
    np.testing.assert_array_equal(db.keyframes, np.arange(6))
    np.testing.assert_allclose(db.poses, np.stack([f.pose for f in frames]), atol=1e-12)
    assert "crop headings" not in summary.lines()[1]


def test_add_input_wants_one_input_per_heading(embedder):
    builder = MapBuilder(embedder, MapBuildConfig(headings=(0.0, 180.0)))
    with pytest.raises(PreprocessError, match=r"\(2, 3, 32, 32\) for this model and 2 heading"):
        builder.add_input(np.zeros((3, 32, 32), np.float32), np.eye(4), 0.0)
    builder.add_input(np.zeros((2, 3, 32, 32), np.float32), np.eye(4), 0.0)
    assert (len(builder), builder.keyframe_count) == (2, 1)


def test_an_interrupted_heading_build_resumes_to_the_same_map(embedder, tmp_path):
    frames = list(drive_frames(3, 12))
    config = MapBuildConfig(keyframe_distance=1.5, batch_size=3, workers=2, headings=(0.0, 180.0))
    checkpoint = checkpoint_path_for(tmp_path / "map.lmap")
    with pytest.raises(KeyboardInterrupt):
        build_map(ListSource(frames, name="drive", fail_at=9), embedder, config,
                  progress=False, checkpoint=checkpoint)  # fmt: skip
    match = checkpoint_match(ListSource([], "drive"), embedder, config)
    saved = BuildCheckpoint(checkpoint, match).load()
    assert saved.entries > 0
    assert saved.entries % 2 == 0  # whole keyframes only
    np.testing.assert_array_equal(
        saved.arrays["heading_deg"], np.tile([0, 180], saved.entries // 2)
    )
    db, summary = build_map(ListSource(frames, name="drive"), embedder, config, progress=False,
                            checkpoint=checkpoint, resume=True)  # fmt: skip
    full, _ = build_map(ListSource(frames, name="drive"), embedder, config, progress=False)
    assert summary.resumed_entries == saved.entries
    np.testing.assert_array_equal(db.keyframes, full.keyframes)
    np.testing.assert_array_equal(db.heading_deg, full.heading_deg)
    np.testing.assert_array_equal(db.frame_index, full.frame_index)
    np.testing.assert_allclose(db.poses, full.poses)
    np.testing.assert_allclose(db.embeddings, full.embeddings, rtol=1e-5, atol=1e-6)
    # a checkpoint made with other headings is refused, naming them
    forward = MapBuildConfig(keyframe_distance=1.5, batch_size=3, workers=2)
    with pytest.raises(ConfigError, match="headings"):
        build_map(ListSource(frames, name="drive", fail_at=0), embedder, forward,
                  progress=False, checkpoint=checkpoint, resume=True)  # fmt: skip
