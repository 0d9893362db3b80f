"""The launch examples work once installed, from any directory: the launch files' ``model``
defaults to the installed demo model, and a relative model path that does not exist is
looked up in the package's share folder (what README's ``model:=models/...`` means)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from launch_file_helpers import run_launch
from localizer_helpers import make_model_file

from liploc_ros import paths
from liploc_ros.cli import main
from liploc_ros.model.model_file import load_model_file

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = [ROOT / "launch" / "localize.launch.py", ROOT / "launch" / "build_map.launch.py"]
DEMO = "liploc_demo.safetensors"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_the_model_argument_defaults_to_the_installed_demo_model(launch_file, installed_share):
    launched = run_launch(launch_file, installed_share)
    model = installed_share / "models" / DEMO
    assert launched.configurations["model"] == str(model)
    assert launched.node.parameters[1]["model"] == str(model)
    assert model.resolve() == (ROOT / "models" / DEMO).resolve()  # setup.py installs it there
    # model:='' keeps the parameter file's
    assert "model" not in run_launch(launch_file, installed_share, model="").node.parameters[1]


def test_a_relative_model_path_is_looked_up_in_the_share_folder(tmp_path, monkeypatch):
    share = tmp_path / "install" / "share" / "liploc_ros"
    (share / "models").mkdir(parents=True)
    make_model_file(share / "models" / "tiny.safetensors", size=32)
    monkeypatch.setattr(paths, "share_dir", lambda: share)  # an installed package
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    expected = share / "models" / "tiny.safetensors"
    assert paths.resolve_shared_path("models/tiny.safetensors") == expected
    assert paths.resolve_shared_path("tiny.safetensors") == expected
    assert load_model_file("models/tiny.safetensors").path == expected
    assert main(["model-info", "models/tiny.safetensors"]) == 0
    # a path that exists where it is given wins; one found nowhere stays as given
    (elsewhere / "models").mkdir()
    make_model_file(elsewhere / "models" / "tiny.safetensors", size=32, seed=1)
    assert paths.resolve_shared_path("models/tiny.safetensors") == Path("models/tiny.safetensors")
    assert paths.resolve_shared_path("models/nope.safetensors") == Path("models/nope.safetensors")
    assert paths.resolve_shared_path(tmp_path / "abs.safetensors") == tmp_path / "abs.safetensors"


def test_the_readme_model_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = set(re.findall(r"model(?::=|\s+)(models/[\w.]+)", (ROOT / "README.md").read_text()))
    assert f"models/{DEMO}" in given
    for path in given:
        resolved = paths.resolve_shared_path(path)
        assert resolved.is_file(), f"{path} -> {resolved}"


@pytest.mark.launch_ros
def test_launching_without_model_passes_the_installed_demo_model(tmp_path):
    pytest.importorskip("launch_ros", reason="ROS 2 launch_ros is not installed (no ROS)")
    launch = pytest.importorskip("launch", reason="ROS 2 launch is not installed (no ROS)")
    import importlib.util

    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("localize_launch", LAUNCH_FILES[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (model,) = [
        e
        for e in module.generate_launch_description().entities
        if isinstance(e, DeclareLaunchArgument) and e.name == "model"
    ]
    default = launch.utilities.perform_substitutions(launch.LaunchContext(), model.default_value)
    assert default.endswith(f"share/liploc_ros/models/{DEMO}")
