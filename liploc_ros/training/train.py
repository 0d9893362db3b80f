"""The training loop: data, model, optimizer, epochs, validation, checkpoints, logs.

One function, :func:`train`, runs a whole :class:`TrainConfig` in this process, alone or as
one of several started by torchrun (DistributedDataParallel, the contrastive loss over the
gathered global batch: see :mod:`liploc_ros.training.distributed`). It writes under
``output_dir``:

- ``config.yaml``: the effective config;
- ``best.safetensors``: the model with the lowest validation loss (a liploc model file,
  training info in its metadata), copied to ``export`` at the end when that is set;
- ``last.ckpt.safetensors``: the full training state after the last epoch (for ``resume``);
- ``history.json``: per-epoch losses, learning rates, recalls and timings;
- ``training_curves.png``: the losses and the periodic Recall@1 (with chance) per epoch;
- ``tensorboard/``: TensorBoard logs (when tensorboard is installed);
- ``cache/``: the preprocessed 8-bit inputs (unless ``data.cache_dir`` says elsewhere).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from liploc_ros.config import to_dict
from liploc_ros.device import resolve_device
from liploc_ros.errors import CheckpointError, ConfigError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.model import make_loss, save_model
from liploc_ros.training import distributed as ddp
from liploc_ros.training.config import TrainConfig, config_to_yaml
from liploc_ros.training.evaluate import Encode, evaluate_pictures
from liploc_ros.training.plots import save_training_curves
from liploc_ros.training.run_data import build_run_data
from liploc_ros.training.schedule import LrSchedule
from liploc_ros.training.steps import (
    AUTOCAST_DTYPES,
    build_model,
    global_batch_loss,
    param_groups,
    train_step,
    training_precision,
)
from liploc_ros.training.training_state import (
    TrainingState,
    load_training_state,
    save_training_state,
)

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger(__name__)

BEST_MODEL = "best.safetensors"
LAST_STATE = "last.ckpt.safetensors"


@dataclass
class TrainResult:
    output_dir: Path
    #: the best model file (None when no epoch ran)
    best_model: Path | None
    best_val_loss: float
    best_epoch: int
    epochs_done: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _tensorboard(output_dir: Path, enabled: bool) -> SummaryWriter | None:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        log.warning("tensorboard is not installed (%s); no TensorBoard logs", err)
        return None
    return SummaryWriter(log_dir=str(output_dir / "tensorboard"))


# -- the loop -----------------------------------------------------------------------------


class _Trainer:
    def __init__(self, config: TrainConfig, resume: Path | None) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        requested = resolve_device(config.train.device)
        self.info, self.owns_group = ddp.init_distributed(requested.type)
        if requested.type == "cuda" and self.info.enabled:
            requested = torch.device("cuda", self.info.local_rank)
        if requested.type == "cuda":
            torch.cuda.set_device(requested)
        self.device = requested
        self.precision = training_precision(self.device, config.train.precision)
        self.layout = (
            torch.channels_last if config.train.channels_last else torch.contiguous_format
        )
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        self.pre = config.preprocess.preprocess_config()
        self.resume = resume

    # data
    def build_data(self) -> None:
        data = build_run_data(self.config, self.pre, self.info, self.device, self.out)
        self.sets, self.split, self.eval_sets = data.sets, data.split, data.eval_sets
        self.train_set, self.train_sampler = data.train_set, data.train_sampler
        self.train_loader, self.val_loader = data.train_loader, data.val_loader

    # model
    def build_model(self) -> None:
        c = self.config
        torch.manual_seed(c.train.seed)
        self.model = build_model(c, self.pre, resuming=self.resume is not None).to(self.device)
        if c.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = make_loss(
            c.loss.name, temperature=c.loss.temperature, learnable=c.loss.learnable_temperature
        ).to(self.device)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, self.loss_fn, c))
        self.scheduler = LrSchedule(
            self.optimizer, c.optim, epochs=c.train.epochs, steps=len(self.train_loader)
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.precision == "fp16" and self.device.type == "cuda"
        )
        self.net: nn.Module = self.model
        if self.info.enabled:
            if c.train.sync_batchnorm and self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        # Different dropout masks per process; identical initial weights came before.
        torch.manual_seed(c.train.seed * 1000 + self.info.rank)
        self.state = TrainingState(config=to_dict(c))
        if self.resume is not None:
            self.state = load_training_state(
                self.resume, model=self.model, loss=self.loss_fn, optimizer=self.optimizer,
                scheduler=self.scheduler, scaler=self.scaler,
            )  # fmt: skip
            _warn_config_changes(self.state.config, to_dict(c))
            self.state.config = to_dict(c)
            log.info("resumed from %s after epoch %d", self.resume, self.state.epoch)

    # epochs
    def run_epoch(self, epoch: int) -> float:
        c = self.config
        self.net.train()
        self.loss_fn.train()
        self.train_sampler.set_epoch(epoch)
        total, count = 0.0, 0
        bar = tqdm(
            self.train_loader, desc=f"epoch {epoch + 1}/{c.train.epochs}", unit="batch",
            disable=not (c.progress and self.info.is_main), leave=False,
        )  # fmt: skip
        for batch in bar:
            value = train_step(
                self.net, self.loss_fn, self.optimizer, self.scaler,
                batch["camera"].to(self.device, non_blocking=True, memory_format=self.layout),
                batch["lidar"].to(self.device, non_blocking=True, memory_format=self.layout),
                self.info, device=self.device, precision=self.precision,
                grad_clip=c.optim.grad_clip,
            )  # fmt: skip
            if not math.isfinite(value):
                raise ConfigError(f"epoch {epoch + 1}: the training loss became {value}")
            self.scheduler.after_step()
            total += value
            count += 1
            self.global_step += 1
            bar.set_postfix(loss=f"{value:.4f}")
            if self.writer is not None and self.global_step % 10 == 0:
                self.writer.add_scalar("train/loss_step", value, self.global_step)
        return total / max(count, 1)

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_loader is None:
            return None
        self.net.eval()
        self.loss_fn.eval()
        total, weight = 0.0, 0
        for batch in self.val_loader:
            camera = batch["camera"].to(self.device, non_blocking=True, memory_format=self.layout)
            lidar = batch["lidar"].to(self.device, non_blocking=True, memory_format=self.layout)
            with torch.autocast(
                device_type=self.device.type, dtype=AUTOCAST_DTYPES.get(self.precision),
                enabled=self.precision in AUTOCAST_DTYPES,
            ):  # fmt: skip
                camera_emb, lidar_emb = self.net(camera, lidar)
            loss = global_batch_loss(self.loss_fn, lidar_emb, camera_emb, self.info)
            n = len(camera) * self.info.world
            total += float(loss) * n
            weight += n
        return total / max(weight, 1)

    def _encoders(self) -> tuple[Encode, Encode]:
        device, precision, layout = self.device, self.precision, self.layout

        def wrap(fn: Callable[[torch.Tensor], torch.Tensor]) -> Encode:
            def encode(batch: torch.Tensor) -> np.ndarray:
                with torch.inference_mode(), torch.autocast(
                    device_type=device.type, dtype=AUTOCAST_DTYPES.get(precision),
                    enabled=precision in AUTOCAST_DTYPES,
                ):  # fmt: skip
                    return fn(batch.to(device, memory_format=layout)).float().cpu().numpy()

            return encode

        return wrap(self.model.encode_camera), wrap(self.model.encode_lidar)

    def recall(self) -> dict[str, float]:
        """Recall@1 on the validation split (per source, same-sequence protocol on its
        held-out frames) and on the evaluation sets."""
        c = self.config
        self.model.eval()
        enc_cam, enc_lid = self._encoders()
        opts: dict[str, Any] = {
            "distance": c.eval.distance, "threshold_m": c.eval.threshold_m, "ks": (1,),
            "batch_size": c.train.batch_size, "workers": 0,
        }  # fmt: skip
        out: dict[str, float] = {}
        hits, queries = 0.0, 0
        for s, pictures in enumerate(self.sets):
            frames = self.split.val[self.split.val[:, 0] == s, 1]
            if len(frames) == 0 or pictures.poses is None:
                continue
            try:
                r = evaluate_pictures(enc_cam, enc_lid, self.pre, pictures, frames=frames, **opts)
            except ConfigError as err:
                log.debug("no validation recall for %s: %s", pictures.name, err)
                continue
            hits += r.recalls[1] * len(r.query_frames)
            queries += len(r.query_frames)
        if queries:
            out["val"] = hits / queries
        for map_set, query_set in self.eval_sets:
            r = evaluate_pictures(enc_cam, enc_lid, self.pre, map_set, query_set, **opts)
            key = map_set.name if query_set is None else f"{query_set.name} in {map_set.name}"
            out[key] = r.recalls[1]
            out[f"{key} (chance)"] = r.chance
        return out

    def save_best(self, epoch: int, val_loss: float, train_loss: float, recalls: dict) -> None:
        c = self.config
        extra = {
            "name": c.name,
            "epoch": epoch + 1,
            "epochs": c.train.epochs,
            "val_loss": val_loss,
            "train_loss": train_loss,
            "recall@1": recalls,
            "loss": c.loss.name,
            "train_sources": list(c.data.train),
            "train_pairs": len(self.split.train),
            "val_pairs": len(self.split.val),
            "processes": self.info.world,
            "precision": self.precision,
            "config": to_dict(c),
        }
        save_model(self.out / BEST_MODEL, self.model, extra=extra)

    def fit(self) -> TrainResult:
        c = self.config
        start_time = time.perf_counter()
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / "config.yaml", config_to_yaml(c))
        self.build_data()
        self.build_model()
        self.writer = _tensorboard(self.out, c.tensorboard) if self.info.is_main else None
        self.global_step = self.state.epoch * len(self.train_loader)
        try:
            for epoch in range(self.state.epoch, c.train.epochs):
                t0 = time.perf_counter()
                train_loss = self.run_epoch(epoch)
                val_loss = self.validate()
                monitored = val_loss if val_loss is not None else train_loss
                self.scheduler.after_epoch(monitored)
                recalls: dict[str, float] = {}
                last = epoch + 1 == c.train.epochs
                if c.eval.every > 0 and ((epoch + 1) % c.eval.every == 0 or last):
                    if self.info.is_main:
                        recalls = self.recall()
                    ddp.barrier(self.info)
                record = {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "lr": {g.get("name", str(i)): g["lr"]
                           for i, g in enumerate(self.optimizer.param_groups)},
                    "recall@1": recalls,
                    "seconds": time.perf_counter() - t0,
                }  # fmt: skip
                temperature = getattr(self.loss_fn, "temperature", None)
                if temperature is not None:
                    record["temperature"] = float(temperature)
                self.state.history.append(record)
                improved = monitored < self.state.best_val_loss
                if improved:
                    self.state.best_val_loss, self.state.best_epoch = monitored, epoch + 1
                self.state.epoch = epoch + 1
                if self.info.is_main:
                    if improved:
                        self.save_best(epoch, monitored, train_loss, recalls)
                    save_training_state(
                        self.out / LAST_STATE, model=self.model, loss=self.loss_fn,
                        optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
                        state=self.state,
                    )  # fmt: skip
                    write_text_atomic(
                        self.out / "history.json", json.dumps(self.state.history, indent=1)
                    )
                    save_training_curves(
                        self.state.history, self.out / "training_curves.png", title=c.name
                    )
                    self._log_epoch(record, improved)
                ddp.barrier(self.info)
        finally:
            if self.writer is not None:
                self.writer.close()
        best = self.out / BEST_MODEL
        if self.info.is_main and c.export and best.is_file():
            export = Path(c.export)
            export.parent.mkdir(parents=True, exist_ok=True)
            tmp = export.with_name(f".{export.name}.tmp")
            shutil.copyfile(best, tmp)
            tmp.replace(export)
            log.info("best model copied to %s", export)
        return TrainResult(
            output_dir=self.out,
            best_model=best if best.is_file() else None,
            best_val_loss=self.state.best_val_loss,
            best_epoch=self.state.best_epoch,
            epochs_done=self.state.epoch,
            history=self.state.history,
            seconds=time.perf_counter() - start_time,
        )

    def _log_epoch(self, record: dict, improved: bool) -> None:
        val = record["val_loss"]
        recalls = ", ".join(
            f"{k} {v:.3f}" for k, v in record["recall@1"].items() if "chance" not in k
        )
        log.info(
            "epoch %d/%d: train loss %.4f, val loss %s, %.0f s%s%s",
            record["epoch"], self.config.train.epochs, record["train_loss"],
            "n/a" if val is None else f"{val:.4f}", record["seconds"],
            f", R@1: {recalls}" if recalls else "", " (best)" if improved else "",
        )  # fmt: skip
        if self.writer is None:
            return
        step = record["epoch"]
        self.writer.add_scalar("train/loss", record["train_loss"], step)
        if val is not None:
            self.writer.add_scalar("val/loss", val, step)
        for name, lr in record["lr"].items():
            self.writer.add_scalar(f"lr/{name}", lr, step)
        for name, value in record["recall@1"].items():
            self.writer.add_scalar(f"recall@1/{name}", value, step)
        if "temperature" in record:
            self.writer.add_scalar("train/temperature", record["temperature"], step)
        self.writer.flush()


def _warn_config_changes(saved: dict, current: dict, prefix: str = "") -> None:
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            _warn_config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            log.warning("resuming with %s%s changed: %r -> %r", prefix, key, a, b)


def resolve_resume(path: str | Path) -> Path:
    """A training state file, or an output folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST_STATE
    if not path.is_file():
        raise CheckpointError(f"no training state to resume from at {path}")
    return path


def train(config: TrainConfig, *, resume: str | Path | None = None) -> TrainResult:
    """Run ``config`` (alone, or as one torchrun process); ``resume`` continues from a
    training state file (or the output folder holding ``last.ckpt.safetensors``)."""
    trainer = _Trainer(config, resolve_resume(resume) if resume is not None else None)
    try:
        return trainer.fit()
    finally:
        if trainer.owns_group:
            ddp.shutdown_distributed()
