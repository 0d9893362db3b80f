"""`liploc synth`: every layout from one rendering, readable by the readers."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.cli import main
from liploc_ros.cli.synth import parse_layouts
from liploc_ros.datasets.kitti import KittiOdometry
from liploc_ros.datasets.kitti360 import Kitti360
from liploc_ros.datasets.rosbag_reader import RosbagSource
from liploc_ros.datasets.synthetic import SyntheticDrive, make_town
from liploc_ros.datasets.synthetic.config import TownConfig
from liploc_ros.errors import ConfigError


def test_synth_writes_every_layout_with_the_same_frames(tmp_path, capsys):
    out = tmp_path / "synth"
    code = main(["synth", "--out", str(out), "--seed", "5", "--traversals", "2", "--frames", "3",
                 "--format", "all", "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "frames/s" in printed
    drive = SyntheticDrive(make_town(TownConfig(seed=5)), 1, 3)
    kitti = KittiOdometry(out / "kitti", "01")
    k360 = Kitti360(out / "kitti360", 1)
    bag = list(RosbagSource(out / "bags" / "t1").iter_frames())
    assert len(kitti) == len(k360) == len(bag) == 3
    for i in range(3):
        truth = drive[i]
        for frame in (kitti[i], k360[i], bag[i]):
            np.testing.assert_array_equal(frame.image, truth.image)
            np.testing.assert_array_equal(frame.points, truth.points)
            np.testing.assert_allclose(frame.pose, truth.pose, atol=1e-9)


def test_layout_parsing():
    assert parse_layouts("bag,kitti") == ["kitti", "bag"]
    assert parse_layouts("all") == ["kitti", "kitti360", "bag"]
    with pytest.raises(ConfigError, match="unknown layout"):
        parse_layouts("kitty")


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--format", "png"]) == 1
    assert "unknown layout" in capsys.readouterr().err
