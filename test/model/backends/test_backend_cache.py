"""The converted-model cache: built once, reused, rebuilt (never used) when stale."""

from __future__ import annotations

import json
import logging
import os
import shutil
from hashlib import sha256

import numpy as np
import pytest
from backend_helpers import PARITY, inputs, min_cosine, needs, save_tiny_vit

from liploc_ros.errors import BackendError
from liploc_ros.model import Embedder, wrap_model
from liploc_ros.model.backends import cache
from liploc_ros.model.backends.cache import cache_folder, cached, graph_key, stale_reason

KEY = {"backend": "fake", "precision": "fp32", "fingerprint": "f" * 16, "sizes": [32, 32]}


class Counter:
    """A fake converter and loader that count their calls."""

    def __init__(self) -> None:
        self.builds = 0
        self.loads = 0
        self.fail_load = False

    def build(self, folder):
        self.builds += 1
        (folder / "camera.bin").write_bytes(b"camera %d" % self.builds)
        (folder / "sub").mkdir()
        (folder / "sub" / "lidar.bin").write_bytes(b"lidar")

    def load(self, folder):
        self.loads += 1
        if self.fail_load:
            self.fail_load = False
            raise BackendError("corrupt graph")
        return (folder / "camera.bin").read_bytes()


def test_built_once_then_reused(tmp_path):
    folder, c = tmp_path / "m-ffff" / "fake-fp32", Counter()
    assert stale_reason(folder, KEY) == "not built yet"
    assert cached(folder, KEY, c.build, c.load) == b"camera 1"
    assert stale_reason(folder, KEY) is None
    assert cached(folder, KEY, c.build, c.load) == b"camera 1"
    assert (c.builds, c.loads) == (1, 2)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["key"] == KEY
    assert set(manifest["files"]) == {"camera.bin", "sub/lidar.bin"}
    # nothing but the cache folder is left behind (no temporary folders)
    assert [p.name for p in folder.parent.iterdir()] == ["fake-fp32"]


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda f: (f / "camera.bin").write_bytes(b"camera X"), "camera.bin changed"),
        (lambda f: (f / "sub" / "lidar.bin").unlink(), "sub/lidar.bin is missing"),
        (lambda f: (f / "manifest.json").unlink(), "no manifest"),
        (lambda f: (f / "manifest.json").write_text("{not json"), "unreadable manifest"),
    ],
)
def test_a_spoilt_cache_is_rebuilt_with_a_warning(tmp_path, caplog, spoil, reason):
    folder, c = tmp_path / "fake-fp32", Counter()
    cached(folder, KEY, c.build, c.load)
    spoil(folder)
    assert reason in stale_reason(folder, KEY)
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        assert cached(folder, KEY, c.build, c.load) == b"camera 2"
    assert c.builds == 2
    assert "rebuilding" in caplog.text
    assert reason in caplog.text
    assert stale_reason(folder, KEY) is None


def test_a_cache_for_another_key_is_rebuilt(tmp_path, caplog):
    folder, c = tmp_path / "fake-fp32", Counter()
    cached(folder, KEY, c.build, c.load)
    other = {**KEY, "fingerprint": "e" * 16, "sizes": [64, 64]}
    assert stale_reason(folder, other) == "built for another fingerprint, sizes"
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        cached(folder, other, c.build, c.load)
    assert c.builds == 2
    assert json.loads((folder / "manifest.json").read_text())["key"] == other


def test_a_cache_that_does_not_load_is_rebuilt_once(tmp_path):
    folder, c = tmp_path / "fake-fp32", Counter()
    cached(folder, KEY, c.build, c.load)
    c.fail_load = True
    assert cached(folder, KEY, c.build, c.load) == b"camera 2"
    assert (c.builds, c.loads) == (2, 3)
    # a fresh build that does not load is an error, not a loop
    c.fail_load = True
    shutil.rmtree(folder)
    with pytest.raises(BackendError, match="corrupt graph"):
        cached(folder, KEY, c.build, c.load)


