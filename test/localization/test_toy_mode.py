"""A new localizer mode costs its class and one registry entry: a toy mode registered here
(and nowhere else) runs through ``liploc localize`` and the node's set-up unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liploc_ros.localization.estimate import PoseEstimate
from liploc_ros.localization.mode import LocalizationMode
from liploc_ros.localization.mode_registry import _MODES, mode_names, register_mode


class ToyMode(LocalizationMode):
    """Every frame placed at its best match, always a fix (a test's mode, not a product)."""

    def estimate(self, queries, stamps, odometry=None, *, k=None, timings_ms=None):
        found = self.estimator.database.search(np.asarray(queries, np.float32), max(1, k or 1))
        return [
            self.with_timings(
                PoseEstimate(
                    stamp=float(stamps[i]),
                    ok=True,
                    reason="",
                    pose=found.poses[i][0],
                    covariance=np.eye(6),
                    confidence=1.0,
                    score=float(found.scores[i][0]),
                    indices=found.indices[i],
                    scores=found.scores[i],
                    best_pose=found.poses[i][0],
                ),
                dict(timings_ms or {}),
            )
            for i in range(len(stamps))
        ]


@pytest.fixture
def toy_mode():
    register_mode("toy", f"{__name__}:ToyMode")
    yield "toy"
    _MODES.pop("toy", None)


def test_a_registered_mode_runs_through_the_cli(toy_mode, model_and_map, tmp_path, capsys):
    from liploc_ros.cli import main

    assert "toy" in mode_names()
    model, lmap = model_and_map
    code = main(["localize", "--map", str(lmap), "--model", str(model), "--mode", "toy",
                 "--synthetic", "3:1:6", "--out", str(tmp_path), "--no-progress",
                 "--no-plot", "--latency-samples", "1"])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["mode"], summary["frames"], summary["fixes"]) == ("toy", 6, 6)
    assert "toy mode" in capsys.readouterr().out


def test_a_registered_mode_passes_the_nodes_parameters_and_set_up(toy_mode, model_and_map):
    pytest.importorskip("rclpy", reason="the node's set-up needs rclpy")
    from liploc_ros.ros.localizer_params import LocalizerNodeConfig
    from liploc_ros.ros.localizer_setup import load_localizer

    model, lmap = model_and_map
    cfg = LocalizerNodeConfig(model=str(model), map_path=str(lmap), mode="toy", device="cpu")
    lines = []
    log = type("Log", (), {"info": lines.append, "warning": lines.append})()
    localizer = load_localizer(cfg, log)
    assert isinstance(localizer.mode, ToyMode)
    assert localizer.localize(np.zeros((32, 32, 3), np.uint8), 2.0).ok
    with pytest.raises(Exception, match="mode must be one of"):
        LocalizerNodeConfig(model="m", map_path="m", mode="toys")
