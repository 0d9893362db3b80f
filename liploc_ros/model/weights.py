"""A model's identity (its fingerprint) and strict loading with readable errors.

The fingerprint is a SHA-256 over the state_dict in sorted key order (name, dtype, shape and
raw bytes of every tensor), so it depends only on the weights, not on the file they came
in: an authors' .pth and its converted .safetensors have the same one. Its first 16 hex
digits identify the model; a map stores them and the localizer checks them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from liploc_ros.errors import CheckpointError

SHORT_FINGERPRINT_LEN = 16
_DOMAIN = b"liploc_ros.state_dict.v1\0"


def _state(obj: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return obj.state_dict() if isinstance(obj, nn.Module) else obj


def state_dict_sha256(obj: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """Full SHA-256 (64 hex digits) of a model's or a state_dict's weights."""
    state = _state(obj)
    digest = hashlib.sha256(_DOMAIN)
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        head = json.dumps(
            [name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)]
        ).encode()
        raw = tensor.reshape(-1).view(torch.uint8).numpy()
        digest.update(len(head).to_bytes(8, "little"))
        digest.update(head)
        digest.update(raw.size.to_bytes(8, "little"))
        digest.update(raw.data)
    return digest.hexdigest()


def model_fingerprint(obj: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """The 16-hex-digit identifier of a model's weights (the SHA-256's prefix)."""
    return state_dict_sha256(obj)[:SHORT_FINGERPRINT_LEN]


def count_parameters(shapes: Mapping[str, Iterable[int]]) -> int:
    """Elements of the stored tensors that are parameters (BatchNorm statistics excluded)."""
    skip = ("running_mean", "running_var", "num_batches_tracked")
    total = 0
    for name, shape in shapes.items():
        if name.rsplit(".", 1)[-1] in skip:
            continue
        n = 1
        for s in shape:
            n *= int(s)
        total += n
    return total


def _abbrev(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def load_state_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str = "the model"
) -> None:
    """Load ``state`` into ``model``; any missing, unexpected or misshapen tensor is an error
    naming ``source`` and listing (abbreviated) the offending keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)} expected"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_abbrev(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_abbrev(unexpected)}")
    if misshapen:
        problems.append(f"{len(misshapen)} shape mismatch(es): {_abbrev(misshapen, 4)}")
    if problems:
        raise CheckpointError(f"{source}: the weights do not fit {what}: " + "; ".join(problems))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: cannot load the weights into {what}: {err}") from err
