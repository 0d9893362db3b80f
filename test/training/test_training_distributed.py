"""The gathered contrastive loss over 2 processes equals the single-process loss of the same
global batch, and so does the gradient DDP leaves in every process (gloo on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from liploc_ros.model import make_loss
from liploc_ros.training.distributed import DistInfo
from liploc_ros.training.train import train_step

GLOBAL_BATCH, FEATURES, EMBED = 8, 6, 5


class TwoTowers(nn.Module):
    """A stand-in for the dual encoder: forward(camera, lidar) -> (camera_emb, lidar_emb),
    with no batch-dependent layer, so that only the loss couples the samples."""

    def __init__(self) -> None:
        super().__init__()
        self.camera = nn.Sequential(nn.Linear(FEATURES, 7), nn.GELU(), nn.Linear(7, EMBED))
        self.lidar = nn.Sequential(nn.Linear(FEATURES, 7), nn.Tanh(), nn.Linear(7, EMBED))

    def forward(self, camera, lidar):
        return self.camera(camera), self.lidar(lidar)


def _batch():
    g = torch.Generator().manual_seed(123)
    return torch.randn(GLOBAL_BATCH, FEATURES, generator=g), torch.randn(
        GLOBAL_BATCH, FEATURES, generator=g
    )


def _step(model, loss, camera, lidar, info):
    params = [*model.parameters(), *loss.parameters()]
    optimizer = torch.optim.SGD(params, lr=1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    value = train_step(
        model, loss, optimizer, scaler, camera, lidar, info,
        device=torch.device("cpu"), precision="fp32",
    )  # fmt: skip
    grads = {f"model.{n}": p.grad.numpy().copy() for n, p in _named(model)}
    grads.update({f"loss.{n}": p.grad.numpy().copy() for n, p in loss.named_parameters()})
    return value, grads


def _named(model):
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return inner.named_parameters()


LOSSES = ("authors", "clip")


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)  # two workers on a 2-core machine: one thread each
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        camera, lidar = _batch()
        local = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        info = DistInfo(rank=rank, world=world, local_rank=rank)
        for loss_name in LOSSES:
            torch.manual_seed(0)
            model = nn.parallel.DistributedDataParallel(TwoTowers())
            loss = make_loss(loss_name, temperature=0.5)
            value, grads = _step(model, loss, camera[local], lidar[local], info)
            np.savez(f"{out}/{loss_name}{rank}.npz", loss=np.float64(value), **grads)
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_single_process_loss_and_gradient(tmp_path):
    # forkserver: the workers fork from a clean server process that imported torch once,
    # not from this one, whose autograd engine earlier tests may have started (autograd's
    # threads do not survive a fork), nor spawn each with a fresh import (slow on CI)
    mp.start_processes(
        _worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
        start_method="forkserver",
    )  # fmt: skip
    camera, lidar = _batch()
    for loss_name in LOSSES:
        torch.manual_seed(0)
        ref_value, ref_grads = _step(
            TwoTowers(), make_loss(loss_name, temperature=0.5), camera, lidar, DistInfo()
        )
        for rank in range(2):
            with np.load(tmp_path / f"{loss_name}{rank}.npz", allow_pickle=False) as got:
                assert float(got["loss"]) == pytest.approx(ref_value, rel=1e-6), loss_name
                assert set(got.files) - {"loss"} == set(ref_grads)
                for name, grad in ref_grads.items():
                    np.testing.assert_allclose(
                        got[name], grad, rtol=1e-5, atol=1e-7, err_msg=f"{loss_name}: {name}"
                    )
        # the gather is what makes this hold: the loss of a half batch is another number
        torch.manual_seed(0)
        half_value, _ = _step(TwoTowers(), make_loss(loss_name, temperature=0.5),
                              camera[:4], lidar[:4], DistInfo())  # fmt: skip
        assert half_value != pytest.approx(ref_value, rel=1e-3)
