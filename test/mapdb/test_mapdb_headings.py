"""Map entries carry their crop heading and keyframe: construction, files old and new, merging.

Format version 2 added the arrays ``heading_deg`` and ``keyframe``; a version 1 file (written
here exactly as the old code did: the same container without them, version 1 in the prelude)
must still load, as forward crops of one keyframe each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liploc_ros.cli import main
from liploc_ros.errors import MapError
from liploc_ros.mapdb import MAP_FORMAT_VERSION, MapDatabase, merge_maps
from liploc_ros.mapdb import fileformat as ff
from liploc_ros.mapdb.synthetic import synthetic_info, synthetic_map

DIM = 16


def _two_headings(keyframes: int = 5, seed: int = 0, sources: tuple[str, ...] = ()) -> MapDatabase:
    """``keyframes`` keyframes with a forward (0) and a rear (180) entry each."""
    base = synthetic_map(2 * keyframes, DIM, seed=seed, info=synthetic_info(DIM, sources=sources))
    return MapDatabase(
        base.embeddings, base.positions, base.orientations, base.stamps, base.info,
        heading_deg=np.tile(np.float32([0.0, 180.0]), keyframes),
        keyframes=np.repeat(np.arange(keyframes), 2),
    )  # fmt: skip


def _rewrite(src: Path, dst: Path, *, version: int = MAP_FORMAT_VERSION, drop=(), **arrays):
    """``src`` written again through the container writer, arrays dropped or replaced."""
    container, handle = ff.read_container(src)
    with handle:
        stored = {
            name: ff.section_array(container, handle, name, mmap=False)
            for name in container.sections
            if name not in drop
        }
    stored.update(arrays)
    ff.write_container(dst, container.meta, stored, version=version)
    return dst


def test_defaults_are_forward_crops_of_one_keyframe_each():
    db = synthetic_map(7, DIM)
    assert db.heading_deg.dtype == np.float32
    np.testing.assert_array_equal(db.heading_deg, np.zeros(7))
    assert db.keyframes.dtype == np.int64
    np.testing.assert_array_equal(db.keyframes, np.arange(7))
    assert db.headings == (0.0,)
    assert db.keyframe_count == 7
    assert db.entries_per_keyframe == 1
    assert synthetic_map(0, DIM).entries_per_keyframe == 0


def test_heading_and_keyframe_round_trip(tmp_path):
    db = _two_headings(6)
    assert db.headings == (0.0, 180.0)
    assert db.keyframe_count == 6
    for mmap in (True, False):
        loaded = MapDatabase.load(db.save(tmp_path / "h.lmap", index="flat"), mmap=mmap)
        assert loaded.format_version == MAP_FORMAT_VERSION == 3
        np.testing.assert_array_equal(loaded.heading_deg, db.heading_deg)
        np.testing.assert_array_equal(loaded.keyframes, db.keyframes)
        assert loaded.heading_deg.dtype == np.float32
        assert loaded.keyframes.dtype == np.int64
        assert loaded.headings == (0.0, 180.0)
        with pytest.raises(ValueError, match="read-only"):
            loaded.keyframes[0] = 3


def test_from_poses_takes_headings_and_keyframes():
    base = synthetic_map(4, DIM)
    db = MapDatabase.from_poses(
        base.embeddings, base.poses, base.stamps, base.info,
        heading_deg=[90.0, 270.0, 90.0, 270.0], keyframes=[4, 4, 9, 9],
    )  # fmt: skip
    np.testing.assert_array_equal(db.heading_deg, [90, 270, 90, 270])
    np.testing.assert_array_equal(db.keyframes, [4, 4, 9, 9])
    assert (db.headings, db.keyframe_count) == ((90.0, 270.0), 2)
    assert db.entries_per_keyframe == 2
    lone = MapDatabase.from_poses(
        base.embeddings, base.poses, base.stamps, base.info,
        heading_deg=[0.0, 0.0, 90.0, 180.0], keyframes=[0, 1, 1, 1],
    )  # fmt: skip
    assert (lone.keyframe_count, lone.entries_per_keyframe) == (2, 3)


def test_a_version_1_map_loads_as_forward_crops(tmp_path):
    db = synthetic_map(40, DIM, seed=2)
    v1 = _rewrite(db.save(tmp_path / "new.lmap", index="flat"), tmp_path / "old.lmap",
                  version=1, drop=("heading_deg", "keyframe"))  # fmt: skip
    container, handle = ff.read_container(v1)
    handle.close()
    assert container.version == 1
    assert "heading_deg" not in container.sections
    assert "keyframe" not in container.sections
    old = MapDatabase.load(v1)
    assert old.format_version == 1
    np.testing.assert_array_equal(old.embeddings, db.embeddings)
    np.testing.assert_array_equal(old.poses, db.poses)
    np.testing.assert_array_equal(old.heading_deg, np.zeros(40, np.float32))
    np.testing.assert_array_equal(old.keyframes, np.arange(40))
    assert (old.headings, old.keyframe_count) == ((0.0,), 40)
    assert old.search(db.embeddings[[7]], 1).indices[0, 0] == 7
    # saved again, it is a version 3 map holding the defaults
    again = MapDatabase.load(old.save(tmp_path / "upgraded.lmap", index="flat"))
    assert again.format_version == MAP_FORMAT_VERSION
    np.testing.assert_array_equal(again.keyframes, np.arange(40))


def test_bad_heading_and_keyframe_arrays_in_a_file_are_named(tmp_path):
    good = _two_headings(5).save(tmp_path / "good.lmap", index="flat")
    n = 10
    heading = np.tile(np.float32([0.0, 180.0]), 5)
    cases = [
        ({"drop": ("keyframe",)}, f"keyframe (format version {MAP_FORMAT_VERSION})"),
        ({"heading_deg": heading.astype(np.float64)}, "heading_deg has dtype float64"),
        ({"keyframe": np.repeat(np.arange(5), 2).astype(np.int32)}, "keyframe has dtype int32"),
        ({"keyframe": np.arange(n - 1)}, "array shapes inconsistent: keyframe has shape (9,)"),
        (
            {"heading_deg": np.where(np.arange(n) == 3, 400, heading).astype(np.float32)},
            "heading_deg of entry 3 is 400.0, not in [0, 360)",
        ),
        (
            {"heading_deg": np.where(np.arange(n) == 2, np.nan, heading).astype(np.float32)},
            "heading_deg of entry 2 is nan",
        ),
        ({"keyframe": np.where(np.arange(n) == 6, -1, np.arange(n))}, "keyframe of entry 6 is -1"),
    ]
    for i, (change, message) in enumerate(cases):
        bad = _rewrite(good, tmp_path / f"bad{i}.lmap", **change)
        with pytest.raises(MapError) as err:
            MapDatabase.load(bad)
        assert message in str(err.value), (change, str(err.value))
        assert str(bad) in str(err.value)


def test_bad_heading_and_keyframe_arguments_are_refused():
    db = synthetic_map(4, DIM)
    args = (db.embeddings, db.positions, db.orientations, db.stamps, db.info)
    cases = [
        ({"heading_deg": [0, 360, 0, 0]}, "heading_deg of entry 1 is 360.0, not in [0, 360)"),
        ({"heading_deg": [0, -90, 0, 0]}, "heading_deg of entry 1 is -90.0"),
        ({"heading_deg": [0, 0, 0]}, "array shapes inconsistent: heading_deg"),
        ({"keyframes": [0, 1, 2, -3]}, "keyframe of entry 3 is -3"),
        ({"keyframes": [0, 0.5, 1, 2]}, "keyframes must hold integers"),
        ({"keyframes": [0, 1, 1, 2]}, "entries 1 and 2 are both keyframe 1 at heading 0"),
        (
            {"keyframes": [0, 0, 1, 1], "heading_deg": [0, 180, 90, 90]},
            "entries 2 and 3 are both keyframe 1 at heading 90",
        ),
    ]
    for kw, message in cases:
        with pytest.raises(MapError) as err:
            MapDatabase(*args, **kw)
        assert message in str(err.value), (kw, str(err.value))
    # the same heading in different keyframes, or different headings in one, are fine
    MapDatabase(*args, keyframes=[0, 0, 1, 1], heading_deg=[0, 180, 0, 180])


def test_merge_keeps_headings_and_keeps_keyframes_apart():
    a = _two_headings(3, seed=1, sources=("a",))
    b = synthetic_map(4, DIM, seed=2, info=synthetic_info(DIM, sources=("b",)))
    c = _two_headings(2, seed=3, sources=("c",))
    merged = merge_maps([a, b, c])
    assert len(merged) == 6 + 4 + 4
    np.testing.assert_array_equal(
        merged.heading_deg, np.concatenate([a.heading_deg, b.heading_deg, c.heading_deg])
    )
    np.testing.assert_array_equal(
        merged.keyframes, [0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 8]
    )  # a: 0..2, b: 3..6, c: 7..8
    assert merged.keyframe_count == 3 + 4 + 2
    assert merged.headings == (0.0, 180.0)


def test_map_info_shows_headings_and_keyframes(tmp_path, capsys):
    path = _two_headings(5).save(tmp_path / "two.lmap", index="flat")
    assert main(["map-info", str(path), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "entries:      10 from 5 keyframes" in out
    assert "headings:     0, 180 deg" in out
    assert f"format {MAP_FORMAT_VERSION}" in out
    assert main(["map-info", str(path), "--no-plot", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["headings_deg"], info["keyframes"], info["entries"]) == ([0.0, 180.0], 5, 10)
