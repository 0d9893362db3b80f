"""Shared by the backend tests: the PyTorch fp32 embeddings every backend is held to."""

from __future__ import annotations

import pytest
from backend_helpers import inputs

from liploc_ros.model import Embedder


@pytest.fixture(scope="module")
def reference(tiny_vit):
    """(inputs, camera embeddings, LiDAR embeddings) of the tiny ViT by PyTorch in fp32."""
    embedder = Embedder(tiny_vit, device="cpu", precision="fp32", backend="torch")
    x = inputs()
    return x, embedder.embed_camera(x), embedder.embed_lidar(x)
