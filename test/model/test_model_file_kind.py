"""One sniffer decides what a model file is, so that every command and node says the same
thing about a file that is neither a liploc model nor an authors' checkpoint."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from liploc_ros.cli import main
from liploc_ros.errors import CheckpointError

MESSAGE = (
    "is neither a liploc .safetensors model nor a PyTorch .pth checkpoint (unknown signature)"
)


@pytest.fixture(scope="module")
def files(model_and_map, tmp_path_factory) -> dict[str, Path]:
    garbage = tmp_path_factory.mktemp("kinds") / "random.safetensors"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    model, map_path = model_and_map
    return {"model": model, "map": map_path, "garbage": garbage}


def test_the_signatures(files, tmp_path):
    from liploc_ros.model.file_kind import model_file_kind, sniff_model_file

    assert sniff_model_file(files["model"]) == model_file_kind(files["model"]) == "safetensors"
    assert sniff_model_file(files["garbage"]) == "unknown"
    with zipfile.ZipFile(tmp_path / "zip.pth", "w") as archive:
        archive.writestr("archive/data.pkl", b"x")
    assert model_file_kind(tmp_path / "zip.pth") == "torch"
    (tmp_path / "legacy.pth").write_bytes(b"\x80\x02" + bytes(30))
    assert model_file_kind(tmp_path / "legacy.pth") == "torch"
    # a "{" at byte 8 is not enough: the 8 bytes before it must be a plausible header length
    (tmp_path / "brace.bin").write_bytes(b"\xff" * 8 + b"{" + bytes(30))
    assert sniff_model_file(tmp_path / "brace.bin") == "unknown"
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"neither .* \(empty file\)"):
        model_file_kind(tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        model_file_kind(tmp_path / "missing.pth")


def _commands(files: dict[str, Path], out: Path) -> dict[str, list[str]]:
    g = str(files["garbage"])
    return {
        "model-info": ["model-info", g],
        "eval": ["eval", "--model", g, "--source", "synthetic:1:0:2", "--no-progress"],
        "embed": ["embed", "--model", g, "--images", str(out / "x.png"), "--out", str(out / "e")],
        "convert-checkpoint": ["convert-checkpoint", g, str(out / "converted.safetensors")],
        "localize": [
            "localize",
            "--map",
            str(files["map"]),
            "--model",
            g,
            "--synthetic",
            "1:1:2",
            "--out",
            str(out / "loc"),
            "--no-progress",
        ],
        "build-map": [
            "build-map",
            "--model",
            g,
            "--synthetic",
            "1",
            "--frames",
            "2",
            "--out",
            str(out / "m.lmap"),
            "--no-progress",
        ],
    }


@pytest.mark.parametrize(
    "command", ["model-info", "eval", "embed", "convert-checkpoint", "localize", "build-map"]
)
def test_every_command_says_the_same_of_random_bytes(files, tmp_path, capsys, command):
    assert main(_commands(files, tmp_path)[command]) == 1
    err = capsys.readouterr().err
    assert f"{files['garbage']} {MESSAGE}" in err, err


@pytest.mark.ros
@pytest.mark.parametrize("node", ["localizer_node", "map_builder_node"])
def test_both_nodes_say_the_same_of_random_bytes(files, tmp_path, capfd, node):
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    if node == "localizer_node":
        from liploc_ros.ros.localizer_node import main as node_main

        params = [f"model:={files['garbage']}", f"map_path:={files['map']}", "device:=cpu"]
    else:
        from liploc_ros.ros.map_builder_node import main as node_main

        params = [f"model:={files['garbage']}", f"map_path:={tmp_path / 'm.lmap'}"]
    args = [node, "--ros-args"] + [x for p in params for x in ("-p", p)]
    assert node_main(args) == 1
    err = capfd.readouterr().err
    assert "[FATAL]" in err
    assert f"{files['garbage']} {MESSAGE}" in err, err


@pytest.mark.ros
def test_the_map_builder_node_takes_an_authors_checkpoint_too(tmp_path, ros_context):
    """It read .safetensors files only; the shared loader takes an authors' .pth as well."""
    import torch
    from mapping_helpers import tiny_model
    from rclpy.parameter import Parameter

    from liploc_ros.ros.map_builder_node import MapBuilderNode

    pth = tmp_path / "authors.pth"
    torch.save(tiny_model(2).model.state_dict(), pth)
    params = {"model": str(pth), "map_path": str(tmp_path / "m.lmap"), "use_tf": False}
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    node = MapBuilderNode(context=ros_context, parameter_overrides=overrides)
    try:
        assert node.embedder.loaded.metadata["source"] == "authors"
    finally:
        node.live.close()
        node.destroy_node()
