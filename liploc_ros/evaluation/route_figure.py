"""route.png: the one figure of where a run succeeded and failed along a drive, over the map.

``liploc localize``, ``liploc eval`` and ``liploc demo`` draw it from the same three arrays
per frame (see :func:`save_route_figure`), so that their figures read the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liploc_ros.viz import _pyplot, _save

GREEN, RED, GREY, BLUE, MAP_GREY = "#2ca02c", "#d62728", "#9a9a9a", "#1f77b4", "#b8b8b8"


def save_route_figure(
    path: str | Path,
    map_xy: np.ndarray,
    truth_xy: np.ndarray,
    placed_xy: np.ndarray,
    fixed: np.ndarray | None = None,
    *,
    threshold_m: float = 20.0,
    success: np.ndarray | None = None,
    noun: str = "fix",
    title: str = "",
    axis_labels: tuple[str, str] = ("x [m]", "y [m]"),
) -> Path:
    """Map entries in light grey; each frame at its true position ``truth_xy`` (N, 2).

    ``placed_xy`` (N, 2) is where the frame was placed: its pose where ``fixed``, else its
    best match; NaN where it was not localized (a hollow grey circle). A fix is a dot, green
    within ``threshold_m`` of the truth, red beyond it (with a thin line to where it was
    placed); a frame without a fix is a cross coloured by its best match. ``fixed`` None:
    every placed frame counts as a fix (Recall@1's top-1). ``success`` (N,) overrides the
    distance test (another distance convention). Fixes without ground truth are drawn blue
    where they were placed."""
    truth = np.asarray(truth_xy, np.float64).reshape(-1, 2)
    placed = np.asarray(placed_xy, np.float64).reshape(-1, 2)
    n = len(truth)
    has_placed = np.isfinite(placed).all(axis=1)
    fix = has_placed if fixed is None else np.asarray(fixed, bool) & has_placed
    has_truth = np.isfinite(truth).all(axis=1)
    with np.errstate(invalid="ignore"):
        good = np.hypot(*(placed - truth).T) < threshold_m
    if success is not None:
        good = np.asarray(success, bool)
    t = f"{threshold_m:g}"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    m = np.asarray(map_xy, np.float64).reshape(-1, 2)
    ax.scatter(m[:, 0], m[:, 1], s=5, c=MAP_GREY, linewidths=0, label=f"map ({len(m)})",
               zorder=1)  # fmt: skip
    bad_fix = has_truth & fix & ~good
    for a, b in zip(truth[bad_fix], placed[bad_fix], strict=True):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=RED, lw=0.4, alpha=0.5, zorder=2)
    dropped = has_truth & ~has_placed
    ax.scatter(truth[dropped, 0], truth[dropped, 1], s=14, facecolors="none", edgecolors=GREY,
               linewidths=0.8, label=f"not localized ({dropped.sum()})", zorder=3)  # fmt: skip
    groups = (
        (fix & good, GREEN, "o", f"{noun} within {t} m"),
        (fix & ~good, RED, "o", f"{noun} > {t} m off"),
        (has_placed & ~fix & good, GREEN, "x", f"no {noun}; best match within {t} m"),
        (has_placed & ~fix & ~good, RED, "x", f"no {noun}; best match > {t} m off"),
    )
    for chosen, color, marker, label in groups:
        sel = chosen & has_truth
        if sel.any():
            ax.scatter(truth[sel, 0], truth[sel, 1], s=10, c=color, marker=marker,
                       linewidths=0 if marker == "o" else 0.8,
                       label=f"{label} ({sel.sum()})", zorder=4)  # fmt: skip
    blind = ~has_truth & fix
    if blind.any():
        ax.scatter(placed[blind, 0], placed[blind, 1], s=10, c=BLUE, linewidths=0,
                   label=f"{noun}, no ground truth ({blind.sum()})", zorder=5)  # fmt: skip
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title or f"{n} frames, {fix.sum()} with a {noun}", fontsize=9)
    ax.legend(loc="best", fontsize=8, markerscale=1.5)
    ax.grid(True, lw=0.3, alpha=0.5)
    return _save(fig, path)
