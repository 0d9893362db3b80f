"""`liploc localize` end to end on a tiny synthetic drive: every output, checked naively."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mapping_helpers import tiny_model

from liploc_ros.cli import main
from liploc_ros.cli.localize_config import read_config_file
from liploc_ros.cli.source_flags import synthetic_spec
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.errors import ConfigError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapping import MapBuildConfig, build_map
from liploc_ros.model import Embedder, save_model

SEED = 6
FRAMES = 64  # 1 m apart: a 63 m drive, so that 20 m is not the whole map
STRIDE = 10


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("localize")
    loaded = tiny_model(2)
    model = root / "tiny.safetensors"
    save_model(model, loaded.model)
    db, _ = build_map(
        make_drive(SEED, 0, FRAMES),
        Embedder(loaded, device="cpu", batch_size=8),
        MapBuildConfig(keyframe_distance=10.0, workers=0),
        progress=False,
    )
    db.save(root / "map.lmap")
    other = root / "other.safetensors"  # the same network with one weight changed
    with torch.no_grad():
        next(loaded.model.parameters()).view(-1)[0] += 1.0
    save_model(other, loaded.model)
    return {"model": model, "map": root / "map.lmap", "other": other}


def localize(data, out: Path, *extra: str) -> int:
    return main(["localize", "--map", str(data["map"]), "--model", str(data["model"]),
                 "--out", str(out), "--no-progress", "--batch-size", "3",
                 "--latency-samples", "2", *extra])  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def naive_recall(rows, db: MapDatabase, k: int, threshold: float) -> float:
    hits = []
    for row in rows:
        gt = np.array([float(row["gt_x"]), float(row["gt_y"])])
        entries = [int(e) for e in row["top_entries"].split()][:k]
        hits.append(
            any(e >= 0 and math.dist(db.positions[e][:2], gt) < threshold for e in entries)
        )
    return sum(hits) / len(hits)


def test_localize_writes_every_output(data, tmp_path, capsys):
    out = tmp_path / "run"
    spec = f"{SEED}:1:{FRAMES}"
    # an untrained model on an uncalibrated map: a huge spread and a low target keep some
    # single-frame fixes (the conservative evidence model never reaches 0.99 in one frame)
    code = localize(data, out, "--synthetic", spec, "--stride", str(STRIDE), "--threshold", "15",
                    "--max-spread-m", "1000", "--target-precision", "0.5",
                    "--mode", "single")  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "recall" in printed
    assert "latency" in printed
    names = {p.name for p in out.iterdir()}
    assert names == {
        "poses_tum.txt",
        "poses_kitti.txt",
        "poses_kitti_frames.txt",
        "ground_truth_tum.txt",
        "frames.csv",
        "summary.json",
        "route.png",
        "error_vs_distance.png",
    }

    rows = read_rows(out / "frames.csv")
    truth = make_drive(SEED, 1, FRAMES)
    frames = list(range(0, FRAMES, STRIDE))
    assert [int(r["index"]) for r in rows] == frames
    np.testing.assert_allclose([float(r["stamp"]) for r in rows], truth.stamps[frames])
    np.testing.assert_allclose([float(r["gt_x"]) for r in rows], truth.poses[frames, 0, 3])
    fixes = [r for r in rows if r["ok"] == "1"]
    assert fixes

    tum = (out / "poses_tum.txt").read_text().splitlines()
    assert len(tum) == len(fixes)
    db = MapDatabase.load(data["map"])
    for line, row in zip(tum, fixes, strict=True):
        values = [float(v) for v in line.split()]
        assert len(values) == 8
        assert values[0] == pytest.approx(float(row["stamp"]))
        assert np.linalg.norm(values[4:]) == pytest.approx(1.0)
        np.testing.assert_allclose(values[1:4], db.positions[int(row["best_entry"])], atol=1e-6)
    kitti = (out / "poses_kitti.txt").read_text().splitlines()
    kitti_frames = (out / "poses_kitti_frames.txt").read_text().split()
    assert len(kitti) == len(fixes) == len(kitti_frames)
    assert kitti_frames == [r["index"] for r in fixes]
    for line, row in zip(kitti, fixes, strict=True):
        m = np.array([float(v) for v in line.split()])
        assert m.shape == (12,)
        np.testing.assert_allclose(
            m.reshape(3, 4), db.poses[int(row["best_entry"])][:3], atol=1e-6
        )

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == len(rows)
    assert summary["fixes"] == len(fixes)
    assert summary["threshold_m"] == 15.0
    for k in (1, 5, 10):
        recall = summary["recall"][f"@{k}"]
        assert 0.0 <= recall <= 1.0
        assert recall == pytest.approx(naive_recall(rows, db, k, 15.0))
    assert summary["recall"]["@1"] <= summary["recall"]["@5"] <= summary["recall"]["@10"]
    errors = [float(r["error_m"]) for r in fixes]
    assert summary["median_error_m"] == pytest.approx(float(np.median(errors)), abs=1e-3)
    assert summary["latency_ms"]["total"]["p50"] > 0
    assert summary["single_frame_latency_ms"]["samples"] == 2
    assert summary["model_fingerprint"] in printed
    assert (out / "route.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "error_vs_distance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_fix_frames_are_left_out_of_the_trajectories(data, tmp_path, capsys):
    out = tmp_path / "strict"
    # a spread no set of matches can stay under: no frame gets a fix
    code = localize(data, out, "--synthetic", f"{SEED}:1:{FRAMES}", "--stride", "30",
                    "--max-spread-m", "0.001", "--target-precision", "0.5", "--no-plot",
                    "--mode", "single")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = read_rows(out / "frames.csv")
    assert len(rows) == 3
    assert all(r["ok"] == "0" and r["reason"] == "matches disagree" for r in rows)
    assert (out / "poses_tum.txt").read_text() == ""
    assert (out / "poses_kitti.txt").read_text() == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fixes"] == 0
    assert summary["no_fix_reasons"] == {"matches disagree": 3}
    assert summary["median_error_m"] is None
    assert not (out / "route.png").exists()


def test_a_map_of_another_model_is_an_error(data, tmp_path, capsys):
    code = main(["localize", "--map", str(data["map"]), "--model", str(data["other"]),
                 "--out", str(tmp_path / "x"), "--synthetic", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    db = MapDatabase.load(data["map"])
    assert db.info.model_fingerprint in err
    assert "fingerprint" in err
    assert not (tmp_path / "x").exists()


def test_source_flags(data, tmp_path, capsys):
    assert localize(data, tmp_path / "y", "--synthetic", "1", "--bag", "b") == 1
    assert "exactly one source" in capsys.readouterr().err
    assert localize(data, tmp_path / "y") == 1
    assert "exactly one source" in capsys.readouterr().err


def test_synthetic_folder_and_spec(tmp_path):
    assert synthetic_spec("3:1:50", None) == "synthetic:3:1:50"
    assert synthetic_spec("synthetic:3", None) == "synthetic:3"
    (tmp_path / "kitti" / "sequences").mkdir(parents=True)
    assert synthetic_spec(str(tmp_path), None) == f"kitti:{tmp_path / 'kitti'}:01"
    assert synthetic_spec(str(tmp_path), "2") == f"kitti:{tmp_path / 'kitti'}:02"
    bags = tmp_path / "b"
    (bags / "bags").mkdir(parents=True)
    assert synthetic_spec(str(bags), "3") == f"bag:{bags / 'bags' / 't3'}"
    with pytest.raises(ConfigError, match="neither"):
        synthetic_spec(str(tmp_path / "missing"), None)
    with pytest.raises(ConfigError, match="not a `liploc synth` output"):
        synthetic_spec(str(bags / "bags"), None)


def test_config_file(tmp_path):
    ros = tmp_path / "localizer.yaml"
    ros.write_text(
        "localizer_node:\n  ros__parameters:\n    image_topic: /cam\n"
        "    localizer:\n      top_k: 7\n      max_spread_m: 30.0\n"
    )
    assert read_config_file(ros) == {"top_k": 7, "max_spread_m": 30.0}
    plain = tmp_path / "plain.yaml"
    plain.write_text("localizer:\n  target_precision: 0.95\n")
    assert read_config_file(plain) == {"target_precision": 0.95}
    # the raw-score thresholds of old files are gone: the map's calibration replaces them
    plain.write_text("localizer:\n  min_score: 3.5\n")
    with pytest.raises(ConfigError, match="min_score"):
        read_config_file(plain)
    plain.write_text("localizer:\n  top_kk: 3\n")
    with pytest.raises(ConfigError, match="top_kk"):
        read_config_file(plain)
    plain.write_text("top_k: 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        read_config_file(plain)


TRACK_KEYS = (
    "mode", "frames", "fix_ratio", "fix_precision_20m", "fix_precision_5m", "median_error_m",
    "p95_error_m", "median_yaw_error_deg", "first_fix_distance_m", "recall_at_1",
)  # fmt: skip


@pytest.mark.parametrize("mode", ["sequence", "single"])
def test_both_modes_write_the_tracking_keys(data, tmp_path, capsys, mode):
    out = tmp_path / mode
    code = localize(data, out, "--synthetic", f"{SEED}:1:{FRAMES}", "--mode", mode,
                    "--no-plot")  # fmt: skip
    assert code == 0, capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert all(key in summary for key in TRACK_KEYS), sorted(set(TRACK_KEYS) - set(summary))
    assert summary["mode"] == mode
    assert summary["frames"] == FRAMES
    rows = read_rows(out / "frames.csv")
    assert summary["recall_at_1"] == pytest.approx(
        naive_recall(rows, MapDatabase.load(data["map"]), 1, 20.0)
    )
    if mode == "sequence":
        assert summary["odometry"] == "simulated"  # the synthetic drive's drifting odometry
        assert summary["sequence"]["particles"] > 0
    else:
        assert summary["odometry"] is None


def test_sequence_mode_without_odometry_says_so(data, tmp_path, monkeypatch):
    from liploc_ros.datasets.synthetic.drive import SyntheticDrive

    monkeypatch.setattr(SyntheticDrive, "frame", _without_odometry(SyntheticDrive.frame))
    out = tmp_path / "no_odom"
    assert localize(data, out, "--synthetic", f"{SEED}:1:{FRAMES}", "--no-plot") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["odometry"] == "none"
    assert "random walk" in summary["odometry_note"]


def _without_odometry(frame):
    import dataclasses

    def wrapped(self, index, **kw):
        return dataclasses.replace(frame(self, index, **kw), odometry=None)

    return wrapped


def test_headings_the_map_lacks_are_refused_before_anything_runs(data, tmp_path, capsys):
    out = tmp_path / "x"
    code = localize(data, out, "--synthetic", f"{SEED}:4:{FRAMES}", "--headings", "0,180")
    err = capsys.readouterr().err
    assert code == 1
    assert "holds crops at 0 deg, not at 180 deg" in err
    assert "--headings 0,180" in err
    assert not out.exists()
