"""Several processes (GPUs, machines) through torchrun, and the gathered contrastive batch.

A contrastive loss compares every camera embedding of the batch with every LiDAR embedding,
so its negatives are the batch. Under DistributedDataParallel each process only holds its
local batch; :func:`gather_with_grad` concatenates the embeddings of every process (rank
order), with the gradient flowing into the local slice only. Every process then computes the
same loss on the same global N x N matrix; each one's backward pass yields the part of the
single-process gradient that flows through its own slice, and DDP *averages* those parts
over the W processes. Multiplying the loss by W before backward (:func:`backward_scale`)
turns that average into the sum, i.e. into exactly the gradient one process would compute
on the whole global batch. Parameters outside DDP that every process uses on the whole
matrix (CLIP's learnable temperature) get W times their gradient that way and are divided
back by :func:`unscale_shared_grads`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from liploc_ros.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """What torchrun put in the environment (RANK, WORLD_SIZE, LOCAL_RANK); one process
    when they are absent."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ConfigError(f"invalid torchrun environment (RANK/WORLD_SIZE): {err}") from err
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"invalid torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank=rank, world=world, local_rank=local)


def init_distributed(device_type: str) -> tuple[DistInfo, bool]:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on the CPU). Returns
    this process's place and whether this call created the group (a group that already
    exists, e.g. made by a test, is used as it is)."""
    info = env_dist_info()
    if dist.is_available() and dist.is_initialized():
        existing = DistInfo(
            rank=dist.get_rank(), world=dist.get_world_size(), local_rank=info.local_rank
        )
        return existing, False
    if not info.enabled:
        return info, False
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    log.info("process group: rank %d of %d (%s)", info.rank, info.world, backend)
    return info, True


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def gather_with_grad(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The rank-ordered concatenation of ``tensor`` over all processes; the local slice is
    ``tensor`` itself (gradient flows), the others are received copies (no gradient).
    Every process must pass the same shape."""
    if not info.enabled:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(info.world)]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[info.rank] = tensor
    return torch.cat(parts, dim=0)


def backward_scale(info: DistInfo) -> float:
    """Factor on the gathered loss that makes DDP's gradient average a sum (module doc)."""
    return float(info.world)


def unscale_shared_grads(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Undo :func:`backward_scale` on parameters that live outside DDP (identical on every
    process because each computes them from the same global matrix)."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is not None:
            p.grad.div_(info.world)
