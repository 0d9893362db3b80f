"""route.png: where the localizer succeeded and failed along a drive, over the map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liploc_ros.localization.evaluation import (
    SUCCESS_THRESHOLD_M,
    FrameRecord,
    retrieved_positions,
    truth_positions,
)
from liploc_ros.mapdb import MapDatabase
from liploc_ros.viz import _pyplot, _save

GREEN, RED, GREY, BLUE = "#2ca02c", "#d62728", "#9a9a9a", "#1f77b4"


def save_route_figure(
    path: str | Path,
    records: Sequence[FrameRecord],
    database: MapDatabase,
    *,
    threshold_m: float = SUCCESS_THRESHOLD_M,
    title: str = "",
) -> Path:
    """Map entries in light grey; each frame at its true position, green (fix within the
    threshold), red (fix beyond it, with a thin line to where it was placed) or hollow grey
    (no fix). Without ground truth, the fixes are drawn where they were placed (blue)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    map_xy = np.asarray(database.positions)[:, :2]
    ax.scatter(map_xy[:, 0], map_xy[:, 1], s=5, c="#b8b8b8", label=f"map ({len(map_xy)})",
               linewidths=0, zorder=1)  # fmt: skip
    truth = truth_positions(records)
    matches = retrieved_positions(records, database)
    match_xy = matches[:, 0, :2] if matches.shape[1] else np.full((len(records), 2), np.nan)
    ok = np.array([r.estimate.ok for r in records], bool)
    # a fix is drawn where it was published (the sequence filter's pose is no map entry's)
    for i, r in enumerate(records):
        if r.estimate.ok and r.estimate.pose is not None:
            match_xy[i] = r.estimate.pose[:2, 3]
    has_truth = ~np.isnan(truth[:, 0])
    if has_truth.any():
        error = np.hypot(*(match_xy - truth[:, :2]).T)
        good = has_truth & ok & (error < threshold_m)
        bad = has_truth & ok & ~good
        none = has_truth & ~ok
        for a, b in zip(truth[bad, :2], match_xy[bad], strict=True):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=RED, lw=0.4, alpha=0.6, zorder=2)
        ax.scatter(truth[none, 0], truth[none, 1], s=14, facecolors="none", edgecolors=GREY,
                   linewidths=0.8, label=f"no fix ({none.sum()})", zorder=3)  # fmt: skip
        ax.scatter(truth[bad, 0], truth[bad, 1], s=10, c=RED, linewidths=0,
                   label=f"fix > {threshold_m:g} m ({bad.sum()})", zorder=4)  # fmt: skip
        ax.scatter(truth[good, 0], truth[good, 1], s=10, c=GREEN, linewidths=0,
                   label=f"fix < {threshold_m:g} m ({good.sum()})", zorder=5)  # fmt: skip
    if (~has_truth & ok).any():
        placed = ~has_truth & ok
        ax.scatter(match_xy[placed, 0], match_xy[placed, 1], s=10, c=BLUE, linewidths=0,
                   label=f"fix, no ground truth ({placed.sum()})", zorder=5)  # fmt: skip
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"x [m] ({database.info.frame_id})")
    ax.set_ylabel("y [m]")
    ax.set_title(title or f"{len(records)} frames, {ok.sum()} fixes", fontsize=9)
    ax.legend(loc="best", fontsize=8, markerscale=1.5)
    ax.grid(True, lw=0.3, alpha=0.5)
    return _save(fig, path)


def save_error_figure(
    path: str | Path,
    records: Sequence[FrameRecord],
    *,
    threshold_m: float = SUCCESS_THRESHOLD_M,
    title: str = "",
) -> Path:
    """Published position error against distance driven: fixes as dots (red beyond the
    threshold), frames without a fix as grey ticks at the bottom."""
    from liploc_ros.localization.track_metrics import fix_errors, travelled

    plt = _pyplot()
    truth = np.stack(
        [r.truth if r.truth is not None else np.full((4, 4), np.nan) for r in records]
    )
    ok, err, _ = fix_errors([r.estimate for r in records], truth)
    dist = travelled(np.where(np.isfinite(truth), truth, 0.0))
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    judged = ok & np.isfinite(err)
    good, bad = judged & (err < threshold_m), judged & (err >= threshold_m)
    ax.scatter(dist[good], err[good], s=6, c=GREEN, linewidths=0, label=f"fix ({good.sum()})")
    ax.scatter(dist[bad], err[bad], s=8, c=RED, linewidths=0,
               label=f"fix > {threshold_m:g} m ({bad.sum()})")  # fmt: skip
    none = ~ok
    ax.scatter(dist[none], np.full(none.sum(), 0.0), s=12, marker="|", c=GREY,
               label=f"no fix ({none.sum()})")  # fmt: skip
    ax.axhline(threshold_m, color=RED, lw=0.6, ls="--")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("distance driven [m]")
    ax.set_ylabel("position error [m]")
    ax.set_title(title or "error along the drive", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, lw=0.3, alpha=0.5)
    return _save(fig, path)


def save_precision_curve(
    path: str | Path, curves: dict[str, dict[str, list[float | None]]], *, title: str = ""
) -> Path:
    """Precision (20 m) against fix ratio over a sweep of the gate's target, one line per
    run (``curves``: label -> :func:`~liploc_ros.localization.track_metrics.precision_curve`),
    the 99% precision line dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8), dpi=110)
    for label, curve in curves.items():
        pts = [(f, p) for f, p in zip(curve["fix_ratio"], curve["precision"], strict=True)
               if f is not None and p is not None]  # fmt: skip
        if pts:
            f, p = zip(*pts, strict=True)
            ax.plot(f, p, marker="o", ms=3, lw=1.2, label=label)
    ax.axhline(0.99, color=GREY, ls="--", lw=0.8, label="99% precision")
    ax.set_xlabel("fix ratio (frames with a published pose)")
    ax.set_ylabel("precision (fixes within 20 m)")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(min(0.8, ax.get_ylim()[0]), 1.005)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, Path(path))
