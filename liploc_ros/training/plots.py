"""Training and evaluation PNGs: the route coloured by success, Recall@1 against the threshold,
and the training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liploc_ros.viz import _pyplot, _save


def save_route_figure(
    db_xy: np.ndarray,
    query_xy: np.ndarray,
    success: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    axis_labels: tuple[str, str] = ("x (m)", "y (m)"),
) -> Path:
    """The map's route in grey and each query at its true position, green where its top-1
    retrieval was within the threshold, red where not."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    ax.plot(db_xy[:, 0], db_xy[:, 1], "-", color="0.75", lw=4, label="map", zorder=1)
    ok = np.asarray(success, bool)
    ax.scatter(query_xy[ok, 0], query_xy[ok, 1], s=7, c="tab:green", label="success", zorder=3)
    ax.scatter(query_xy[~ok, 0], query_xy[~ok, 1], s=7, c="tab:red", label="failure", zorder=2)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


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


def save_training_curves(history: list[dict], path: str | Path, *, title: str = "") -> Path:
    """Losses per epoch on the left, each periodic Recall@1 (and its chance level, dashed) on
    the right: whether a run is still improving, and whether it beats chance, at a glance."""
    plt = _pyplot()
    fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(10.0, 3.8), dpi=110)
    epochs = [r["epoch"] for r in history]
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "-o", ms=3, label="train")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        loss_ax.plot(*zip(*val, strict=True), "-o", ms=3, label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("contrastive loss")
    loss_ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    names = sorted({k for r in history for k in r.get("recall@1", {}) if "(chance)" not in k})
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        points = [(r["epoch"], r["recall@1"][name]) for r in history if name in r["recall@1"]]
        recall_ax.plot(*zip(*points, strict=True), "-o", ms=3, color=color, label=name)
        chance = [
            (r["epoch"], r["recall@1"][f"{name} (chance)"])
            for r in history
            if f"{name} (chance)" in r["recall@1"]
        ]
        if chance:
            recall_ax.plot(*zip(*chance, strict=True), "--", color=color, lw=1, alpha=0.6)
    recall_ax.set_xlabel("epoch")
    recall_ax.set_ylabel("Recall@1 (dashed: chance)")
    recall_ax.set_ylim(0, 1.02)
    recall_ax.grid(alpha=0.3)
    if names:
        recall_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
