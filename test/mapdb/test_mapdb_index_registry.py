"""Index kinds come from one registry: a kind registered here (a numpy brute-force search,
defined in this file) is accepted by the map file, map-info, merge-maps, build-map's flags and
config file, the map-building config and the map builder node's parameters, with no other
edit; and no module outside liploc_ros/mapdb/indexes/ lists the kinds itself."""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import liploc_ros.mapdb
from liploc_ros.cli import build_map, main, merge_maps
from liploc_ros.config import from_dict
from liploc_ros.errors import ConfigError, DeviceError, MapError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb import fileformat as ff
from liploc_ros.mapdb.indexes import registry
from liploc_ros.mapdb.indexes.base import MapIndex, Reader, Writer
from liploc_ros.mapdb.indexes.exact import ExactSearcher
from liploc_ros.mapdb.synthetic import synthetic_map
from liploc_ros.mapping.config import MapBuildConfig

DIM = 16
PACKAGE = Path(liploc_ros.mapdb.__file__).resolve().parent.parent
_MAGIC = b"brute1"
#: the kinds registry.py lists itself
BUILT_IN = tuple(kind.name for kind in registry._BUILT_IN)


@dataclass(frozen=True)
class BruteParams:
    """Rows scored per numpy product."""

    kind: ClassVar[str] = "brute"
    block_rows: int = 1024


class BruteIndex(MapIndex):
    """Exact search by numpy products, block by block; stores a marker blob."""

    name = "brute"
    summary = "numpy brute force (a test kind)"
    params_type = BruteParams
    search_params = ("block_rows",)

    @classmethod
    def build(
        cls, exact: ExactSearcher, *, progress: bool = True, block_rows: int = 1024
    ) -> BruteIndex:
        return cls(exact, BruteParams(block_rows=block_rows))

    @classmethod
    def open(cls, exact: ExactSearcher, params: Any, read: Reader | None) -> BruteIndex:
        assert read is not None
        if read(len(_MAGIC) + 1) != _MAGIC:
            raise RuntimeError("not a brute index")
        return cls(exact, params)

    def write(self, write: Writer) -> None:
        write(_MAGIC)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        emb = np.asarray(self.exact.embeddings, np.float32)
        step = self.params.block_rows
        scores = np.hstack([queries @ emb[i : i + step].T for i in range(0, len(emb), step)])
        ids = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        order = np.lexsort((ids, -scores))[:, :k]
        return np.take_along_axis(scores, order, 1).astype(np.float32), order.astype(np.int64)

    @classmethod
    def describe(cls, params: BruteParams) -> str:
        return f"brute, numpy, blocks of {params.block_rows} rows"


@pytest.fixture
def brute() -> Iterator[type[BruteIndex]]:
    registry.register(BruteIndex)
    try:
        yield BruteIndex
    finally:
        registry.unregister(BruteIndex.name)


def _index_action(parser: argparse.ArgumentParser) -> argparse.Action:
    return next(a for a in parser._actions if "--index" in a.option_strings)


def test_every_reader_of_the_kinds_follows_the_registry(brute, tmp_path):
    choices = registry.index_choices()
    assert choices[0] == "auto"
    assert set(choices) >= {"flat", "ivf", "hnsw", "brute"}
    assert choices == liploc_ros.mapdb.INDEX_KINDS

    parser = argparse.ArgumentParser()
    merge_maps.add_parser(parser)
    assert tuple(_index_action(parser).choices) == choices
    parser = argparse.ArgumentParser()
    build_map.add_parser(parser)
    help_text = _index_action(parser).help
    assert all(re.search(rf"\b{name}\b", help_text) for name in choices), help_text

    assert MapBuildConfig(index="brute").index == "brute"
    assert from_dict(MapBuildConfig, {"index": "brute"}).index == "brute"
    with pytest.raises(ConfigError, match=r"index 'annoy' is not one of auto, .*brute"):
        MapBuildConfig(index="annoy")
    config = tmp_path / "build.yaml"
    config.write_text("build:\n  index: brute\n")
    assert build_map.read_config_file(config) == ({"index": "brute"}, {})

    from liploc_ros.config_fields import config_docs
    from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig

    node = from_dict(
        MapBuilderNodeConfig, {"model": "m", "map_path": "o", "build": {"index": "brute"}}
    )
    assert node.build.index == "brute"
    # the description is written when asked: every kind is in it, the registered one too
    for name in ("auto", *BUILT_IN, "brute"):
        assert re.search(rf"\b{name}\b", config_docs(MapBuilderNodeConfig)["build.index"])


