"""Model files: the authors' .pth (against an independent reference), our safetensors format,
the CLI conversion, and every way a file can be bad."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch
from authors_helpers import REFERENCES, RefLipLoc, randomize_norms, save_authors_checkpoint
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from liploc_ros.cli import main
from liploc_ros.errors import CheckpointError
from liploc_ros.model import (
    create_model,
    load_authors_checkpoint,
    load_model,
    model_fingerprint,
    model_preset,
    read_model_info,
    save_model,
)
from liploc_ros.preprocess.config import CameraConfig, PreprocessConfig


@pytest.fixture(scope="module", params=list(REFERENCES))
def reference(request, tmp_path_factory):
    *_, variant, size = REFERENCES[request.param]
    ref, path = save_authors_checkpoint(request.param, tmp_path_factory.mktemp("authors"))
    return ref, path, variant, size


def _inputs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, size, size, generator=g), torch.randn(2, 3, size, size, generator=g)


def _embed(model, cam, lidar):
    with torch.inference_mode():
        return model.encode_camera(cam), model.encode_lidar(lidar)


def test_authors_checkpoint_gives_the_reference_embeddings(reference, tmp_path, capsys):
    ref, path, variant, size = reference
    loaded = load_authors_checkpoint(path)
    assert loaded.model_config.name == variant
    assert not loaded.model.training
    assert loaded.preprocess.camera.image_size == (64 if variant == "custom" else 224)
    if variant == "custom":
        assert loaded.model_config.global_pool == "avg"
        assert loaded.model_config.camera_backbone == "vit_tiny_patch16_224"
    cam, lidar = _inputs(size)
    expected = ref.embed(cam, lidar)
    got = _embed(loaded.model, cam, lidar)
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[1], expected[1])
    assert loaded.fingerprint == model_fingerprint(ref)
    if variant == "liploc-resnet50":
        return  # conversion is format work, the same for every variant: the ViTs cover it

    # convert with the CLI, load our file: the same embeddings, bit for bit
    out = tmp_path / "converted.safetensors"
    assert main(["convert-checkpoint", str(path), str(out), "--distance-threshold", "50"]) == 0
    printed = capsys.readouterr().out
    assert variant in printed
    assert loaded.fingerprint in printed
    assert str(out) in printed
    ours = load_model(out)
    assert ours.fingerprint == loaded.fingerprint
    assert ours.preprocess.lidar.distance_threshold == 50.0
    assert ours.metadata["training"]["source"] == "authors"
    got = _embed(ours.model, cam, lidar)
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[1], expected[1])


@pytest.mark.parametrize("wrap", ["module-prefix", "state_dict", "model-with-epoch"])
def test_authors_checkpoint_nestings_are_unwrapped(wrap, tmp_path):
    torch.manual_seed(12)
    ref = RefLipLoc("resnet18", None, 512).eval()
    state = ref.state_dict()
    if wrap == "module-prefix":
        obj = {f"module.{k}": v for k, v in state.items()}
    elif wrap == "state_dict":
        obj = {"state_dict": state}
    else:
        obj = {"epoch": 7, "model": {f"module.{k}": v for k, v in state.items()}}
    torch.save(obj, tmp_path / "wrapped.pth")
    loaded = load_authors_checkpoint(tmp_path / "wrapped.pth", normalize=True)
    assert loaded.fingerprint == model_fingerprint(ref)
    assert loaded.model_config.camera_backbone == "resnet18"
    assert loaded.normalize
    cam, lidar = _inputs(32)
    expected = ref.embed(cam, lidar)
    got = _embed(loaded.model, cam, lidar)
    torch.testing.assert_close(got[0], nn.functional.normalize(expected[0], dim=1))


# --- our format -----------------------------------------------------------------------------


def _pre(size: int = 32) -> PreprocessConfig:
    return PreprocessConfig(camera=CameraConfig(image_size=size), lidar_image_size=size)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(13)
    model = create_model(model_preset("liploc-tiny", embed_dim=64), _pre()).eval()
    randomize_norms(model)
    return model


@pytest.fixture
def saved(small_model, tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    save_model(path, small_model, extra={"epochs": 3, "dataset": "synthetic"})
    return path


def test_round_trip_is_bit_exact(small_model, saved):
    loaded = load_model(saved)
    original = small_model.state_dict()
    restored = loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.model_config == small_model.config
    assert loaded.preprocess == small_model.preprocess
    assert loaded.fingerprint == model_fingerprint(small_model) == model_fingerprint(loaded.model)
    assert loaded.metadata["training"] == {"dataset": "synthetic", "epochs": 3}
    assert not loaded.model.training


def test_vit_at_a_small_input_size_round_trips(tmp_path):
    config = model_preset("liploc-vit-tiny", embed_dim=16)
    model = create_model(config, _pre(48)).eval()
    save_model(tmp_path / "vit.safetensors", model)
    loaded = load_model(tmp_path / "vit.safetensors")
    cam = torch.randn(2, 3, 48, 48)
    assert torch.equal(_embed(loaded.model, cam, cam)[0], _embed(model, cam, cam)[0])


def test_model_info_reads_the_header_only(small_model, saved, capsys):
    info = read_model_info(saved)
    assert info["fingerprint"] == model_fingerprint(small_model)
    assert info["embed_dim"] == 64
    assert info["model_config"]["camera_backbone"] == "resnet18"
    assert info["preprocess"]["camera"]["image_size"] == 32
    assert info["num_parameters"] == sum(p.numel() for p in small_model.parameters())
    assert main(["model-info", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out
    assert info["fingerprint"] in out
    assert f"{info['num_parameters']:,}" in out
    assert main(["model-info", "--json", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["sha256"] == info["sha256"]


def test_model_info_describes_an_authors_checkpoint(tmp_path, capsys):
    torch.manual_seed(14)
    ref = RefLipLoc("resnet18", None, 512)
    torch.save(ref.state_dict(), tmp_path / "a.pth")
    assert main(["model-info", str(tmp_path / "a.pth")]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out
    assert model_fingerprint(ref) in out


def test_save_is_atomic(small_model, saved, monkeypatch, tmp_path):
    before = saved.read_bytes()
    other = create_model(model_preset("liploc-tiny", embed_dim=64), _pre())

    def fail(_fd):
        raise OSError("disk full")

    # the temporary file is fully written, then the write fails before the rename
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(CheckpointError, match=r"cannot write model file.*disk full"):
        save_model(saved, other)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model.safetensors"]
    assert load_model(saved).fingerprint == model_fingerprint(small_model)


def test_save_refuses_input_sizes_the_model_was_not_built_for(small_model, tmp_path):
    with pytest.raises(CheckpointError, match="input sizes"):
        save_model(tmp_path / "x.safetensors", small_model, _pre(64))
    with pytest.raises(CheckpointError, match="not JSON"):
        save_model(tmp_path / "x.safetensors", small_model, extra={"bad": object()})
    assert not (tmp_path / "x.safetensors").exists()


def _rewrite_metadata(path: Path, **changes: str | None) -> None:
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        metadata = dict(f.metadata())
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    save_file(tensors, str(path), metadata=metadata)


def test_our_file_errors_name_the_problem(saved, tmp_path):
    data = saved.read_bytes()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(truncated)
    with pytest.raises(CheckpointError, match="truncated"):
        read_model_info(truncated)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a safetensors model file"):
        load_model(garbage)

    flipped = tmp_path / "flipped.safetensors"
    corrupt = bytearray(data)
    corrupt[-5000] ^= 0x01  # inside the tensor data, past the header
    flipped.write_bytes(bytes(corrupt))
    with pytest.raises(CheckpointError, match=r"corrupt.*checksum"):
        load_model(flipped)
    assert load_model(flipped, verify=False).fingerprint  # verify=False trusts the file


def test_metadata_errors_name_the_problem(saved, tmp_path, small_model):
    cases = {
        "newer": ({"format_version": "2"}, r"format version 2 is newer"),
        "plain": ({"format": None}, "no liploc_ros metadata"),
        "foreign": ({"format": "other.thing"}, "holds format 'other.thing'"),
        "nosha": ({"sha256": None}, "missing metadata key.*sha256"),
        "badjson": ({"model_config": "{not json"}, "invalid configuration"),
        "unknownkey": ({"model_config": json.dumps({"colour": 3})}, "unknown key.*colour"),
    }
    for name, (changes, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(saved.read_bytes())
        _rewrite_metadata(path, **changes)
        with pytest.raises(CheckpointError, match=message):
            load_model(path)
        path.unlink()  # a model's worth of disk per case otherwise

    # configs that do not fit the stored weights
    path = tmp_path / "misfit.safetensors"
    path.write_bytes(saved.read_bytes())
    config = json.loads(read_model_info(saved)["model_config"] and json.dumps(
        {**read_model_info(saved)["model_config"], "embed_dim": 32}))  # fmt: skip
    _rewrite_metadata(path, model_config=json.dumps(config))
    with pytest.raises(CheckpointError, match=r"do not fit.*shape mismatch.*projection_camera"):
        load_model(path)


# --- authors' checkpoint errors -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_state():
    torch.manual_seed(15)
    return RefLipLoc("resnet18", None, 512).state_dict()


def test_bad_pth_files_name_the_problem(small_state, tmp_path):
    good = tmp_path / "good.pth"
    torch.save(small_state, good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_authors_checkpoint(truncated)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"GARBAGE!" + os.urandom(2000))
    with pytest.raises(CheckpointError, match=r"neither a liploc \.safetensors model nor"):
        load_authors_checkpoint(garbage)

    pickle_garbage = tmp_path / "pickle_garbage.pth"
    pickle_garbage.write_bytes(b"\x80\x02" + os.urandom(2000))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_authors_checkpoint(pickle_garbage)

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_authors_checkpoint(empty)

    with pytest.raises(CheckpointError, match="does not exist"):
        load_authors_checkpoint(tmp_path / "nope.pth")

    objects = tmp_path / "objects.pth"
    torch.save({"state_dict": small_state, "args": argparse.Namespace(lr=1)}, objects)
    with pytest.raises(CheckpointError, match=r"refused.*argparse\.Namespace.*arbitrary code"):
        load_authors_checkpoint(objects)

    not_a_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state)
    with pytest.raises(CheckpointError, match="does not hold a state_dict"):
        load_authors_checkpoint(not_a_state)


def test_state_dicts_that_do_not_fit_name_the_keys(small_state, tmp_path):
    missing = dict(small_state)
    del missing["projection_lidar.fc.bias"]
    unexpected = {**small_state, "temperature_head.weight": torch.zeros(3)}
    misshapen = {**small_state, "projection_camera.fc.weight": torch.zeros(256, 128)}
    no_backbone = {k: v for k, v in small_state.items() if not k.startswith("encoder_lidar")}
    cases = [
        (missing, r"do not fit.*1 missing key\(s\): projection_lidar\.fc\.bias"),
        (unexpected, r"1 unexpected key\(s\): temperature_head\.weight"),
        (misshapen, r"shape mismatch.*projection_camera\.fc\.weight \(256, 128\) vs \(256, 256\)"),
        (no_backbone, "cannot tell the backbone of encoder_lidar"),
    ]
    for i, (state, message) in enumerate(cases):
        path = tmp_path / f"case{i}.pth"
        torch.save(state, path)
        with pytest.raises(CheckpointError, match=message) as info:
            load_authors_checkpoint(path)
        assert str(path) in str(info.value)


def test_convert_cli_reports_errors_with_exit_code_1(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nothing useful")
    assert main(["convert-checkpoint", str(bad), str(tmp_path / "out.safetensors")]) == 1
    assert "neither a liploc .safetensors model nor a PyTorch" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()
