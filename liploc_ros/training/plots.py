"""The training curves PNG (the evaluation's figures are in :mod:`liploc_ros.evaluation`)."""

from __future__ import annotations

from pathlib import Path

from liploc_ros.viz import _pyplot, _save


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