def test_node_parameters_accept_a_registered_kind(brute, ros_context):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from liploc_ros.ros.map_builder_params import MapBuilderNodeConfig
    from liploc_ros.ros.params import ParameterError, declare_config, read_config

    for index, ok in (("brute", True), ("annoy", False)):
        values = {"model": "m", "map_path": "o", "build.index": index}
        overrides = [Parameter(k, value=v) for k, v in values.items()]
        node = Node("map_builder_node", context=ros_context, parameter_overrides=overrides)
        declare_config(node, MapBuilderNodeConfig)
        if ok:
            assert read_config(node, MapBuilderNodeConfig).build.index == index
        else:
            with pytest.raises(ParameterError, match=r"^parameter 'build.index': .*brute"):
                read_config(node, MapBuilderNodeConfig)
        node.destroy_node()


def test_a_registered_kind_is_built_stored_searched_and_described(brute, tmp_path, capsys):
    db = synthetic_map(500, DIM, seed=4)
    path = db.save(tmp_path / "m.lmap", index="brute", index_options={"block_rows": 64})
    container, handle = ff.read_container(path, verify=True)
    handle.close()
    assert container.meta["index"] == {"kind": "brute", "block_rows": 64}
    assert "index" in container.sections

    loaded = MapDatabase.load(path)
    assert loaded.index_kind == "brute"
    assert loaded.index_params == BruteParams(block_rows=64)
    queries = np.random.default_rng(0).standard_normal((7, DIM)).astype(np.float32)
    want = loaded.search(queries, 5, exact=True)
    got = loaded.search(queries, 5)
    assert np.array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
    loaded.set_search_params(block_rows=7)
    assert loaded.index_params.block_rows == 7
    assert np.array_equal(loaded.search(queries, 5).indices, want.indices)
    with pytest.raises(ConfigError, match=r"no search parameter.*nprobe.*block_rows"):
        loaded.set_search_params(nprobe=3)
    with pytest.raises(ConfigError, match="block_rows must be positive"):
        loaded.set_search_params(block_rows=0)
    with pytest.raises(DeviceError, match="brute index cannot search on a GPU"):
        loaded.enable_gpu()

    assert main(["map-info", str(path), "--no-plot"]) == 0
    assert "index:        brute, numpy, blocks of 64 rows" in capsys.readouterr().out
    assert main(["map-info", str(path), "--no-plot", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == {"kind": "brute", "block_rows": 64}

    other = synthetic_map(300, DIM, seed=5).save(tmp_path / "n.lmap", index="flat")
    merged = tmp_path / "mn.lmap"
    assert main(["merge-maps", str(merged), str(path), str(other), "--index", "brute"]) == 0
    assert "index brute" in capsys.readouterr().out
    assert MapDatabase.load(merged).index_kind == "brute"

    registry.unregister("brute")
    with pytest.raises(MapError, match="unknown index kind 'brute'"):
        MapDatabase.load(path)


def test_registry_refuses_clashes():
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(type("Flat2", (BruteIndex,), {"name": "flat"}))
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(type("Auto", (BruteIndex,), {"name": "auto"}))
    with pytest.raises(ConfigError, match="built in"):
        registry.unregister("ivf")
    with pytest.raises(ConfigError, match="unknown map index 'annoy'; use one of auto, flat"):
        registry.resolve_kind("annoy", 10)


def _kind_lists(path: Path) -> Iterator[str]:
    """Tuple / list / set literals naming two or more built-in kinds, and strings listing
    them all (a help text or message written by hand)."""
    names = set(BUILT_IN)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            if len(values & names) >= 2:
                yield f"{path}:{node.lineno}: {ast.unparse(node)}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and all(re.search(rf"\b{name}\b", node.value) for name in names)
        ):
            yield f"{path}:{node.lineno}: {node.value[:60]!r}"


def test_no_module_outside_the_registry_lists_the_kinds():
    indexes = PACKAGE / "mapdb" / "indexes"
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if indexes not in path.parents
        for hit in _kind_lists(path)
    ]
    assert not found, "\n".join(found)
    yaml_text = (PACKAGE.parent / "config" / "map_builder.yaml").read_text()
    assert not re.search(r"\bivf\b.*\bhnsw\b", yaml_text), "config/map_builder.yaml lists kinds"
