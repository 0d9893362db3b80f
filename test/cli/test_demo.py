"""``liploc demo`` end to end with tiny settings: render, build the map, start the node as a
process, play the query bag into it, collect poses, print the figures, write the PNG."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_model_falls_back_to_an_untrained_one_said_so(tmp_path, monkeypatch):
    from liploc_ros.cli import demo

    monkeypatch.setattr("liploc_ros.paths.models_dir", lambda: tmp_path / "no_models")
    path, label = demo._model_file(None, tmp_path)
    assert path == tmp_path / "untrained_liploc_tiny.safetensors"
    assert path.is_file()
    assert label.startswith("UNTRAINED liploc-tiny")
    shipped = tmp_path / "models"
    shipped.mkdir()
    (shipped / demo.DEMO_MODEL).write_bytes(b"x")
    monkeypatch.setattr("liploc_ros.paths.models_dir", lambda: shipped)
    path, label = demo._model_file(None, tmp_path)
    assert path == shipped / demo.DEMO_MODEL
    assert "trained on synthetic towns" in label


def test_the_demo_figures_count_what_they_say():
    from liploc_ros.evaluation.demo_figures import Received, evaluate_run, stamp_key

    truth = {stamp_key(t): np.array([10.0 * t, 0.0, 0.0]) for t in range(10)}
    map_positions = np.array([[10.0 * i, 0.0, 0.0] for i in range(10)])

    def at(t, x, y, latency=None):
        return Received(float(t), np.array([x, y, 0.0]), latency)

    # four frames localized: best matches 5, 30, 1 and 50 m off; fixes for the first three
    matches = [at(0, 5, 0, 0.1), at(1, 10, 30, 0.2), at(2, 20, 1, 0.3), at(3, 80, 0, 0.4)]
    poses = [at(0, 5, 0), at(1, 10, 30), at(2, 20, 1)]
    fig = evaluate_run(
        matches, poses, truth, map_positions, frames_played=10, frames_localized=4,
        played_stamps=[float(t) for t in range(10)],
    )  # fmt: skip
    assert fig.frames_localized == 4
    assert fig.recall_at_1 == pytest.approx(2 / 4)
    assert fig.median_top1_error_m == pytest.approx(np.median([5, 30, 1, 50]))
    assert fig.fix_ratio == pytest.approx(3 / 4)
    assert fig.fix_precision == pytest.approx(2 / 3)
    assert fig.median_error_m == pytest.approx(5.0)
    assert fig.latency_ms["p50"] == pytest.approx(250.0)
    # each frame: entries within 20 m are itself and its neighbours (10 m apart)
    near = [(np.abs(np.arange(10) - i) * 10 < 20).sum() for i in range(10)]
    assert fig.chance == pytest.approx(np.mean(near) / 10)
    # no pose at all: the pose figures are undefined, not zero
    none = evaluate_run(matches, [], truth, map_positions, frames_played=10, frames_localized=4)
    assert none.fix_ratio == 0.0
    assert np.isnan(none.fix_precision)
    assert none.as_dict()["median_error_m"] is None


def test_the_two_modes_are_scored_alike_over_the_same_frames():
    from liploc_ros.evaluation.demo_figures import Received, pose_figures, side_by_side, stamp_key

    truth = {stamp_key(t): np.array([10.0 * t, 0.0, 0.0]) for t in range(10)}
    played = [float(t) for t in range(10)]

    def at(t, x, y):
        return Received(float(t), np.array([x, y, 0.0]))

    # 8 frames localized; one pose 1 m off at frame 3 (30 m driven), one 30 m off
    single = pose_figures([at(3, 30, 1), at(4, 40, 30)], truth, played, 8)
    assert (single.frames, single.poses, single.wrong_fixes) == (8, 2, 1)
    assert single.fix_ratio == pytest.approx(2 / 8)
    assert single.fix_precision == pytest.approx(0.5)
    assert single.median_error_m == pytest.approx(15.5)
    assert single.first_fix_distance_m == pytest.approx(30.0)
    none = pose_figures([], truth, played, 8)
    assert none.fix_ratio == 0.0
    assert none.as_dict()["median_error_m"] is None
    lines = side_by_side({"single-frame": single, "sequence (node)": none})
    assert lines[0].split() == ["single-frame", "sequence", "(node)"]
    assert lines[1].split()[-2:] == ["0.250", "0.000"]
    assert lines[4].split()[-3:] == ["15.5", "m", "n/a"]


@pytest.mark.ros
@pytest.mark.slow
def test_liploc_demo_end_to_end(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client library) is not installed")
    from localizer_helpers import make_model_file

    model = tmp_path / "tiny.safetensors"
    make_model_file(model, size=64)
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "liploc_ros.cli", "demo", "--frames", "20", "--model",
           str(model), "--device", "cpu", "--out", str(out), "--no-progress",
           "--domain-id", str(211 + os.getpid() % 20)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert re.search(r"map: \d+ entries from 20 scans", text), text
    found = re.search(r"frames: 20 played, (\d+) localized by the node .*, (\d+) poses", text)
    assert found, text
    localized, poses = int(found.group(1)), int(found.group(2))
    assert 0 < localized <= 20
    assert 0 <= poses <= localized
    assert re.search(r"Recall@1 at 20 m: [01]\.\d{3} over the localized frames \(chance", text)
    # the node in sequence mode beside the single-frame estimates of the same frames
    assert re.search(rf"poses over the {localized} frames the node localized", text), text
    assert re.search(r"\n  fix ratio +[01]\.\d{3} +[01]\.\d{3}\n", text), text
    assert re.search(r"\n  wrong fixes \(> 20 m\) +\d+ +\d+\n", text), text
    state = re.search(r"sequence filter at the end: (\w+), tracked share [01]\.\d{3}, (\d+) "
                      r"frames without odometry \(topic /odom\)", text)  # fmt: skip
    assert state, text
    assert state.group(1) in ("initializing", "tracking", "lost")
    assert int(state.group(2)) <= 1, text  # /odom is played with the images
    assert re.search(
        r"latency \(image published -> the node's answer received\): p50 \d+ ms", text
    )
    # the node's memory over the playback, read from /proc (as the load test does)
    rss = re.search(
        r"node memory \(resident\): (\d+) MB when the playback started, (\d+) MB", text
    )
    assert rss, text
    assert 100 < int(rss.group(1)) <= int(rss.group(2)) + 200, text
    assert (out / "route.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 100
    assert summary["frames_played"] == 20
    assert summary["poses"] == poses
    assert summary["frames_localized"] == localized
    assert 0 <= summary["recall_at_1"] <= 1
    assert summary["median_top1_error_m"] is not None  # every answer has the bag's truth
    assert summary["mode"] == "sequence"
    assert summary["modes"]["sequence (node)"]["poses"] == poses
    assert summary["modes"]["single-frame"]["frames"] == localized
    assert 0 < summary["chance"] <= 1
    assert summary["node_rss_mb"]["start"] == pytest.approx(int(rss.group(1)), abs=1)
    log = (out / "localizer_node.log").read_text()
    assert log.count("ready:") == 1
    assert "sequence mode, odometry: topic /odom" in log
    assert f"figure: {out / 'route.png'}" in text
