"""Every ``liploc`` subcommand's parser, walked: each command that runs an encoder takes
``--device``, ``--precision`` and ``--backend`` with the same meaning, and passes them on."""

from __future__ import annotations

import argparse
import importlib

import pytest

from liploc_ros.cli import COMMANDS
from liploc_ros.cli.encoder_flags import DEFAULTS

#: commands that take a model to run its encoders (the others convert, describe or train)
RUNS_AN_ENCODER = {"demo", "embed", "build-map", "localize", "run-localizer", "eval", "calibrate"}


def _parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"liploc_ros.cli.{COMMANDS[command][0]}")
    parser = argparse.ArgumentParser(prog=f"liploc {command}")
    module.add_parser(parser)
    return parser


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_that_runs_an_encoder_takes_device_precision_and_backend(command):
    options = _options(_parser(command))
    runs = "--model" in options or "--device" in options
    assert runs == (command in RUNS_AN_ENCODER), (command, sorted(options))
    if runs:
        assert {"--device", "--precision", "--backend"} <= options, (command, sorted(options))


@pytest.mark.parametrize("command", sorted(RUNS_AN_ENCODER - {"build-map", "run-localizer"}))
def test_the_flags_default_to_what_the_library_takes(command):
    parser = _parser(command)
    assert {name: parser.get_default(name) for name in DEFAULTS} == DEFAULTS


def test_build_map_and_run_localizer_leave_unset_flags_to_their_config_file():
    for command in ("build-map", "run-localizer"):
        parser = _parser(command)
        assert all(parser.get_default(name) is None for name in DEFAULTS), command


def test_run_localizer_passes_precision_and_backend_to_the_node(tmp_path):
    from liploc_ros.cli.run_localizer import ros_arguments

    args = _parser("run-localizer").parse_args(
        ["--model", "m.safetensors", "--precision", "bf16", "--backend", "openvino"]
    )
    argv = ros_arguments(args, tmp_path / "p.yaml")
    assert "precision:='bf16'" in argv
    assert "backend:='openvino'" in argv
    assert not any(a.startswith("device:=") for a in argv)  # not given: the file's value


def test_demo_hands_its_encoder_flags_to_the_map_and_the_node(monkeypatch, tmp_path):
    """The demo builds its map and starts its node with the flags given."""
    from liploc_ros.cli import demo

    args = _parser("demo").parse_args(
        ["--precision", "fp32", "--backend", "onnxruntime", "--device", "cpu"]
    )
    seen = {}

    def fake_load_embedder(model, **kwargs):
        seen["embedder"] = kwargs
        raise RuntimeError("stop here")

    monkeypatch.setattr("liploc_ros.model.model_file.load_embedder", fake_load_embedder)
    with pytest.raises(RuntimeError, match="stop here"):
        demo._build_map(tmp_path / "m.safetensors", tmp_path / "bag", args, tmp_path, False)
    assert seen["embedder"] == {"device": "cpu", "precision": "fp32", "backend": "onnxruntime"}


def test_cli_functions_only_parse_call_and_print():
    """The commands parse arguments, call the core and print: no function in cli/ over 60
    lines (the loops and the figures live in the core)."""
    import ast
    from pathlib import Path

    cli = Path(__file__).resolve().parents[2] / "liploc_ros" / "cli"
    long = []
    for path in sorted(cli.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, long
