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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from liploc_ros.config import to_dict
from liploc_ros.datasets.base import FrameSource, IndexedSource
from liploc_ros.device import resolve_device, resolve_precision
from liploc_ros.errors import CheckpointError, ConfigError, DeviceError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.model import LipLocModel, create_model, make_loss, save_model
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.training import distributed as ddp
from liploc_ros.training.checkpoint import (
    TrainingState,
    load_training_state,
    save_training_state,
)
from liploc_ros.training.config import TrainConfig, config_to_yaml
from liploc_ros.training.data import EpochSampler, PairDataset, random_split
from liploc_ros.training.evaluate import evaluate_pictures
from liploc_ros.training.pictures import (
    LazyPictures,
    PictureSet,
    StridedSource,
    cache_many,
)
from liploc_ros.training.plots import save_training_curves
from liploc_ros.training.schedule import LrSchedule
from liploc_ros.training.sources import open_source

log = logging.getLogger(__name__)

BEST_MODEL = "best.safetensors"
LAST_STATE = "last.ckpt.safetensors"
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


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


# -- building blocks ----------------------------------------------------------------------


def training_precision(device: torch.device, precision: str) -> str:
    """``auto``: bf16 on GPUs that support it, else fp16 (with a gradient scaler); fp32 on
    the CPU, even one with bf16 units: whether bf16 autocast training keeps the demo model's
    recall is not measured yet (inference does use bf16 there). ``bf16`` on the CPU is
    autocast, warned about where the CPU has no bf16 units (emulated, slower than fp32)."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError("fp16 training needs a CUDA device; use fp32 or bf16 on the CPU")
    if precision == "bf16" and device.type == "cpu":
        resolve_precision(device, precision)  # the warning on a CPU without bf16 units
    return precision


def build_model(config: TrainConfig, pre: PreprocessConfig, *, resuming: bool) -> LipLocModel:
    """The model to train; ImageNet weights as ``model.pretrained`` says (never when
    resuming: the checkpoint has the weights)."""
    model_config = config.model.model_config()
    wanted = config.model.pretrained
    if resuming or wanted is False:
        return create_model(model_config, pre, pretrained=False)
    try:
        return create_model(model_config, pre, pretrained=True)
    except CheckpointError as err:
        if wanted is True:
            raise CheckpointError(
                f"{err} (set model.pretrained: if_available to fall back to random "
                "initialisation, or false)"
            ) from err
        log.warning("ImageNet weights unavailable, training from random initialisation: %s", err)
        return create_model(model_config, pre, pretrained=False)


def param_groups(model: LipLocModel, loss: nn.Module, config: TrainConfig) -> list[dict]:
    """The authors' AdamW groups: camera encoder, LiDAR encoder, both heads (with weight
    decay), plus the loss's learnable temperature if any."""
    o = config.optim
    groups = [
        {"name": "camera_encoder", "params": list(model.encoder_camera.parameters()),
         "lr": o.lr_camera, "weight_decay": o.weight_decay},
        {"name": "lidar_encoder", "params": list(model.encoder_lidar.parameters()),
         "lr": o.lr_lidar, "weight_decay": o.weight_decay},
        {"name": "heads", "params": [*model.projection_camera.parameters(),
                                     *model.projection_lidar.parameters()],
         "lr": o.lr_head, "weight_decay": o.weight_decay_head},
    ]  # fmt: skip
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        groups.append(
            {"name": "temperature", "params": loss_params, "lr": o.lr_head, "weight_decay": 0.0}
        )
    covered = {id(p) for g in groups for p in g["params"]}
    missing = [n for n, p in model.named_parameters() if id(p) not in covered]
    if missing:
        raise ConfigError(f"parameters outside every optimizer group: {missing[:5]}")
    return groups


def open_picture_sets(
    specs: list[str],
    pre: PreprocessConfig,
    config: TrainConfig,
    info: ddp.DistInfo,
    cache_root: Path,
    *,
    frame_step: int = 1,
) -> list[PictureSet]:
    """One picture set per spec: cached (built by the first process of each machine while the
    others wait) or rendered lazily; ``frame_step`` keeps every n-th frame of indexed
    sources."""
    sources: list[FrameSource] = []
    for spec in specs:
        source = open_source(spec, pre)
        if frame_step > 1 and isinstance(source, IndexedSource):
            # (the cache key covers the stride: it hashes the frames' stamps)
            source = StridedSource(source, frame_step)
        sources.append(source)
    use_cache = [config.data.cache or not isinstance(s, IndexedSource) for s in sources]
    to_cache = [(spec, s) for spec, s, c in zip(specs, sources, use_cache, strict=True) if c]
    written: list[PictureSet] = []
    if to_cache:
        if info.local_rank != 0:
            ddp.barrier(info)
        written = list(cache_many(
            to_cache, pre, cache_root, workers=config.data.num_workers,
            progress=config.progress and info.local_rank == 0,
        ))  # fmt: skip
        if info.local_rank == 0:
            ddp.barrier(info)
    cached = iter(written)
    return [
        next(cached) if c else LazyPictures(s, pre)
        for s, c in zip(sources, use_cache, strict=True)
    ]


