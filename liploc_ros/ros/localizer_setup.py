"""What localizer_node loads when it configures: model, map, their match, the mode, the
warm-up frame. No rclpy here; kept apart so that the node stays a thin shell."""

from __future__ import annotations

import time
from typing import Any

from liploc_ros.localization.calibration import calibration_summary
from liploc_ros.localization.localizer import Localizer
from liploc_ros.ros.localizer_params import LocalizerNodeConfig

__all__ = ["calibration_summary", "load_localizer"]


def load_localizer(cfg: LocalizerNodeConfig, log: Any) -> Localizer:
    """The localizer (its mode ``cfg.mode``) after one warm-up frame; LiplocError for
    anything wrong (a missing, corrupt or mismatched file). Assembled by
    :func:`~liploc_ros.localization.factory.open_localizer`, as the CLI's."""
    import torch

    from liploc_ros.localization.factory import open_localizer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    localizer = open_localizer(
        cfg.model, cfg.map_path, mode=cfg.mode, config=cfg.localizer, sequence=cfg.sequence,
        device=cfg.device, precision=cfg.precision, backend=cfg.backend, batch_size=1,
    )  # fmt: skip
    t0 = time.perf_counter()
    localizer.warm_up()
    embedder, loaded = localizer.embedder, localizer.embedder.loaded
    log.info(
        f"model {loaded.model_config.name} ({loaded.fingerprint}) with {embedder.describe()}"
        f", map {cfg.map_path} ({len(localizer.database)} entries), {cfg.mode} mode; warm-up "
        f"frame {1e3 * (time.perf_counter() - t0):.0f} ms"
    )
    warning = localizer.estimator.calibration_warning
    if warning:
        log.warning(warning)
    else:
        log.info(f"map calibration: {calibration_summary(localizer.database)}")
    return localizer
