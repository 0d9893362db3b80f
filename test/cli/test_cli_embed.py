"""`liploc embed`: npz of camera and LiDAR embeddings equal to the Embedder's."""

from __future__ import annotations

import numpy as np

from liploc_ros.cli import main
from liploc_ros.datasets.frame_files import write_image, write_scan
from liploc_ros.model import Embedder, create_model, load_model, model_preset, save_model
from liploc_ros.preprocess import CameraConfig, PreprocessConfig


def test_embed_writes_the_embedder_output(tmp_path, capsys):
    pre = PreprocessConfig(camera=CameraConfig(image_size=32), lidar_image_size=32)
    model_path = tmp_path / "m.safetensors"
    save_model(model_path, create_model(model_preset("liploc-tiny"), pre))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 90, 3), dtype=np.uint8) for _ in range(2)]
    scans = [(rng.normal(size=(3000, 4)) * [10, 10, 1, 1]).astype(np.float32) for _ in range(3)]
    for i, im in enumerate(images):
        write_image(tmp_path / f"{i}.png", im)
    for i, sc in enumerate(scans):
        write_scan(tmp_path / f"{i}.bin", sc)
    out = tmp_path / "emb.npz"
    args = ["embed", "--model", str(model_path), "--out", str(out), "--images"]
    args += [str(tmp_path / f"{i}.png") for i in range(2)] + ["--scans"]
    args += [str(tmp_path / f"{i}.bin") for i in range(3)]
    assert main(args) == 0
    assert "embedded 2 image(s) and 3 scan(s)" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as data:
        camera, lidar = data["camera"], data["lidar"]
    embedder = Embedder(load_model(model_path), device="cpu")
    np.testing.assert_allclose(camera, embedder.embed_images(images), atol=1e-5)
    np.testing.assert_allclose(lidar, embedder.embed_scans(scans), atol=1e-5)


def test_embed_needs_something_to_embed(tmp_path, capsys):
    assert main(["embed", "--model", str(tmp_path / "x"), "--out", str(tmp_path / "o")]) == 1
    assert "nothing to embed" in capsys.readouterr().err
