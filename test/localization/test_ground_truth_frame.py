"""A query drive whose ground truth is in another frame than the map is said so, loudly, by
``liploc localize`` and ``liploc eval``, and written into summary.json; the figures are
still reported. The drive in another frame is a synthetic traversal with its poses moved
92 m and turned 90 degrees, as a converter anchoring each drive at its own start does."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from mapping_helpers import tiny_model

from liploc_ros.cli import main
from liploc_ros.datasets.base import Frame, IndexedSource
from liploc_ros.datasets.registry import SOURCE_KINDS, register_source
from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.mapping import MapBuildConfig, build_map
from liploc_ros.model import Embedder, save_model

SEED = 6
FRAMES = 24  # 1 m apart: a 23 m route, far less than the 92 m the frames are apart
SHIFT = np.array([[0.0, -1.0, 0.0, 92.0], [1.0, 0.0, 0.0, 0.0], [0, 0, 1, 0], [0, 0, 0, 1]])


class Reanchored(IndexedSource):
    """A drive whose ground truth is expressed in another frame (``SHIFT @ T_map_lidar``)."""

    def __init__(self, inner: IndexedSource) -> None:
        self.inner = inner
        self.name = f"reanchored:{inner.name}"
        self.calibration = inner.calibration

    def __len__(self) -> int:
        return len(self.inner)

    def frame(self, index: int, *, image: bool = True, points: bool = True) -> Frame:
        frame = self.inner.frame(index, image=image, points=points)
        return dataclasses.replace(frame, pose=SHIFT @ frame.pose)

    @property
    def stamps(self) -> np.ndarray:
        return self.inner.stamps

    @property
    def poses(self) -> np.ndarray:
        return SHIFT @ self.inner.poses


@pytest.fixture(scope="module", autouse=True)
def reanchored_kind():
    def opener(rest: str, options: dict) -> IndexedSource:
        seed, traversal, frames = (int(x) for x in rest.split(":"))
        return Reanchored(make_drive(seed, traversal, frames))

    register_source("reanchored", "reanchored:SEED:TRAVERSAL:FRAMES", opener)
    yield
    SOURCE_KINDS.pop("reanchored")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gt_frame")
    loaded = tiny_model(4)
    save_model(root / "tiny.safetensors", loaded.model)
    db, _ = build_map(
        make_drive(SEED, 0, FRAMES),
        Embedder(loaded, device="cpu", batch_size=8),
        MapBuildConfig(keyframe_distance=2.0, workers=0),
        progress=False,
    )
    db.save(root / "map.lmap")
    return {"model": root / "tiny.safetensors", "map": root / "map.lmap"}


def test_the_check_compares_the_median_nearest_map_distance_with_the_threshold():
    from liploc_ros.evaluation.frame_check import check_ground_truth_frame

    route = np.column_stack([np.arange(50.0), np.zeros(50)])
    same = check_ground_truth_frame(np.add(route, [0.5, 3.5]), route, 20.0)  # the other lane
    assert not same.suspect
    assert same.median_nearest_m == pytest.approx(np.hypot(0.5, 3.5))
    assert same.near_fraction == 1.0
    assert same.message().startswith("ground truth frame: ok")
    moved = np.vstack([np.add(route, [0.0, 92.0]), [[np.nan, np.nan]]])  # a NaN row is ignored
    far = check_ground_truth_frame(moved, route, 20.0)
    assert far.suspect
    assert far.queries == 50
    assert far.median_nearest_m == pytest.approx(92.0)
    assert far.near_fraction == 0.0
    assert "probably not in the map's frame" in far.message()
    assert far.as_dict()["suspect"] is True
    assert check_ground_truth_frame(np.zeros((0, 2)), route, 20.0).median_nearest_m is None


def _localize(files, out: Path, spec: str) -> int:
    return main(["localize", "--map", str(files["map"]), "--model", str(files["model"]),
                 "--source", spec, "--out", str(out), "--no-progress", "--batch-size", "4",
                 "--latency-samples", "1", "--stride", "2", "--no-plot"])  # fmt: skip


def test_localize_says_loudly_when_the_ground_truth_is_in_another_frame(files, tmp_path, capfd):
    assert _localize(files, tmp_path / "moved", f"reanchored:{SEED}:1:{FRAMES}") == 0
    out, err = capfd.readouterr()
    summary = json.loads((tmp_path / "moved" / "summary.json").read_text())
    check = summary["ground_truth_frame"]
    assert check["suspect"] is True
    assert check["median_nearest_m"] > 60.0
    assert "probably not in the map's frame" in err  # loudly: on stderr too
    assert "WARNING" in out
    assert summary["recall"]["@1"] == 0.0  # and still what was measured
    assert summary["median_top1_error_m"] > 60.0

    assert _localize(files, tmp_path / "same", f"synthetic:{SEED}:1:{FRAMES}") == 0
    out, err = capfd.readouterr()
    summary = json.loads((tmp_path / "same" / "summary.json").read_text())
    assert summary["ground_truth_frame"]["suspect"] is False
    assert "probably not in the map's frame" not in out + err


@pytest.mark.slow
def test_eval_says_loudly_when_the_queries_are_in_another_frame(files, tmp_path, capfd):
    def run(queries: str, out: Path) -> dict:
        argv = ["eval", "--model", str(files["model"]), "--map", f"synthetic:{SEED}:0:{FRAMES}",
                "--queries", queries, "--out", str(out), "--device", "cpu", "--workers", "0",
                "--no-progress", "--batch-size", "8"]  # fmt: skip
        assert main(argv) == 0
        return json.loads((out / "summary.json").read_text())

    moved = run(f"reanchored:{SEED}:1:{FRAMES}", tmp_path / "moved")
    out, err = capfd.readouterr()
    assert moved["ground_truth_frame"]["suspect"] is True
    assert moved["recall@1"] == 0.0
    assert "probably not in the map's frame" in err
    assert "probably not in the map's frame" in out  # the report says it too

    same = run(f"synthetic:{SEED}:1:{FRAMES}", tmp_path / "same")
    assert same["ground_truth_frame"]["suspect"] is False
    assert "probably not in the map's frame" not in "".join(capfd.readouterr())