def _loader(
    dataset: PairDataset,
    sampler: EpochSampler,
    batch_size: int,
    config: TrainConfig,
    device: torch.device,
    *,
    drop_last: bool,
) -> DataLoader:
    workers = config.data.num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=workers,
        persistent_workers=workers > 0 and config.data.persistent_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.train.seed),
    )


def global_batch_loss(
    loss_fn: nn.Module, lidar_emb: torch.Tensor, camera_emb: torch.Tensor, info: ddp.DistInfo
) -> torch.Tensor:
    """The contrastive loss over every process's batch (the single-process value of the
    global batch; gradient flows into this process's slice)."""
    return loss_fn(ddp.gather_with_grad(lidar_emb, info), ddp.gather_with_grad(camera_emb, info))


def train_step(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    camera: torch.Tensor,
    lidar: torch.Tensor,
    info: ddp.DistInfo,
    *,
    device: torch.device,
    precision: str,
    grad_clip: float | None = None,
) -> float:
    """One optimisation step on a (local) batch; returns the global-batch loss."""
    with torch.autocast(
        device_type=device.type, dtype=_AUTOCAST.get(precision), enabled=precision in _AUTOCAST
    ):
        camera_emb, lidar_emb = model(camera, lidar)
    loss = global_batch_loss(loss_fn, lidar_emb, camera_emb, info)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss * ddp.backward_scale(info)).backward()
    ddp.unscale_shared_grads([p for p in loss_fn.parameters() if p.requires_grad], info)
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _tensorboard(output_dir: Path, enabled: bool):
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
        c = self.config
        if not c.data.train:
            raise ConfigError("data.train is empty: name at least one training source")
        cache_root = Path(c.data.cache_dir) if c.data.cache_dir else self.out / "cache"
        self.sets = open_picture_sets(
            list(c.data.train), self.pre, c, self.info, cache_root, frame_step=c.data.frame_step
        )
        split = random_split([len(s) for s in self.sets], c.data.val_fraction, c.data.split_seed)
        self.split = split
        global_batch = c.train.batch_size * self.info.world
        if len(split.train) < global_batch:
            raise ConfigError(
                f"{len(split.train)} training pairs cannot fill one batch of {c.train.batch_size}"
                f" x {self.info.world} process(es)"
            )
        seed = c.train.seed
        self.train_set = PairDataset(
            self.sets, split.train, self.pre, augment=c.data.augment, seed=seed
        )
        self.train_sampler = EpochSampler(
            len(self.train_set), batch_size=c.train.batch_size, shuffle=True, seed=seed,
            rank=self.info.rank, world=self.info.world, drop_last=True,
            groups=split.train[:, 0], per_batch=c.data.sources_per_batch,
        )  # fmt: skip
        self.train_loader = _loader(
            self.train_set, self.train_sampler, c.train.batch_size, c, self.device, drop_last=True
        )
        self.val_loader = None
        if len(split.val) >= 2:
            self.val_set = PairDataset(self.sets, split.val, self.pre)
            sampler = EpochSampler(
                len(self.val_set), batch_size=c.train.batch_size, shuffle=False,
                rank=self.info.rank, world=self.info.world, drop_last=False,
            )  # fmt: skip
            self.val_loader = _loader(
                self.val_set, sampler, c.train.batch_size, c, self.device, drop_last=False
            )
        # (all evaluation drives in one call: one rendering pool for them all)
        specs = [spec for e in c.data.eval for spec in (e.map, e.queries) if spec is not None]
        opened = iter(open_picture_sets(specs, self.pre, c, self.info, cache_root))
        self.eval_sets: list[tuple[PictureSet, PictureSet | None]] = [
            (next(opened), next(opened) if e.queries is not None else None) for e in c.data.eval
        ]
        log.info(
            "data: %d sources, %d training and %d validation pairs, %d evaluation set(s)",
            len(self.sets), len(split.train), len(split.val), len(self.eval_sets),
        )  # fmt: skip

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
                device_type=self.device.type, dtype=_AUTOCAST.get(self.precision),
                enabled=self.precision in _AUTOCAST,
            ):  # fmt: skip
                camera_emb, lidar_emb = self.net(camera, lidar)
            loss = global_batch_loss(self.loss_fn, lidar_emb, camera_emb, self.info)
            n = len(camera) * self.info.world
            total += float(loss) * n
            weight += n
        return total / max(weight, 1)

    def _encoders(self):
        device, precision, layout = self.device, self.precision, self.layout

        def wrap(fn):
            def encode(batch: torch.Tensor) -> np.ndarray:
                with torch.inference_mode(), torch.autocast(
                    device_type=device.type, dtype=_AUTOCAST.get(precision),
                    enabled=precision in _AUTOCAST,
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
        opts = {
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
