"""A localization run's figures and files: summary.json, trajectories, frames.csv, plots.

:func:`summarize_run` turns a :class:`~liploc_ros.localization.run.StreamRun` (whatever the
mode) into the summary ``liploc localize`` writes and prints; :func:`write_run` writes the
files. One place, so that every command that runs a localizer reports it alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.evaluation.frame_check import GroundTruthFrameCheck, check_ground_truth_frame
from liploc_ros.evaluation.metrics import RunData, run_metrics
from liploc_ros.evaluation.outputs import write_frames_csv, write_summary, write_trajectories
from liploc_ros.evaluation.stream import mode_figures
from liploc_ros.evaluation.summary import (
    RECALL_KS,
    latency_stats,
    route_points,
    summarize,
    truth_positions,
)
from liploc_ros.localization.calibration import calibration_summary
from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.run import FrameRecord, StreamRun

__all__ = ["RunReport", "summarize_run", "write_run"]


class RunReport:
    """A run's summary (summary.json), its gate sweep (None for a mode without a gate) and
    the ground-truth frame check."""

    def __init__(
        self, summary: dict[str, Any], curve: dict | None, frame: GroundTruthFrameCheck
    ) -> None:
        self.summary, self.curve, self.frame = summary, curve, frame


def _truth_stack(records: list[FrameRecord]) -> np.ndarray:
    return np.stack([r.truth if r.truth is not None else np.full((4, 4), np.nan) for r in records])


def summarize_run(
    localizer: Localizer,
    run: StreamRun,
    *,
    threshold_m: float,
    about: dict[str, Any],
) -> RunReport:
    """The figures of ``run`` by ``localizer``; ``about``: the run's description (source,
    map, batch size, ...), first in the summary."""
    database, embedder = localizer.database, localizer.embedder
    mode, records = localizer.mode, run.records
    estimates = [r.estimate for r in records]
    truth = _truth_stack(records)
    loaded = embedder.loaded
    summary: dict[str, Any] = {
        **about,
        "mode": mode.name,
        "odometry": ",".join(sorted(run.odometry_kinds)) if mode.uses_odometry else None,
        "map_entries": len(database),
        "map_index": database.index_kind,
        "model": loaded.model_config.name,
        "model_fingerprint": loaded.fingerprint,
        "device": str(embedder.device),
        "precision": embedder.precision,
        "backend": embedder.backend,
        "localizer": to_dict(localizer.config),
        "seconds": run.seconds,
        "frames_per_second": len(records) / run.seconds if run.seconds > 0 else None,
        **summarize(records, database, threshold_m=threshold_m, ks=RECALL_KS),
        **run_metrics(RunData(records, estimates, truth, database, threshold_m)),
        "latency_note": (
            "latency_ms: per frame, the batch's stage times divided by its size"
            if about.get("batch_size", 1) > 1
            else "latency_ms: per frame, one frame at a time"
        ),
        **{k: v for k, v in mode.describe().items() if k not in ("mode", "localizer")},
        "single_frame_latency_ms": {
            "samples": len(run.single),
            **(latency_stats(run.single) if run.single else {}),
        },
    }
    warning = localizer.estimator.calibration_warning
    summary["calibration"] = warning or calibration_summary(database)
    figures = mode_figures(mode, estimates, truth, threshold_m)
    curve = figures.pop("precision_curve", None)
    summary.update(figures)
    frame = check_ground_truth_frame(truth_positions(records), database.positions, threshold_m)
    if frame.queries:
        summary["ground_truth_frame"] = frame.as_dict()
    if mode.uses_odometry and run.odometry_kinds == {"none"}:
        summary["odometry_note"] = (
            "no odometry: the filter moved its particles by a bounded random walk, which "
            "tracks worse than with odometry"
        )
    return RunReport(summary, curve, frame)


def write_run(
    out: Path, localizer: Localizer, run: StreamRun, report: RunReport, *,
    plots: bool, title: str, map_name: str,
) -> None:  # fmt: skip
    """summary.json, the trajectories, frames.csv and (``plots``) the PNG figures."""
    records, database = run.records, localizer.database
    threshold = float(report.summary.get("threshold_m") or 20.0)
    write_trajectories(out, records)
    write_frames_csv(out / "frames.csv", records, database)
    write_summary(out / "summary.json", report.summary)
    if not plots:
        return
    from liploc_ros.evaluation.plots import save_error_figure, save_precision_curve
    from liploc_ros.evaluation.route_figure import save_route_figure

    mode = localizer.mode.name
    save_error_figure(out / "error_vs_distance.png", records, threshold_m=threshold,
                      title=f"{title}: {mode} mode")  # fmt: skip
    save_route_figure(
        out / "route.png", database.positions[:, :2], *route_points(records, database),
        threshold_m=threshold, title=f"{title} in {map_name}",
        axis_labels=(f"x [m] ({database.info.frame_id})", "y [m]"),
    )  # fmt: skip
    if report.curve is not None:
        save_precision_curve(out / "precision_curve.png", {title: report.curve},
                             title=f"{title}: precision vs fix ratio")  # fmt: skip
