"""The evaluation's other figures: error along the drive, precision against fix ratio,
Recall@1 against the threshold (the route figure is :mod:`.route_figure`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liploc_ros.evaluation.route_figure import GREEN, GREY, RED
from liploc_ros.evaluation.summary import SUCCESS_THRESHOLD_M
from liploc_ros.localization.run import FrameRecord
from liploc_ros.viz import _pyplot, _save


def save_error_figure(
    path: str | Path,
    records: Sequence[FrameRecord],
    *,
    threshold_m: float = SUCCESS_THRESHOLD_M,
    title: str = "",
) -> Path:
    """Published position error against distance driven: fixes as dots (red beyond the
    threshold), frames without a fix as grey ticks at the bottom."""
    from liploc_ros.evaluation.tracks import fix_errors, travelled

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
    run (``curves``: label -> :func:`~liploc_ros.evaluation.tracks.precision_curve`),
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


def save_recall_curve(
    thresholds: np.ndarray,
    recall: np.ndarray,
    chance: np.ndarray,
    path: str | Path,
    *,
    marked_threshold: float | None = None,
    title: str = "",
) -> Path:
    """Recall@1 and the chance level against the success threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.plot(thresholds, recall, "-", color="tab:blue", label="Recall@1")
    ax.plot(thresholds, chance, "--", color="0.5", label="chance (random pick)")
    if marked_threshold is not None:
        ax.axvline(marked_threshold, color="tab:orange", lw=1, alpha=0.7)
    ax.set_xlabel("success threshold (m)")
    ax.set_ylabel("Recall@1")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(float(thresholds[0]), float(thresholds[-1]))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
