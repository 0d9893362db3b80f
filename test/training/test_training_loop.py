"""The training loop on tiny synthetic data: it learns, it writes what it says, it resumes."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from liploc_ros.config import from_dict
from liploc_ros.datasets.registry import open_source
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.model import create_model, load_model, make_loss, model_preset
from liploc_ros.training.config import TrainConfig, load_train_config
from liploc_ros.training.data import PairDataset
from liploc_ros.training.distributed import DistInfo
from liploc_ros.training.picture_cache import cache_pictures
from liploc_ros.training.train import param_groups, train, train_step
from liploc_ros.training.training_state import read_training_meta

train_module = importlib.import_module("liploc_ros.training.train")
TRAIN_SPEC, MAP_SPEC, QUERY_SPEC = "synthetic:21:0:20", "synthetic:22:0:10", "synthetic:22:1:10"


def _config(tmp_path, cache_dir, **sections) -> TrainConfig:
    base = {
        "name": "test",
        "output_dir": str(tmp_path / "run"),
        "model": {"preset": "test_vit", "pretrained": False},
        "preprocess": {"image_size": 32},
        "data": {"train": [TRAIN_SPEC], "cache_dir": str(cache_dir), "num_workers": 0},
        "optim": {"lr_camera": 1e-3, "lr_lidar": 1e-3},
        "train": {"epochs": 2, "batch_size": 8, "seed": 1},
        "eval": {"every": 0},
        "progress": False,
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(TrainConfig, base)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """The synthetic frames rendered once for every test of this module."""
    root = tmp_path_factory.mktemp("cache")
    pre = _config(root, root).preprocess.preprocess_config()
    for spec in (TRAIN_SPEC, MAP_SPEC, QUERY_SPEC):
        cache_pictures(spec, open_source(spec), pre, root, progress=False)
    return root


def test_training_steps_lower_the_loss_on_the_same_data(cache_dir, tmp_path):
    config = _config(tmp_path, cache_dir)
    pre = config.preprocess.preprocess_config()
    pictures = cache_pictures(TRAIN_SPEC, make_drive(21, 0, 20), pre, cache_dir, progress=False)
    data = PairDataset([pictures], np.stack([np.zeros(16, int), np.arange(16)], axis=1), pre)
    camera = torch.stack([data[i]["camera"] for i in range(16)])
    lidar = torch.stack([data[i]["lidar"] for i in range(16)])
    torch.manual_seed(0)
    model = create_model(model_preset("test_vit"), pre, pretrained=False)
    loss_fn = make_loss("authors")
    optimizer = torch.optim.AdamW(param_groups(model, loss_fn, config))
    scaler = torch.amp.GradScaler("cpu", enabled=False)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            cam, lid = model(camera, lidar)
            return float(loss_fn(lid, cam))

    before = eval_loss()
    for _ in range(12):
        model.train()
        train_step(model, loss_fn, optimizer, scaler, camera, lidar, DistInfo(),
                   device=torch.device("cpu"), precision="fp32")  # fmt: skip
    after = eval_loss()
    assert after < 0.8 * before, (before, after)


def test_train_writes_model_state_config_logs_and_recall(cache_dir, tmp_path):
    export = tmp_path / "exported" / "m.safetensors"
    config = _config(
        tmp_path,
        cache_dir,
        data={"eval": [{"map": MAP_SPEC, "queries": QUERY_SPEC}]},
        train={"epochs": 1},
        eval={"every": 1},
        export=str(export),
    )
    result = train(config)
    out = tmp_path / "run"
    assert result.epochs_done == 1
    assert result.best_epoch == 1
    loaded = load_model(out / "best.safetensors")
    assert loaded.preprocess.camera.image_size == 32
    info = loaded.metadata["training"]
    assert info["epoch"] == 1
    assert info["train_sources"] == [TRAIN_SPEC]
    assert info["val_loss"] == pytest.approx(result.best_val_loss)
    assert export.read_bytes() == (out / "best.safetensors").read_bytes()
    # the effective config reads back as the same config
    assert load_train_config(out / "config.yaml") == config
    history = json.loads((out / "history.json").read_text())
    recalls = history[0]["recall@1"]
    key = "synthetic/seed22/t1 in synthetic/seed22/t0"
    assert 0.0 <= recalls[key] <= 1.0
    assert 0.0 < recalls[f"{key} (chance)"] <= 1.0
    assert 0.0 <= recalls["val"] <= 1.0
    assert set(history[0]["lr"]) == {"camera_encoder", "lidar_encoder", "heads"}
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert read_training_meta(out / "last.ckpt.safetensors")["epoch"] == 1
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"optim": {"scheduler": "cosine", "warmup_epochs": 0.5}, "train": {"channels_last": True}},
    ],
    ids=["plateau", "cosine-channels-last"],
)
def test_resume_reproduces_an_uninterrupted_run(cache_dir, tmp_path, variant, monkeypatch):
    # augmentation and dropout on, so that random state matters
    optim, run = variant.get("optim", {}), variant.get("train", {})
    straight = train(_config(tmp_path / "a", cache_dir, optim=optim, train=run))
    run_epoch = train_module._Trainer.run_epoch

    def stopped_in_epoch_2(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return run_epoch(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(train_module._Trainer, "run_epoch", stopped_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(_config(tmp_path / "b", cache_dir, optim=optim, train=run))
    assert read_training_meta(tmp_path / "b" / "run" / "last.ckpt.safetensors")["epoch"] == 1
    resumed = train(
        _config(tmp_path / "b", cache_dir, optim=optim, train=run), resume=tmp_path / "b" / "run"
    )
    assert resumed.epochs_done == 2
    a = load_file(str(tmp_path / "a" / "run" / "last.ckpt.safetensors"))
    b = load_file(str(tmp_path / "b" / "run" / "last.ckpt.safetensors"))
    assert set(a) == set(b)
    assert any(k.startswith("optim.") for k in a)
    for name in a:
        if not name.startswith("rng."):
            torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)
    ma = read_training_meta(tmp_path / "a" / "run" / "last.ckpt.safetensors")
    mb = read_training_meta(tmp_path / "b" / "run" / "last.ckpt.safetensors")
    assert ma["epoch"] == mb["epoch"] == 2
    assert [h["train_loss"] for h in ma["history"]] == [h["train_loss"] for h in mb["history"]]
    assert ma["scheduler"] == mb["scheduler"]
    assert ma["optimizer"] == mb["optimizer"]
    assert straight.best_val_loss == resumed.best_val_loss
    if optim.get("scheduler") == "cosine":  # decayed to 0 by the last step
        assert [h["lr"]["heads"] for h in ma["history"]][-1] == pytest.approx(0.0, abs=1e-12)


def test_pretrained_weights_fail_clearly_or_fall_back_with_a_warning(monkeypatch, caplog):
    import importlib

    # the model is made in the training steps' module, where create_model is patched
    steps_module = importlib.import_module("liploc_ros.training.steps")
    from liploc_ros.errors import CheckpointError
    from liploc_ros.training.train import build_model

    def offline(config, pre, *, pretrained):
        if pretrained:
            raise CheckpointError("cannot load the ImageNet-pretrained weights (no hub)")
        return create_model(config, pre, pretrained=False)

    monkeypatch.setattr(steps_module, "create_model", offline)
    base = {"model": {"preset": "test_vit"}, "preprocess": {"image_size": 32}}
    strict = from_dict(TrainConfig, {**base, "model": {"preset": "test_vit", "pretrained": True}})
    pre = strict.preprocess.preprocess_config()
    with pytest.raises(CheckpointError, match="if_available"):
        build_model(strict, pre, resuming=False)
    lenient = from_dict(
        TrainConfig, {**base, "model": {"preset": "test_vit", "pretrained": "if_available"}}
    )
    with caplog.at_level("WARNING"):
        model = build_model(lenient, pre, resuming=False)
    assert model.encoder_camera is not None
    assert "random initialisation" in caplog.text
    # resuming never reaches for ImageNet weights
    assert build_model(strict, pre, resuming=True) is not None


def test_precision_choices():
    from liploc_ros.errors import DeviceError
    from liploc_ros.training.train import training_precision

    cpu = torch.device("cpu")
    assert training_precision(cpu, "auto") == "fp32"
    assert training_precision(cpu, "bf16") == "bf16"
    with pytest.raises(DeviceError, match="fp16"):
        training_precision(cpu, "fp16")
    # a bf16 autocast step runs on the CPU (the GPU path adds only the fp16 GradScaler)
    pre = from_dict(TrainConfig, {"preprocess": {"image_size": 32}}).preprocess.preprocess_config()
    torch.manual_seed(0)
    model = create_model(model_preset("test_vit"), pre, pretrained=False)
    loss_fn = make_loss("clip")
    optimizer = torch.optim.AdamW([*model.parameters(), *loss_fn.parameters()], lr=1e-3)
    x = torch.randn(4, 3, 32, 32)
    value = train_step(model, loss_fn, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                       x, x.flip(0), DistInfo(), device=cpu, precision="bf16")  # fmt: skip
    assert np.isfinite(value)


def test_training_with_cross_traversal_pairs(cache_dir, tmp_path):
    from liploc_ros.training.run_data import build_run_data

    # the map drive and the same stretch driven back in its lane: partners face the other way
    specs = [TRAIN_SPEC, "synthetic:21:4:20"]
    config = _config(
        tmp_path,
        cache_dir,
        data={"train": specs, "cross_traversal": {"share": 0.5, "headings": [0, 180]}},
        train={"epochs": 1},
    )
    pre = config.preprocess.preprocess_config()
    data = build_run_data(config, pre, DistInfo(), torch.device("cpu"), tmp_path / "run")
    assert [s.headings for s in data.sets] == [(0.0, 180.0)] * 2
    assert data.cross is not None
    assert data.cross.available > 0.6 * len(data.split.train)
    assert set(data.cross.headings.tolist()) == {180.0}
    partners = [data.train_set.partner(p, 0) for p in range(len(data.split.train))]
    swapped = [p for p in partners if p is not None]
    assert 0 < len(swapped) < len(partners)
    for position, partner in enumerate(partners):
        if partner is not None:  # the other drive's scan, a training frame of it
            assert partner[0] != data.split.train[position, 0]
            assert [partner[0], partner[1]] in data.split.train.tolist()
    result = train(config)
    assert result.epochs_done == 1
    assert np.isfinite(result.history[0]["train_loss"])
    assert result.best_model is not None
