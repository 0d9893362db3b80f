"""A new evaluation metric costs one file: a module dropped into
``liploc_ros/evaluation/metrics/`` (here: a folder added to that package's path) shows up in
``liploc localize``'s summary.json with no other edit; a bad one is refused by name."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from liploc_ros.evaluation import metrics

TOY = """
def figures(run):
    fixes = sum(1 for e in run.estimates if e.ok)
    return {"toy_frames_seen": len(run.records), "toy_fixes": fixes,
            "toy_threshold_m": run.threshold_m}
"""


@pytest.fixture
def metric_folder(tmp_path, monkeypatch):
    """A folder searched for metric modules beside the package's own."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.setattr(metrics, "__path__", [*metrics.__path__, str(folder)])
    yield folder
    for name in [n for n in sys.modules if n.startswith(f"{metrics.__name__}.toy")]:
        del sys.modules[name]


def test_a_dropped_in_metric_module_reaches_the_summary(metric_folder, model_and_map, tmp_path):
    from liploc_ros.cli import main

    (metric_folder / "toy_count.py").write_text(textwrap.dedent(TOY))
    model, lmap = model_and_map
    out = tmp_path / "run"
    code = main(["localize", "--map", str(lmap), "--model", str(model), "--mode", "single",
                 "--synthetic", "3:1:6", "--out", str(out), "--no-progress", "--no-plot",
                 "--latency-samples", "1"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["toy_frames_seen"] == summary["frames"] == 6
    assert summary["toy_fixes"] == summary["fixes"]
    assert summary["toy_threshold_m"] == summary["threshold_m"]
    assert "fix_ratio" in summary  # the package's own metrics still there


def test_the_package_metrics_are_found_without_the_plugin():
    names = [m.__name__.rsplit(".", 1)[-1] for m in metrics.metric_modules()]
    assert "track_figures" in names
    assert not any(n.startswith("toy") for n in names)


def test_a_figure_name_given_twice_is_an_error_naming_both(metric_folder):
    for name in ("toy_a", "toy_b"):  # found (in name order) before the package's own
        (metric_folder / f"{name}.py").write_text("def figures(run):\n    return {'toy': 1}\n")
    run = metrics.RunData(records=[], estimates=[], truth=np.zeros((0, 4, 4)), database=None,
                          threshold_m=20.0)  # fmt: skip
    with pytest.raises(metrics.MetricError, match=r"toy_b gives 'toy', which .*toy_a gives"):
        metrics.run_metrics(run)


def test_a_module_without_figures_is_refused_by_name(metric_folder):
    (metric_folder / "toy_empty.py").write_text("VALUE = 1\n")
    with pytest.raises(metrics.MetricError, match="toy_empty has no figures"):
        metrics.metric_modules()
