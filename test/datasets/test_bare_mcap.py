"""A bare .mcap (no metadata.yaml beside it, as kitti2mcap writes) and a folder of them are
bags like any other, for the reader, ``bag:`` specs and every command that takes a bag.

The bare file is the storage file of a bag this module writes, copied out alone: the same
bytes a converter would leave, without the folder's metadata.yaml.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mapping_helpers import tiny_model

from liploc_ros.cli import main
from liploc_ros.datasets.registry import open_source
from liploc_ros.datasets.rosbag_reader import RosbagSource, bag_topics
from liploc_ros.errors import DatasetError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model import save_model

FRAMES = 5


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    """The bag folder, the bare copy of its .mcap, and a folder holding only that copy."""
    from liploc_ros.datasets.rosbag_writer import write_bag
    from liploc_ros.datasets.synthetic import make_drive

    root = tmp_path_factory.mktemp("bare")
    folder = write_bag(make_drive(3, 0, FRAMES), root / "drive", progress=False)
    (storage,) = folder.glob("*.mcap")
    lone = root / "converted"
    lone.mkdir()
    bare = lone / "kitti_2011_09_26_drive_0001.mcap"
    shutil.copyfile(storage, bare)
    assert not (lone / "metadata.yaml").exists()
    return {"folder": folder, "bare": bare, "lone": lone, "root": root}


def _frames(source) -> list:
    return list(source.iter_frames())


def test_a_bare_mcap_and_a_folder_of_them_read_like_the_bag(bags):
    reference = _frames(RosbagSource(bags["folder"]))
    assert len(reference) == FRAMES
    for path in (bags["bare"], bags["lone"]):
        for source in (RosbagSource(path), open_source(f"bag:{path}")):
            frames = _frames(source)
            assert [f.stamp for f in frames] == [f.stamp for f in reference]
            for got, want in zip(frames, reference, strict=True):
                np.testing.assert_allclose(got.pose, want.pose)
                np.testing.assert_array_equal(got.image, want.image)
                np.testing.assert_array_equal(got.points, want.points)
        assert bag_topics(path) == bag_topics(bags["folder"])


def test_what_rosbags_cannot_read_is_named(bags, tmp_path):
    from liploc_ros.datasets.bag_paths import bag_reader_paths

    assert bag_reader_paths(bags["bare"]) == [bags["bare"]]
    assert bag_reader_paths(bags["lone"]) == [bags["bare"]]
    assert bag_reader_paths(bags["folder"]) == [bags["folder"]]
    (storage,) = bags["folder"].glob("*.mcap")
    assert bag_reader_paths(storage) == [bags["folder"]]  # a file of a bag folder: the folder
    (tmp_path / "two").mkdir()
    for name in ("b.mcap", "a.mcap"):
        shutil.copyfile(bags["bare"], tmp_path / "two" / name)
    assert [p.name for p in bag_reader_paths(tmp_path / "two")] == ["a.mcap", "b.mcap"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no bag here")
    with pytest.raises(DatasetError, match=r"without metadata\.yaml and without \.mcap"):
        RosbagSource(tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"not a ROS 1 \.bag, a ROS 2 \.mcap / \.db3 file"):
        RosbagSource(tmp_path / "empty" / "notes.txt")
    with pytest.raises(DatasetError, match="no bag at"):
        RosbagSource(tmp_path / "missing.mcap")


@pytest.mark.slow
def test_build_map_localize_eval_and_the_map_builder_node_take_a_bare_mcap(bags, tmp_path):
    model = tmp_path / "tiny.safetensors"
    save_model(model, tiny_model(1).model)
    common = ["--model", str(model), "--no-progress", "--device", "cpu"]
    maps = {}
    for name in ("folder", "bare"):
        maps[name] = tmp_path / f"{name}.lmap"
        argv = ["build-map", "--bag", str(bags[name]), "--out", str(maps[name]), *common,
                "--keyframe-distance", "0", "--workers", "0"]  # fmt: skip
        assert main(argv) == 0
    bare_map, folder_map = MapDatabase.load(maps["bare"]), MapDatabase.load(maps["folder"])
    assert len(bare_map) == len(folder_map) == FRAMES
    np.testing.assert_allclose(bare_map.poses, folder_map.poses)

    out = tmp_path / "localized"
    argv = ["localize", "--map", str(maps["bare"]), "--bag", str(bags["bare"]), "--out",
            str(out), *common, "--latency-samples", "1"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["frames"] == FRAMES

    argv = ["eval", "--model", str(model), "--source", f"bag:{bags['lone']}", "--device", "cpu",
            "--workers", "0", "--no-progress", "--json"]  # fmt: skip
    assert main(argv) == 0

    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from liploc_ros.ros.map_builder_node import main as node_main

    node_map = tmp_path / "node.lmap"
    args = ["map_builder_node", "--ros-args", "-p", f"bag_path:={bags['bare']}",
            "-p", f"model:={model}", "-p", f"map_path:={node_map}", "-p", "build.device:=cpu",
            "-p", "build.keyframe_distance:=0.0", "-p", "build.workers:=0"]  # fmt: skip
    assert node_main(args) == 0
    assert len(MapDatabase.load(node_map)) == FRAMES
