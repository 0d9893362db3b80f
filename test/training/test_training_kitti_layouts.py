"""Training and evaluation through the CLI on KITTI and KITTI-360 layouts written by the
synthetic writers (the real datasets cannot be downloaded here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liploc_ros.cli import main
from liploc_ros.datasets.kitti import KittiOdometry, write_kitti_odometry
from liploc_ros.datasets.kitti360 import write_kitti360
from liploc_ros.datasets.synthetic import make_drive

FRAMES = 12


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    for traversal in (0, 1):
        drive = make_drive(31, traversal, FRAMES)
        write_kitti_odometry(drive, root / "kitti", f"{traversal:02d}", progress=False)
        write_kitti360(drive, root / "kitti360", traversal, progress=False)
    return root


def _train(layouts, out, *extra):
    k, k360 = layouts / "kitti", layouts / "kitti360"
    settings = [
        f"data.train=[kitti:{k}:00, kitti360:{k360}:0]",
        f"data.eval=[{{map: 'kitti:{k}:00'}}]",
        "data.cache=false",
        "data.num_workers=0",
        "model.preset=test_vit",
        "model.pretrained=false",
        "preprocess.image_size=32",
        "train.epochs=1",
        "train.batch_size=8",
        "eval.every=1",
        "progress=false",
        *extra,
    ]
    args = ["train", "--output", str(out)]
    for setting in settings:
        args += ["--set", setting]
    return main(args)


def test_train_and_eval_on_kitti_and_kitti360_layouts(layouts, tmp_path, capsys):
    assert _train(layouts, tmp_path / "run", "eval.distance=authors") == 0
    model = tmp_path / "run" / "best.safetensors"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert set(history[0]["recall@1"]) >= {"val", "kitti/00", "kitti/00 (chance)"}
    capsys.readouterr()

    # the paper's protocol on KITTI with the authors' distance
    out = tmp_path / "eval_kitti"
    kitti = f"kitti:{layouts / 'kitti'}:00"
    rc = main(["eval", "--model", str(model), "--source", kitti, "--distance", "authors",
               "--workers", "0", "--no-progress", "--out", str(out)])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distance"] == "authors"
    assert summary["protocol"] == "same sequence"
    assert summary["num_queries"] == summary["num_database"] == FRAMES
    assert 0.0 <= summary["recall@1"] <= summary["recall@5"] <= summary["recall@10"] <= 1.0
    assert "authors' distance" in capsys.readouterr().out
    with np.load(out / "results.npz", allow_pickle=False) as res:
        assert res["camera"].shape == res["lidar"].shape == (FRAMES, 256)
        np.testing.assert_array_equal(res["query_frame"], np.arange(FRAMES))
        # the authors' positions are (ty, tz) of the KITTI camera poses file
        kitti = KittiOdometry(layouts / "kitti", "00")
        np.testing.assert_allclose(res["query_xy"], kitti.camera_poses[:, 1:3, 3])
        assert res["topk_index"].shape == (FRAMES, 10)
        assert res["success_at_1"].dtype == bool
    assert (out / "route.png").stat().st_size > 0
    assert (out / "recall_curve.png").is_file()

    # across traversals on KITTI-360, ground-plane distance (the default)
    out = tmp_path / "eval_360"
    k360 = layouts / "kitti360"
    rc = main(["eval", "--model", str(model), "--source", f"kitti360:{k360}:0",
               "--queries", f"kitti360:{k360}:1", "--workers", "0", "--no-progress",
               "--json", "--out", str(out)])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["distance"] == "ground"
    assert summary["protocol"] == "across traversals"
    assert 0.0 < summary["chance@1"] <= 1.0


def test_eval_errors_name_the_problem(tmp_path, capsys):
    from liploc_ros.model import create_model, model_preset, save_model
    from liploc_ros.preprocess import CameraConfig, PreprocessConfig

    rc = main(["eval", "--model", str(tmp_path / "missing.safetensors"),
               "--source", "synthetic:1:0:3"])  # fmt: skip
    assert rc == 1
    assert "does not exist" in capsys.readouterr().err
    pre = PreprocessConfig(camera=CameraConfig(image_size=32), lidar_image_size=32)
    path = tmp_path / "m.safetensors"
    save_model(path, create_model(model_preset("test_vit"), pre, pretrained=False))
    rc = main(["eval", "--model", str(path), "--source", "synthetic:1:0:3",
               "--distance", "authors", "--workers", "0", "--no-progress"])  # fmt: skip
    assert rc == 1
    assert "pose files" in capsys.readouterr().err
