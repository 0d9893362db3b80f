"""Shared by the whole suite: the helper modules on sys.path, and the fixtures used in more
than one folder (an rclpy context, a tiny model's Embedder, a tiny ViT file, a model file
and a map made with it, the package's share folder as installed).

The test folders mirror liploc_ros/ and have no __init__.py: test file names are unique
across folders (pytest's default import mode), and the shared helpers live in test/helpers/,
imported as top-level modules (``from mapping_helpers import tiny_model``) from any folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent / "helpers"
if str(HELPERS) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(HELPERS))


@pytest.fixture
def ros_context():
    """An rclpy context of the test's own, initialised, shut down after it."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed")
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope="module")
def embedder():
    """The Embedder of an untrained liploc-tiny at 32 px (seed 0) on the CPU, batches of 4."""
    from mapping_helpers import tiny_model

    from liploc_ros.model import Embedder

    return Embedder(tiny_model(0), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """timm's test ViT at 32 px saved as a liploc model file, loaded (LoadedModel)."""
    from backend_helpers import save_tiny_vit

    return save_tiny_vit(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def model_and_map(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny untrained model file (32 px) and a random 40-entry map made with it."""
    from localizer_helpers import make_map_file, make_model_file

    folder = tmp_path_factory.mktemp("model_and_map")
    loaded = make_model_file(folder / "tiny.safetensors", size=32)
    make_map_file(folder / "town.lmap", loaded)
    return folder / "tiny.safetensors", folder / "town.lmap"


@pytest.fixture(scope="session")
def installed_share(tmp_path_factory) -> Path:
    """share/liploc_ros as an install lays it out: setup.py's data_files (linked)."""
    from launch_file_helpers import install_data_files

    return install_data_files(tmp_path_factory.mktemp("install"))
