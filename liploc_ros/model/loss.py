"""Contrastive losses over a batch of N (LiDAR, camera) embedding pairs.

Both losses take ``(lidar_emb, camera_emb)``, two N x D tensors whose row i is the i-th
pair, and compute over exactly the rows they are given. For data-parallel training, gather
the embeddings of every rank first (keeping the local shard's gradient, e.g. with
``torch.distributed.nn.functional.all_gather``) and pass the concatenated global tensors:
the value is then the single-process loss of the global batch. Gathering matters for the
authors' loss in particular, whose soft targets depend on the whole batch.

Both compute in fp32 with autocast off, so that fp16 training does not overflow the logits.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as nnf

from liploc_ros.errors import ConfigError

LossName = Literal["authors", "clip"]


def _as_fp32_pair(lidar: torch.Tensor, camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if lidar.ndim != 2 or lidar.shape != camera.shape:
        raise ValueError(
            "lidar_emb and camera_emb must both be N x D with the same shape, got "
            f"{tuple(lidar.shape)} and {tuple(camera.shape)}"
        )
    if lidar.shape[0] < 1:
        raise ValueError("a contrastive loss needs at least one pair")
    return lidar.float(), camera.float()


class AuthorsContrastiveLoss(nn.Module):
    """The authors' soft-target CLIP loss (reproduces their training).

    logits = L C^T / T; targets = row-softmax(T (C C^T + L L^T) / 2); the LiDAR loss is the
    cross-entropy of each logits row against the targets row, the camera loss the same on
    the transposes; the result is the batch mean of their average. Quirk kept for parity:
    the targets are not the identity, so two near-identical frames are not pushed apart.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, lidar_emb: torch.Tensor, camera_emb: torch.Tensor) -> torch.Tensor:
        L, C = _as_fp32_pair(lidar_emb, camera_emb)
        with torch.autocast(device_type=L.device.type, enabled=False):
            T = self.temperature
            logits = L @ C.T / T
            targets = nnf.softmax((C @ C.T + L @ L.T) / 2 * T, dim=-1)
            lidar_loss = -(targets * nnf.log_softmax(logits, dim=-1)).sum(dim=1)
            camera_loss = -(targets.T * nnf.log_softmax(logits.T, dim=-1)).sum(dim=1)
            return ((camera_loss + lidar_loss) / 2).mean()


class ClipLoss(nn.Module):
    """CLIP's symmetric cross-entropy with the identity as target (the paper's text).

    The temperature is learnt as ``logit_scale`` = log(1 / T), initialised to
    log(1 / 0.07); the scale exp(logit_scale) is clipped at ``max_scale`` (100) as in CLIP
    (the clip also stops the gradient beyond it, so the parameter cannot run away).
    """

    def __init__(
        self,
        init_temperature: float = 0.07,
        *,
        learnable: bool = True,
        max_scale: float = 100.0,
    ) -> None:
        super().__init__()
        if not init_temperature > 0:
            raise ConfigError(f"init_temperature must be positive, got {init_temperature}")
        if not max_scale > 0:
            raise ConfigError(f"max_scale must be positive, got {max_scale}")
        value = torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32)
        if learnable:
            self.logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("logit_scale", value)
        self.max_scale = float(max_scale)

    @property
    def temperature(self) -> float:
        """The temperature in effect (after the clip)."""
        return 1.0 / min(math.exp(float(self.logit_scale.detach())), self.max_scale)

    def forward(self, lidar_emb: torch.Tensor, camera_emb: torch.Tensor) -> torch.Tensor:
        L, C = _as_fp32_pair(lidar_emb, camera_emb)
        with torch.autocast(device_type=L.device.type, enabled=False):
            scale = self.logit_scale.float().exp().clamp(max=self.max_scale)
            logits = scale * (L @ C.T)
            labels = torch.arange(L.shape[0], device=L.device)
            return (nnf.cross_entropy(logits, labels) + nnf.cross_entropy(logits.T, labels)) / 2


def make_loss(
    name: LossName,
    *,
    temperature: float | None = None,
    learnable: bool = True,
) -> nn.Module:
    """``authors`` (fixed ``temperature``, default 1.0) or ``clip`` (``temperature`` is the
    initial value, default 0.07, learnt unless ``learnable`` is False).

    A learnable loss has parameters: give them to the optimizer.
    """
    if name == "authors":
        return AuthorsContrastiveLoss(1.0 if temperature is None else temperature)
    if name == "clip":
        return ClipLoss(0.07 if temperature is None else temperature, learnable=learnable)
    raise ConfigError(f"unknown loss {name!r}; use 'authors' or 'clip'")
