"""What localizer_node loads at start-up: model, map, their match, the warm-up frame, and in
sequence mode the tracker. No rclpy here; kept apart so that the node stays a thin shell."""

from __future__ import annotations

import time
from typing import Any

from liploc_ros.localization.localizer import Localizer
from liploc_ros.localization.tracking import TrackingLocalizer
from liploc_ros.ros.localizer_params import LocalizerNodeConfig

__all__ = ["load_localizer"]


def load_localizer(
    cfg: LocalizerNodeConfig, log: Any
) -> tuple[Localizer, TrackingLocalizer | None]:
    """The localizer after one warm-up frame, and in sequence mode its tracker (reset after
    the warm-up); LiplocError for anything wrong (a missing, corrupt or mismatched file)."""
    import torch

    from liploc_ros.mapdb import MapDatabase
    from liploc_ros.mapping.model_file import load_model_file
    from liploc_ros.model import Embedder

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    database = MapDatabase.load(cfg.map_path)
    loaded = load_model_file(cfg.model)
    embedder = Embedder(
        loaded, device=cfg.device, precision=cfg.precision, batch_size=1, backend=cfg.backend
    )
    localizer = Localizer(embedder, database, cfg.localizer)
    tracker = TrackingLocalizer(localizer, cfg.sequence) if cfg.mode == "sequence" else None
    t0 = time.perf_counter()
    (tracker or localizer).warm_up()
    log.info(
        f"model {loaded.model_config.name} ({loaded.fingerprint}) with {embedder.describe()}"
        f", map {cfg.map_path} ({len(database)} entries), {cfg.mode} mode; warm-up frame "
        f"{1e3 * (time.perf_counter() - t0):.0f} ms"
    )
    return localizer, tracker
