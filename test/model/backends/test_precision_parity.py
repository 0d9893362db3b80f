"""bf16 keeps the authors' checkpoints' embeddings: cosine >= 0.999 to fp32 on the
authors'-layout ViT-S/16 and ResNet-50 checkpoints that test_checkpoint loads too (the path
precision ``auto`` takes on a CPU with bf16 units; emulated, so slow, on one without)."""

from __future__ import annotations

import pytest
import torch
from authors_helpers import save_authors_checkpoint
from backend_helpers import PARITY, min_cosine, needs

from liploc_ros.model import Embedder, load_authors_checkpoint


@pytest.fixture(scope="module", params=["vit", "resnet50"])
def authors(request, tmp_path_factory):
    _, path = save_authors_checkpoint(request.param, tmp_path_factory.mktemp("authors"))
    loaded = load_authors_checkpoint(path)
    size = loaded.preprocess.camera.image_size  # 224: the authors' input
    # a realistic input range: ImageNet-normalised pictures lie within about +-2.5
    x = (torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2)) - 0.5) * 5
    return loaded, x.numpy()


def _both(embedder, x):
    return embedder.embed_camera(x), embedder.embed_lidar(x)


@pytest.mark.slow
def test_torch_bf16_keeps_parity_on_the_authors_checkpoints(authors):
    loaded, x = authors
    fp32 = _both(Embedder(loaded, device="cpu", precision="fp32", backend="torch"), x)
    bf16 = _both(Embedder(loaded, device="cpu", precision="bf16", backend="torch"), x)
    for got, expected in zip(bf16, fp32, strict=True):
        assert min_cosine(got, expected) >= PARITY


@pytest.mark.slow
@needs("openvino")
def test_openvino_bf16_keeps_parity_on_the_authors_checkpoints(authors, tmp_path):
    from liploc_ros.model.backends.openvino_backend import openvino_has_bf16

    if not openvino_has_bf16():
        pytest.skip("OpenVINO reports no bf16 on this CPU (no AMX / AVX512-BF16)")
    loaded, x = authors
    fp32 = _both(Embedder(loaded, device="cpu", precision="fp32", backend="torch"), x)
    ov = Embedder(loaded, device="cpu", precision="bf16", backend="openvino", cache_dir=tmp_path)
    for got, expected in zip(_both(ov, x), fp32, strict=True):
        assert min_cosine(got, expected) >= PARITY