def test_a_failed_build_leaves_the_old_cache_and_no_debris(tmp_path):
    folder, c = tmp_path / "fake-fp32", Counter()
    cached(folder, KEY, c.build, c.load)

    def broken(tmp):
        (tmp / "camera.bin").write_bytes(b"half")
        raise BackendError("converter crashed")

    other = {**KEY, "precision": "bf16"}
    with pytest.raises(BackendError, match="converter crashed"):
        cached(folder, other, broken, c.load)
    assert stale_reason(folder, KEY) is None  # the old one is intact
    assert [p.name for p in tmp_path.iterdir()] == ["fake-fp32"]


def test_cache_folders_are_keyed_by_fingerprint_and_precision(tmp_path, monkeypatch):
    model = save_tiny_vit(tmp_path / "models" / "vit.safetensors")
    folder = cache_folder(model, "openvino", "bf16")
    assert folder == (
        tmp_path / "models" / ".liploc-cache" / f"vit-{model.fingerprint}" / "openvino-bf16"
    )
    assert cache_folder(model, "openvino", "fp32") != folder
    assert cache_folder(model, "openvino", "bf16", side="lidar") == folder / "lidar"
    key = graph_key(model, "openvino", "bf16")
    assert key["sha256"] == model.sha256
    assert key["precision"] == "bf16"
    assert graph_key(model, "openvino", "fp32") != key
    # the same weights with another normalisation are another graph
    flipped = wrap_model(save_tiny_vit(tmp_path / "n.safetensors", normalize=False).model)
    assert flipped.fingerprint == model.fingerprint
    assert graph_key(flipped, "openvino", "bf16") != key
    # in-memory models and read-only model folders use the user cache
    monkeypatch.setenv("LIPLOC_CACHE_DIR", str(tmp_path / "user"))
    assert cache_folder(flipped, "openvino", "bf16").is_relative_to(tmp_path / "user")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "models").chmod(0o500)
        try:
            assert cache_folder(model, "openvino", "bf16").is_relative_to(tmp_path / "user")
        finally:
            (tmp_path / "models").chmod(0o700)


@pytest.mark.slow
@needs("onnxruntime")
def test_a_stale_converted_model_is_rebuilt_not_used(tmp_path, caplog):
    """A cache folder holding another model's graph under this model's key, with a manifest
    that matches its files (the hardest case: only the graph's own fingerprint tells)."""
    from liploc_ros.model.backends.onnx_process import export_onnx_files

    model = save_tiny_vit(tmp_path / "a" / "m.safetensors", seed=0)
    other = save_tiny_vit(tmp_path / "b" / "m.safetensors", seed=1)
    x = inputs()
    expected = Embedder(model, device="cpu", precision="fp32", backend="torch").embed_camera(x)
    Embedder(model, device="cpu", backend="onnxruntime")
    ours = cache_folder(model, "onnxruntime", "fp32", side="camera")
    mtime = (ours / "camera.onnx").stat().st_mtime_ns
    Embedder(model, device="cpu", backend="onnxruntime")  # reused, not rebuilt
    assert (ours / "camera.onnx").stat().st_mtime_ns == mtime
    # the other model's camera graph in our folder, the manifest updated to match it
    export_onnx_files(other, {"camera": ours / "camera.onnx"})
    manifest = json.loads((ours / "manifest.json").read_text())
    data = (ours / "camera.onnx").read_bytes()
    manifest["files"]["camera.onnx"] = {"bytes": len(data), "sha256": sha256(data).hexdigest()}
    (ours / "manifest.json").write_text(json.dumps(manifest))
    assert stale_reason(ours, graph_key(model, "onnxruntime", "fp32", side="camera")) is None
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        embedder = Embedder(model, device="cpu", backend="onnxruntime")
    assert f"holds model {other.fingerprint}, not {model.fingerprint}" in caplog.text
    got = embedder.embed_camera(x)
    assert min_cosine(got, expected) >= PARITY
    np.testing.assert_allclose(got, expected, atol=1e-4)
