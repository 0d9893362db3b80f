"""PNG figures of what people would rather look at than numbers (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from liploc_ros.io_utils import write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: str | Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    _pyplot().close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buf.getvalue())
    return path


def save_pair_figure(
    image: np.ndarray, range_picture: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """A camera frame above the LiDAR encoder's range image of the same instant."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 4.2), dpi=120, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    top.imshow(image)
    top.set_title(title or "camera (RGB)", fontsize=9)
    gray = range_picture[..., 0] if range_picture.ndim == 3 else range_picture
    bottom.imshow(gray, cmap="gray", vmin=0, vmax=255, aspect="auto")
    bottom.set_title("LiDAR range image, as the encoder sees it (crop, 8 bit)", fontsize=9)
    for ax in (top, bottom):
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)
