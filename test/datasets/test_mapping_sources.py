"""open_source: one spec string per kind of drive, options to the reader, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
from liploc_ros.datasets.kitti360 import Kitti360, write_kitti360
from liploc_ros.datasets.registry import SOURCE_KINDS, open_source, parse_spec
from liploc_ros.datasets.rosbag_reader import RosbagSource
from liploc_ros.datasets.rosbag_writer import write_bag
from liploc_ros.datasets.synthetic import SyntheticDrive, make_drive
from liploc_ros.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """A 3-frame synthetic drive written as KITTI, KITTI-360 and a ROS 2 bag."""
    root = tmp_path_factory.mktemp("sources")
    drive = make_drive(7, 0, 3)
    write_kitti_odometry(drive, root / "kitti", "04", progress=False)
    kitti = KittiOdometry(root / "kitti", "04")  # read back: no second rendering
    write_kitti360(kitti, root / "kitti360", 2, progress=False)
    write_bag(kitti, root / "bag", progress=False)
    return {"root": root, "poses": drive.poses}


def test_synthetic_specs():
    drive = open_source("synthetic:5:1:4")
    assert isinstance(drive, SyntheticDrive)
    assert (drive.name, len(drive)) == ("synthetic/seed5/t1", 4)
    default = open_source("synthetic:5")
    assert (len(default), default.traversal.index) == (300, 0)
    assert len(open_source("SYNTHETIC:5:2", blocks_x=4)) == 300  # town options pass through
    for spec, match in (
        ("synthetic:x", "seed must be an integer"),
        ("synthetic:1:2:3:4", "SEED"),
        ("synthetic:1:0:0", "frames"),
    ):
        with pytest.raises(ConfigError, match=match):
            open_source(spec)
    with pytest.raises(ConfigError, match="unknown town option"):
        open_source("synthetic:1", blockz=3)


def test_kitti_specs(layouts):
    root = layouts["root"]
    for spec in (f"kitti:{root / 'kitti'}:04", f"kitti:{root / 'kitti' / 'sequences' / '04'}",
                 f"kitti:{root / 'kitti' / 'sequences'}:4"):  # fmt: skip
        source = open_source(spec)
        assert isinstance(source, KittiOdometry), spec
        assert source.name == "kitti/04", spec
        np.testing.assert_allclose(source.poses, layouts["poses"], atol=1e-6)
    poses_file = root / "kitti" / "poses" / "04.txt"
    source = open_source(f"kitti:{root / 'kitti'}:04", poses_file=poses_file)
    assert source.poses_path == poses_file
    with pytest.raises(ConfigError, match=r"unknown option.*'strict'.*known: poses_file"):
        open_source(f"kitti:{root / 'kitti'}:04", strict=True)
    with pytest.raises(DatasetError, match="missing KITTI sequence"):
        open_source(f"kitti:{root / 'kitti'}:09")
    with pytest.raises(DatasetError, match="does not exist"):
        open_source(f"kitti:{root / 'nothing'}")


def test_kitti360_specs(layouts):
    root = layouts["root"] / "kitti360"
    for drive in ("2", "0002", "2013_05_28_drive_0002_sync"):
        source = open_source(f"kitti360:{root}:{drive}")
        assert isinstance(source, Kitti360)
        assert source.drive == "2013_05_28_drive_0002_sync"
    assert len(open_source(f"kitti360:{root}:2", strict=False)) == 3
    with pytest.raises(ConfigError, match="kitti360:ROOT:DRIVE"):
        open_source(f"kitti360:{root}")
    with pytest.raises(DatasetError):
        open_source(f"kitti360:{root}:7")


def test_bag_specs_and_reader_options(layouts):
    path = layouts["root"] / "bag"
    source = open_source(f"bag:{path}")
    assert isinstance(source, RosbagSource)
    frames = list(source.iter_frames(image=False))
    assert len(frames) == 3
    np.testing.assert_allclose(np.stack([f.pose for f in frames]), layouts["poses"], atol=1e-6)
    unposed = open_source(f"bag:{path}", points_topic="/kitti/velo/pointcloud", pose_source="none")
    assert all(f.pose is None for f in unposed.iter_frames(image=False))
    with pytest.raises(ConfigError, match=r"unknown option.*'points'"):
        open_source(f"bag:{path}", points="/x")
    with pytest.raises(DatasetError, match="/lidar"):
        open_source(f"bag:{path}", points_topic="/lidar")


def test_spec_errors_name_the_known_kinds():
    for spec in ("kity:/data", "/data/run1.mcap"):
        with pytest.raises(ConfigError, match=r"bag:PATH.*kitti:ROOT:SEQ.*kitti360:ROOT:DRIVE"):
            open_source(spec)
    with pytest.raises(ConfigError, match="nothing after 'bag:'"):
        open_source("bag:")
    assert parse_spec(" Kitti:/a:b:08 ") == ("kitti", "/a:b:08")
    assert set(SOURCE_KINDS) >= {"bag", "kitti", "kitti360", "synthetic"}


def test_readers_are_imported_lazily():
    code = (
        "import sys\n"
        "from liploc_ros.datasets.registry import open_source\n"
        "open_source('synthetic:0:0:2')\n"
        "print(sorted(m for m in ('rosbags', 'liploc_ros.datasets.kitti', 'torch',\n"
        "     'liploc_ros.datasets.kitti360', 'liploc_ros.datasets.rosbag_reader')\n"
        "     if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
