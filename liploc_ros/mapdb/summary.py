"""What a map covers, in numbers and as a picture of its route.

Used by ``liploc map-info``: an operator about to deploy a map wants to see at a glance which
model made it, how far it reaches and whether the route is the one they drove.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.config import to_dict
from liploc_ros.io_utils import write_bytes_atomic
from liploc_ros.mapdb.database import MapDatabase
from liploc_ros.mapdb.indexes.registry import header_of

#: the route plot draws at most this many points (evenly subsampled) to stay fast
MAX_PLOT_POINTS = 200_000


def route_length(positions: np.ndarray) -> float:
    """Length of the polyline through ``positions`` in order (metres)."""
    if len(positions) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(np.asarray(positions), axis=0), axis=1).sum())


def describe(db: MapDatabase) -> dict[str, Any]:
    """A JSON-ready description of ``db``: model, size, extent, route, index, sources."""
    info = db.info
    positions = np.asarray(db.positions)
    sources: list[dict[str, Any]] = []
    names = info.sources or ("(unnamed)",)
    for i, name in enumerate(names):
        mask = np.asarray(db.source_index) == i
        sources.append(
            {
                "name": name,
                "entries": int(mask.sum()),
                "route_length_m": round(route_length(positions[mask]), 3),
            }
        )
    extent: dict[str, Any] = {}
    if len(db):
        low, high = positions.min(axis=0), positions.max(axis=0)
        extent = {
            "min": [round(float(v), 3) for v in low],
            "max": [round(float(v), 3) for v in high],
            "size": [round(float(v), 3) for v in high - low],
        }
    stamps = np.asarray(db.stamps)
    path = db.path
    return {
        "path": str(path) if path else None,
        "file_bytes": path.stat().st_size if path and path.is_file() else None,
        "format_version": db.format_version,
        "entries": len(db),
        "keyframes": db.keyframe_count,
        "headings_deg": list(db.headings),
        "embedding": {"dim": db.dim, "dtype": str(db.dtype), "normalized": info.normalized},
        "model": {"name": info.model_name, "fingerprint": info.model_fingerprint},
        "frame_id": info.frame_id,
        "extent_m": extent,
        "route_length_m": round(sum(s["route_length_m"] for s in sources), 3),
        "stamps": {
            "first": float(stamps.min()) if len(db) else None,
            "last": float(stamps.max()) if len(db) else None,
        },
        "sources": sources,
        "index": header_of(db.index_params),
        "lidar": to_dict(info.lidar),
        "created": info.created,
        "liploc_ros_version": info.liploc_ros_version,
    }


def plot_route(db: MapDatabase, path: str | Path, *, title: str = "") -> Path:
    """PNG of the mapped route in the x-y plane, equal axes.

    One source: coloured by entry order. Several: one colour per source, with a legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = np.asarray(db.positions)
    source = np.asarray(db.source_index)
    step = max(1, len(db) // MAX_PLOT_POINTS)
    keep = np.arange(0, len(db), step)
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    names = db.info.sources or ("(unnamed)",)
    if len(names) > 1:
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for i, name in enumerate(names):
            sel = keep[source[keep] == i]
            ax.plot(positions[sel, 0], positions[sel, 1], ".", ms=2, color=cmap(i % cmap.N),
                    label=f"{name} ({int((source == i).sum())})", rasterized=True)  # fmt: skip
        ax.legend(fontsize=7, markerscale=4, loc="best")
    elif len(db):
        dots = ax.scatter(positions[keep, 0], positions[keep, 1], c=keep, s=2, cmap="viridis",
                          rasterized=True)  # fmt: skip
        fig.colorbar(dots, ax=ax, shrink=0.8, label="entry")
    total = sum(route_length(positions[source == i]) for i in range(len(names)))
    if len(db):
        ax.plot(*positions[0, :2], "k^", ms=8, label="first entry")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"x [m] ({db.info.frame_id})")
    ax.set_ylabel(f"y [m] ({db.info.frame_id})")
    ax.grid(True, lw=0.3)
    ax.set_title(
        title
        or f"{len(db)} entries, {total:.0f} m, model {db.info.model_name} "
        f"({db.info.model_fingerprint})",
        fontsize=9,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buf.getvalue())
    return path
