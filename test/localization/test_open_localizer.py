"""open_localizer: the one assembly of a localizer (modes, model kinds, errors), the shared
source flags of build-map and localize, and both nodes taking the same model files."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from localizer_helpers import make_map_file, random_image
from mapping_helpers import tiny_model

from liploc_ros.errors import CheckpointError, ConfigError, ModelMismatchError
from liploc_ros.localization.factory import open_localizer
from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.mode_registry import check_mode, mode_names
from liploc_ros.localization.sequence_config import SequenceConfig
from liploc_ros.localization.sequence_mode import SequenceMode
from liploc_ros.localization.single_mode import SingleFrameMode
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model import Embedder, load_model
from liploc_ros.model.model_file import load_embedder, load_model_file


@pytest.fixture(scope="module")
def files(model_and_map, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("open")
    torch.save(tiny_model(2).model.state_dict(), root / "authors.pth")
    make_map_file(root / "authors.lmap", load_model_file(root / "authors.pth"))
    (root / "garbage.bin").write_bytes(np.random.default_rng(0).bytes(256))
    found = {p.stem if p.suffix != ".lmap" else f"{p.stem}_map": p for p in root.iterdir()}
    return {"tiny": model_and_map[0], "tiny_map": model_and_map[1], **found}


def test_each_mode_gets_its_localizer(files):
    single = open_localizer(files["tiny"], files["tiny_map"], mode="single", device="cpu")
    assert type(single) is Localizer
    assert type(single.mode) is SingleFrameMode
    settings = SequenceConfig(particles=300, seed=3)
    tracked = open_localizer(
        files["tiny"], files["tiny_map"], mode="sequence", sequence=settings, device="cpu"
    )
    assert type(tracked) is Localizer  # one interface: the mode is inside
    assert isinstance(tracked.mode, SequenceMode)
    assert tracked.mode.filter.config == settings
    assert tracked.embedder.batch_size == 1  # the node's default
    default = open_localizer(files["tiny"], files["tiny_map"], device="cpu")
    assert default.mode.name == "sequence"
    tracked.warm_up()
    est = tracked.localize(random_image(0), 1.0, np.eye(4))
    assert est.stamp == 1.0
    assert tracked.mode.filter.status.frames == 1  # the warm-up frame was forgotten
    assert set(mode_names()) == {"sequence", "single"}


def test_a_bad_mode_is_refused_before_anything_is_loaded(tmp_path, files):
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match="mode must be one of sequence, single, got 'track'"):
        open_localizer(missing, missing, mode="track")
    with pytest.raises(ConfigError, match="mode must be one of"):
        check_mode("Single")
    localizer = open_localizer(files["tiny"], files["tiny_map"], mode="single")
    with pytest.raises(ConfigError, match="mode must be one of"):
        Localizer(localizer.embedder, localizer.database, mode="batch")
    from liploc_ros.evaluation.stream import evaluate_stream

    with pytest.raises(ConfigError, match="mode must be one of"):
        evaluate_stream(localizer.database, np.zeros((1, 4)), np.eye(4)[None], np.zeros(1),
                        None, mode="particles")  # fmt: skip


def test_every_model_kind(files):
    def opened(model, map_name="tiny_map", **options):
        kwargs = {"device": "cpu", **options}
        return open_localizer(model, files[map_name], mode="single", **kwargs)

    ours = opened(files["tiny"])
    assert ours.embedder.loaded.metadata.get("source") != "authors"
    assert opened(files["authors"], "authors_map").embedder.loaded.metadata["source"] == "authors"
    assert opened(load_model(files["tiny"])).embedder.fingerprint == ours.embedder.fingerprint
    embedder = Embedder(load_model(files["tiny"]), device="cpu")
    assert opened(embedder).embedder is embedder  # used as it is
    vlp = opened(files["authors"], "authors_map", sensor="vlp16").embedder.loaded
    assert (vlp.preprocess.lidar.sensor, vlp.preprocess.lidar.height) == ("vlp16", 16)
    norm = opened(files["authors"], "authors_map", normalize=True).embedder.loaded
    assert norm.model_config.normalize
    with pytest.raises(ConfigError, match=r"only to the authors' \.pth"):
        opened(files["tiny"], normalize=True)
    with pytest.raises(CheckpointError, match=r"neither a liploc \.safetensors model"):
        opened(files["garbage"])
    with pytest.raises(ModelMismatchError):
        opened(files["authors"])  # the map of another model
    database = MapDatabase.load(files["tiny_map"])  # a loaded map is used as it is
    assert open_localizer(ours.embedder, database, mode="single").database is (database)


def test_load_embedder_options(files):
    embedder = load_embedder(files["tiny"], device="cpu", batch_size=5)
    assert (embedder.batch_size, embedder.backend) == (5, "torch")
    assert load_embedder(load_model(files["tiny"]), sensor="os1-64").loaded.preprocess.lidar.sensor
    with pytest.raises(ConfigError, match="normalize"):
        load_embedder(load_model(files["tiny"]), normalize=False)


def _mode_choices(command: str) -> tuple[str, ...]:
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(f"liploc_ros.cli.{command}").add_parser(parser)
    return next(a for a in parser._actions if a.dest == "mode").choices


@pytest.mark.parametrize("command", ["localize", "evaluate"])
def test_the_commands_offer_the_registered_modes(command):
    assert set(_mode_choices(command)) == set(mode_names())


def _spec(command: str, *flags: str) -> str:
    import importlib

    from liploc_ros.cli.source_flags import source_spec

    module = importlib.import_module(f"liploc_ros.cli.{command}")
    parser = argparse.ArgumentParser()
    module.add_parser(parser)
    required = ["--model", "m", "--out", "o"] + (["--map", "x"] if command == "localize" else [])
    return source_spec(parser.parse_args([*required, *flags]))


def test_build_map_and_localize_read_the_source_flags_alike(tmp_path):
    from liploc_ros.cli.source_flags import KIND_FLAGS
    from liploc_ros.datasets.registry import SOURCE_KINDS

    assert set(KIND_FLAGS) <= set(SOURCE_KINDS)
    (tmp_path / "sequences").mkdir()
    for flags, spec in [
        (["--kitti", "/k", "--sequence", "08"], "kitti:/k:08"),
        (["--kitti", "/k/08"], "kitti:/k/08"),
        (["--bag", "/b"], "bag:/b"),
        (["--kitti360", "/r", "--drive", "3"], "kitti360:/r:3"),
        (["--source", "synthetic:1:2:3"], "synthetic:1:2:3"),
        (["--synthetic", str(tmp_path), "--sequence", "2"], f"kitti:{tmp_path}:02"),
    ]:
        assert _spec("build_map", *flags) == _spec("localize", *flags) == spec, flags
    assert _spec("localize", "--synthetic", "4") == "synthetic:4"  # the registry's defaults
    assert _spec("build_map", "--synthetic", "4") == "synthetic:4:0:300"
    assert _spec("build_map", "--synthetic", "4", "--frames", "9") == "synthetic:4:0:9"
    assert _spec("build_map", "--synthetic", "4:1:7") == "synthetic:4:1:7"
    for command in ("build_map", "localize"):
        for flags, message in [
            (["--bag", "/b", "--synthetic", "1"], "exactly one source: --source SPEC, --bag, "
             "--kitti, --kitti360 or --synthetic (got bag:/b, synthetic:1"),
            ([], "exactly one source"),
            (["--kitti360", "/r"], "--kitti360 needs --drive"),
            (["--bag", "/b", "--drive", "1"], "--drive goes with --kitti360"),
            (["--bag", "/b", "--sequence", "1"], "--sequence goes with --kitti or a --synthetic"),
            (["--synthetic", "1", "--sequence", "1"], "--sequence goes with --kitti or a"),
            (["--synthetic", str(tmp_path / "no")], "neither SEED[:TRAVERSAL[:FRAMES]] nor"),
        ]:  # fmt: skip
            with pytest.raises(ConfigError) as err:
                _spec(command, *flags)
            assert message in str(err.value), (command, flags)
    with pytest.raises(ConfigError, match="go with a bare --synthetic SEED"):
        _spec("build_map", "--synthetic", "4:1", "--traversal", "2")


@pytest.mark.ros
@pytest.mark.parametrize("kind", ["tiny", "authors"])
def test_the_map_builder_node_takes_what_the_localizer_node_takes(
    files, tmp_path, kind, ros_context
):
    """Both nodes load their model with load_embedder: the same files, the same result."""
    from rclpy.parameter import Parameter

    from liploc_ros.ros.localizer_params import LocalizerNodeConfig
    from liploc_ros.ros.localizer_setup import load_localizer
    from liploc_ros.ros.map_builder_node import MapBuilderNode

    lines: list[str] = []
    cfg = LocalizerNodeConfig(model=str(files[kind]), map_path=str(files[f"{kind}_map"]),
                              device="cpu", mode="single")  # fmt: skip
    log = SimpleNamespace(info=lines.append, warning=lines.append)
    localizer = load_localizer(cfg, log)
    assert not localizer.mode.uses_odometry
    assert "single mode" in lines[0]
    params = {"model": str(files[kind]), "map_path": str(tmp_path / "m.lmap"),
              "bag_path": str(tmp_path / "bag"), "build.device": "cpu"}  # fmt: skip
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    node = MapBuilderNode(context=ros_context, parameter_overrides=overrides)
    try:
        built = node.embedder.loaded
        assert built.fingerprint == localizer.embedder.fingerprint
        assert built.metadata.get("source") == localizer.embedder.loaded.metadata.get("source")
    finally:
        node.destroy_node()
