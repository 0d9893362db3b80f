"""The training presets in config/: each one loads as a valid config and says what it claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from liploc_ros.datasets.registry import expand_spec
from liploc_ros.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "config").glob("train_*.yaml"))


def test_the_paper_runs_and_the_demo_run_are_there():
    names = {p.stem for p in PRESETS}
    assert {
        "train_kitti_vit",
        "train_kitti360_vit",
        "train_combined_vit",
        "train_synthetic",
    } <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_loads_and_its_specs_expand(path, monkeypatch):
    monkeypatch.setenv("KITTI_ROOT", "/data/kitti")
    monkeypatch.setenv("KITTI360_ROOT", "/data/kitti360")
    config = load_train_config(path)
    assert config.data.train
    for spec in config.data.train + tuple(e.map for e in config.data.eval):
        assert "$" not in expand_spec(spec)
    config.model.model_config()  # the backbone names resolve to a model config
    config.preprocess.preprocess_config()


def test_paper_presets_follow_the_authors_recipe(monkeypatch):
    monkeypatch.setenv("KITTI_ROOT", "/data/kitti")
    monkeypatch.setenv("KITTI360_ROOT", "/data/kitti360")
    kitti = load_train_config(ROOT / "config" / "train_kitti_vit.yaml")
    k360 = load_train_config(ROOT / "config" / "train_kitti360_vit.yaml")
    for config in (kitti, k360):
        assert config.model.preset == "liploc-vit-s16"
        assert config.loss.name == "authors"
        assert config.train.batch_size == 32
        assert (config.optim.lr_camera, config.optim.lr_lidar) == (1e-5, 1e-4)
    assert kitti.preprocess.distance_threshold is None
    assert k360.preprocess.distance_threshold == 50.0
    seqs = [s.rsplit(":", 1)[1] for s in kitti.data.train]
    assert "08" not in seqs
    assert "09" not in seqs
    assert "14" not in seqs


def test_the_demo_preset_never_trains_on_the_demo_town(monkeypatch):
    from liploc_ros.cli.demo import DEFAULT_SEED

    config = load_train_config(ROOT / "config" / "train_synthetic.yaml")
    seeds = {int(spec.split(":")[1]) for spec in config.data.train}
    assert DEFAULT_SEED not in seeds
    eval_seeds = {int(e.map.split(":")[1]) for e in config.data.eval}
    assert not eval_seeds & seeds  # the reported Recall@1 is on towns it never saw
    assert config.export == "models/liploc_demo.safetensors"


def test_resume_without_config_reads_the_runs_own(tmp_path, capsys):
    from liploc_ros.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: my_run\ntrain:\n  epochs: 7\n")
    assert main(["train", "--resume", str(run), "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "name: my_run" in printed
    assert "epochs: 7" in printed
    # a state file's folder works the same; --set still applies on top
    state = run / "last.ckpt.safetensors"
    argv = ["train", "--resume", str(state), "--set", "train.epochs=9", "--print-config"]
    assert main(argv) == 0
    assert "epochs: 9" in capsys.readouterr().out
