"""How much arithmetic one encoder does per frame: the machine-independent size ``auto``'s
small-encoder rule looks at (a timing would make the choice depend on the machine's load).

Counted on one forward pass at batch 1 with hooks on the layers that hold nearly all of a
vision encoder's work: every convolution (output elements x input channels per group x
kernel area) and every Linear (output elements x input features), two FLOPs per
multiply-add. Attention's own two matrix products are not counted (about a tenth of a
ViT-S/16's work at 224 px), which is close enough for a threshold.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from liploc_ros.model.backends.base import Side, example_input
from liploc_ros.model.liploc_file import LoadedModel

_COUNTED: dict[tuple[str, str, str], float] = {}


def _layer_flops(module: nn.Module, output: torch.Tensor) -> float:
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return 2.0 * output.numel() * per_output
    if isinstance(module, nn.Linear):
        return 2.0 * output.numel() * module.in_features
    return 0.0


def encoder_gflops(loaded: LoadedModel, side: Side) -> float:
    """GFLOPs of one frame through ``side``'s encoder (kept per model and input size)."""
    size = example_input(loaded, side, 1).shape[-1]
    key = (loaded.sha256 or loaded.fingerprint, side, str(size))
    if key in _COUNTED:
        return _COUNTED[key]
    model = loaded.model
    total = [0.0]

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += _layer_flops(module, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        device = next(model.parameters()).device
        x = example_input(loaded, side, 1).to(device)
        with torch.inference_mode():
            (model.encode_camera if side == "camera" else model.encode_lidar)(x)
    finally:
        for handle in handles:
            handle.remove()
    _COUNTED[key] = total[0] / 1e9
    return _COUNTED[key]
