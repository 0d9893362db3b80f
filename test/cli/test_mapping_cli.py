"""`liploc build-map` end to end on a tiny synthetic KITTI layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mapping_helpers import ListSource, tiny_model

from liploc_ros.cli import main
from liploc_ros.cli.build_map import read_config_file
from liploc_ros.config import from_dict
from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
from liploc_ros.datasets.registry import SOURCE_KINDS, SourceKind
from liploc_ros.datasets.rosbag_reader import BagReaderConfig
from liploc_ros.datasets.rosbag_writer import write_bag
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapping import MapBuildConfig, select_keyframes
from liploc_ros.model import Embedder, load_model, save_model
from liploc_ros.model.model_file import load_model_file


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    write_kitti_odometry(make_drive(4, 0, 8), root / "kitti", "00", progress=False)
    model = root / "tiny.safetensors"
    save_model(model, tiny_model(1).model)
    return {"kitti": root / "kitti", "model": model}


def build(data: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["build-map", "--model", str(data["model"]), "--out", str(out), "--no-progress",
                 "--batch-size", "3", *extra])  # fmt: skip


def test_build_map_from_kitti_writes_a_map_and_a_summary(data, tmp_path, capsys):
    out = tmp_path / "map.lmap"
    code = build(data, out, "--kitti", str(data["kitti"]), "--sequence", "00",
                 "--keyframe-distance", "2.5")  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    kitti = KittiOdometry(data["kitti"], "00")
    kept = select_keyframes(kitti.poses, 2.5)
    db = MapDatabase.load(out)
    assert 1 < len(db) == len(kept) < len(kitti)
    embedder = Embedder(load_model(data["model"]), device="cpu")
    np.testing.assert_allclose(
        db.embeddings, embedder.embed_scans([kitti[i].points for i in kept]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(db.poses, kitti.poses[kept], atol=1e-9)
    assert (db.info.sources, db.info.model_name) == (("kitti/00",), "liploc-tiny")
    for words in (f"entries         {len(kept)}", "route length", "scans/s", str(out)):
        assert words in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.lmap"]  # no checkpoint left


def test_config_file_and_flags(data, tmp_path, capsys):
    config = tmp_path / "map_builder.yaml"
    config.write_text(
        "map_builder_node:\n"
        "  ros__parameters:\n"
        "    points_topic: /velodyne_points   # a node key: not the CLI's business\n"
        "    build:\n"
        "      keyframe_distance: 0.0\n"
        "      dtype: float16\n"
    )
    out = tmp_path / "all.lmap"
    spec = f"kitti:{data['kitti']}:00"
    assert build(data, out, "--source", spec, "--config", str(config)) == 0
    db = MapDatabase.load(out)
    assert len(db) == 8
    assert np.asarray(db.embeddings).dtype == np.float16
    assert build(data, out, "--source", spec, "--config", str(config),
                 "--keyframe-distance", "100") == 0  # fmt: skip  # the flag wins
    assert len(MapDatabase.load(out)) == 1
    # the repository's own file (the node's parameter file) is valid for the CLI
    build_values, bag_values = read_config_file(Path(__file__).parents[2] / "config" /
                                                "map_builder.yaml")  # fmt: skip
    assert from_dict(MapBuildConfig, build_values) == MapBuildConfig()
    assert BagReaderConfig(**bag_values).pose_source == "auto"
    capsys.readouterr()

    config.write_text("map_builder_node:\n  ros__parameters:\n    build:\n      keyframe: 2\n")
    assert build(data, out, "--source", spec, "--config", str(config)) == 1
    err = capsys.readouterr().err
    for words in ("map_builder.yaml", "'keyframe'", "keyframe_distance"):
        assert words in err


def test_bad_arguments_exit_with_a_message(data, tmp_path, capsys):
    out = tmp_path / "m.lmap"
    cases = [
        (["--source", "kity:/x"], "unknown source kind"),
        (["--synthetic", "1", "--kitti", str(data["kitti"])], "exactly one source"),
        ([], "exactly one source"),
        (["--kitti360", "/x"], "--kitti360 needs --drive"),
        (["--synthetic", "1", "--normalize"], "only to the authors' .pth"),
        (["--synthetic", "1", "--sensor", "hdl65"], "unknown LiDAR sensor preset"),
        (["--synthetic", "1", "--batch-size", "0"], "batch_size"),
    ]
    for args, message in cases:
        assert build(data, out, *args) == 1, args
        assert message in capsys.readouterr().err, args
    assert main(["build-map", "--model", str(data["model"]), "--out", str(tmp_path / "no" / "m"),
                 "--synthetic", "1"]) == 1  # fmt: skip
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_authors_checkpoint_and_sensor_override(data, tmp_path):
    pth = tmp_path / "authors.pth"
    torch.save(tiny_model(2).model.state_dict(), pth)
    loaded = load_model_file(pth, sensor="vlp16")
    assert loaded.metadata["source"] == "authors"
    lidar = loaded.preprocess.lidar
    assert (lidar.sensor, lidar.height, lidar.width, lidar.crop) == ("vlp16", 16, 1800, True)
    out = tmp_path / "vlp.lmap"
    assert main(["build-map", "--model", str(pth), "--out", str(out), "--no-progress",
                 "--synthetic", "4", "--frames", "3", "--sensor", "vlp16"]) == 0  # fmt: skip
    db = MapDatabase.load(out)
    assert len(db) == 3
    assert db.info.lidar == lidar
    assert db.info.model_fingerprint == loaded.fingerprint


def test_interrupt_keeps_the_previous_map_and_resume_finishes_it(data, tmp_path, monkeypatch,
                                                                 capsys):  # fmt: skip
    frames = list(KittiOdometry(data["kitti"], "00").iter_frames(image=False))
    fail_at = {"n": 6}

    def opener(rest: str, options: dict) -> ListSource:
        return ListSource(frames, name="drive", fail_at=fail_at["n"])

    monkeypatch.setitem(SOURCE_KINDS, "flaky", SourceKind("flaky", "flaky:X", opener))
    out = tmp_path / "map.lmap"
    assert build(data, out, "--source", f"kitti:{data['kitti']}:00", "--keyframe-distance", "0",
                 "--frame-id", "old") == 0  # fmt: skip
    before = out.read_bytes()
    (tmp_path / "previous.lmap").write_bytes(before)

    args = ("--source", "flaky:x", "--keyframe-distance", "0")
    assert build(data, out, *args, "--no-checkpoint") == 130
    assert "interrupted" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.lmap", "previous.lmap"]

    assert build(data, out, *args) == 130  # with a checkpoint (the default)
    assert out.read_bytes() == before
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["map.lmap", "map.lmap.resume.npz", "previous.lmap"]

    fail_at["n"] = None
    assert build(data, out, *args, "--resume") == 0
    assert "(6 resumed from a checkpoint)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.lmap", "previous.lmap"]
    resumed = MapDatabase.load(out)
    previous = MapDatabase.load(tmp_path / "previous.lmap")  # the same frames, built in one go
    assert len(resumed) == len(previous) == 8
    np.testing.assert_allclose(resumed.embeddings, previous.embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.frame_index, previous.frame_index)
    assert (resumed.info.frame_id, previous.info.frame_id) == ("map", "old")


def test_build_map_from_a_bag_with_reader_options(data, tmp_path, capsys):
    kitti = KittiOdometry(data["kitti"], "00")
    # without odometry: tf carries the truth, so that pose_source tf gives it
    bag = write_bag(kitti, tmp_path / "bag", progress=False, limit=4, odometry=False)
    out = tmp_path / "bag.lmap"
    common = ("--bag", str(bag), "--points-topic", "/kitti/velo/pointcloud",
              "--keyframe-distance", "0")  # fmt: skip
    assert build(data, out, *common, "--pose-source", "tf") == 0
    db = MapDatabase.load(out)
    assert db.info.sources == (f"bag:{bag}",)
    np.testing.assert_allclose(db.poses, kitti.poses[:4], atol=1e-6)
    capsys.readouterr()
    assert build(data, tmp_path / "none.lmap", *common, "--pose-source", "none") == 1
    assert "no map entry: 4 frames read, 4 without a pose" in capsys.readouterr().err
    assert not (tmp_path / "none.lmap").exists()


def test_headings_flag_doubles_the_entries_and_map_info_shows_them(data, tmp_path, capsys):
    """--headings 0,180: every keyframe also stores its rear crop, turned around."""
    kitti = KittiOdometry(data["kitti"], "00")
    kept = select_keyframes(kitti.poses, 2.5)
    source = ("--source", f"kitti:{data['kitti']}:00", "--keyframe-distance", "2.5")
    forward, both = tmp_path / "forward.lmap", tmp_path / "both.lmap"
    assert build(data, forward, *source) == 0
    assert build(data, both, *source, "--headings", "0,180") == 0
    printed = capsys.readouterr().out
    assert "crops facing 0, 180 deg" in printed
    assert f"entries         {2 * len(kept)} ({len(kept)} keyframes x 2 crop headings" in printed
    one, two = MapDatabase.load(forward), MapDatabase.load(both)
    assert len(two) == 2 * len(one) == 2 * len(kept)
    assert (one.headings, two.headings) == ((0.0,), (0.0, 180.0))
    np.testing.assert_array_equal(two.keyframes, np.repeat(np.arange(len(kept)), 2))
    # the forward entries are the forward map's; the rear ones face the other way
    np.testing.assert_allclose(two.embeddings[0::2], one.embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two.positions[1::2], one.positions, atol=1e-9)
    rear = two.poses[1::2, :3, :3]
    np.testing.assert_allclose(rear[:, :, 0], -kitti.poses[kept, :3, 0], atol=1e-9)
    assert main(["map-info", str(both), "--no-plot"]) == 0
    info = capsys.readouterr().out
    assert "headings:     0, 180 deg" in info
    assert f"entries:      {2 * len(kept)} from {len(kept)} keyframes" in info


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0,360", "--headings '0,360': 0.0 and 360.0 are the same heading"),
        ("-3", "--headings '-3': a count of evenly spaced headings must be 1 to 36"),
        ("40", "must be 1 to 36"),
        ("front", "--headings 'front': a single value is a count"),
        ("0,nan", "nan is not a finite number of degrees"),
        ("", "--headings '': give degrees separated by commas"),
    ],
)
def test_bad_headings_flag_exits_with_a_message(data, tmp_path, capsys, value, message):
    out = tmp_path / "m.lmap"
    assert build(data, out, "--source", f"kitti:{data['kitti']}:00", "--headings", value) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()
