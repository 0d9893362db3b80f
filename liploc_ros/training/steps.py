"""The building blocks of one training run: precision, the model, optimizer groups, and one
optimisation step on the global batch.

Kept apart from the loop (:mod:`liploc_ros.training.train`) so that each can be tested, and
reused by a caller with its own loop, without an epoch around it.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from liploc_ros.device import resolve_precision
from liploc_ros.errors import CheckpointError, ConfigError, DeviceError
from liploc_ros.model import LipLocModel, create_model
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.training import distributed as ddp
from liploc_ros.training.config import TrainConfig

log = logging.getLogger(__name__)

#: autocast dtypes of the mixed precisions (fp32: no autocast)
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
    groups: list[dict[str, Any]] = [
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
    dtype = AUTOCAST_DTYPES.get(precision)
    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
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
