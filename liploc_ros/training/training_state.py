"""The resumable training state in one file, without pickle.

``<output_dir>/last.ckpt.safetensors`` holds every tensor (model, loss temperature,
optimizer moments and steps, torch and CUDA random states, NumPy's key) as safetensors, and
everything else (epoch, best validation loss, history, optimizer hyper-parameters, the
plateau scheduler, the gradient scaler, Python's and NumPy's random state scalars, the
config) as JSON in the safetensors metadata. Reading it runs no code from the file. It is
written atomically, so a crash mid-write leaves the previous state intact.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_save
from torch import nn

from liploc_ros.errors import CheckpointError
from liploc_ros.io_utils import write_bytes_atomic

FORMAT_NAME = "liploc_ros.training_state"
FORMAT_VERSION = 1


@dataclass
class TrainingState:
    """What the loop needs besides the modules to continue where it stopped."""

    #: epochs completed
    epoch: int = 0
    best_val_loss: float = float("inf")
    best_epoch: int = -1
    #: one dict per completed epoch (losses, learning rates, recalls, seconds)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the effective config of the run that wrote it (plain dict)
    config: dict[str, Any] = field(default_factory=dict)


def _capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    # NumPy's legacy global generator: this package does not use it, but libraries might
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    scalars = {
        "numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached": cached},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    return tensors, scalars


def _restore_rng(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(
        (int(k.rsplit(".", 1)[1]), v) for k, v in tensors.items() if k.startswith("rng.cuda.")
    )
    if cuda and torch.cuda.is_available():
        states = [v for _, v in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    n = scalars["numpy"]
    keys = tensors["rng.numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    p = scalars["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def _split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entries in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    groups = []
    for saved in meta["param_groups"]:
        group = dict(saved)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_training_state(
    path: str | Path,
    *,
    model: nn.Module,
    loss: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    state: TrainingState,
) -> None:
    """Write the whole training state atomically to ``path``."""
    path = Path(path)
    tensors = {
        f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
    }
    tensors.update(
        {f"loss.{k}": v.detach().to("cpu").contiguous() for k, v in loss.state_dict().items()}
    )
    optim_tensors, optim_meta = _split_optimizer(optimizer)
    tensors.update(optim_tensors)
    rng_tensors, rng_meta = _capture_rng()
    tensors.update(rng_tensors)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "epoch": state.epoch,
        "best_val_loss": state.best_val_loss,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "config": state.config,
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_meta,
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"cannot save {path}: state is not JSON: {err}") from err
    try:
        data = safetensors_save(tensors, metadata={"state": text})
        write_bytes_atomic(path, data, fsync=True)
    except (OSError, SafetensorError, ValueError) as err:
        raise CheckpointError(f"cannot write training state {path}: {err}") from err


def read_training_meta(path: str | Path) -> dict[str, Any]:
    """The JSON part of a training state (no tensors are read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("state")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable training state: {err}") from err
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a liploc training state")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: corrupt training state metadata") from err
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a liploc training state")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: training state version {meta['format_version']} is newer")
    return meta


def load_training_state(
    path: str | Path,
    *,
    model: nn.Module,
    loss: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    restore_rng: bool = True,
) -> TrainingState:
    """Load ``path`` into the given objects (built as the run that wrote it built them)."""
    path = Path(path)
    meta = read_training_meta(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read the tensors: {err}") from err

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        model.load_state_dict(part("model."), strict=True)
        loss.load_state_dict(part("loss."), strict=True)
        optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(
            f"{path}: the saved state does not fit this run's model/optimizer (was the config "
            f"changed?): {err}"
        ) from err
    if scaler is not None and scaler.is_enabled() and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    if restore_rng:
        _restore_rng(tensors, meta["rng"])
    return TrainingState(
        epoch=int(meta["epoch"]),
        best_val_loss=float(meta["best_val_loss"]),
        best_epoch=int(meta["best_epoch"]),
        history=list(meta["history"]),
        config=dict(meta["config"]),
    )
