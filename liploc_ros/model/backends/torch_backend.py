"""The PyTorch backend: the model as it is, on the CPU or a CUDA device.

Precision:

- fp32: the model as trained;
- bf16: the two backbones run with bf16 weights and inputs (a copy, made once, with
  BatchNorm folded into the convolutions first, see :mod:`.bn_fold`; the loaded model stays
  fp32), and their pooled features go on in fp32 through the authors' ``fc``,
  the projection head (residual, LayerNorm) and the L2 normalisation. The backbones hold
  all but a fraction of a percent of the FLOPs, so this costs no speed, and the last
  layers, which set the embedding's direction and its unit length, do not round to 8 bits
  of mantissa. Casting the weights instead of autocasting saves the per-call casts (issue
  14, a Xeon with AMX: ViT-S/16 batch 1 in 31 ms with bf16 weights, 43 ms under autocast);
- fp16 (CUDA only): torch.autocast, which keeps softmax and LayerNorm in fp32 by itself;
- int8: not here (OpenVINO and ONNX Runtime quantize; the error says so).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from liploc_ros.device import autocast, cpu_has_bf16, resolve_device, resolve_precision
from liploc_ros.model.backends.base import SIDES, Side, example_input
from liploc_ros.model.backends.bn_fold import fold_batchnorm
from liploc_ros.model.liploc_file import LoadedModel

_CAST_DTYPES = {"bf16": torch.bfloat16}


class TorchRunner:
    """The loaded model on ``device`` in ``precision`` (see the module's docstring)."""

    backend = "torch"
    #: appended to describe() (auto says why it kept torch)
    note = ""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        precision: str,
        sides: tuple[Side, ...] = SIDES,
    ) -> None:
        self.device = device
        self.precision = precision
        self.model = loaded.model.to(device).eval()
        self._loaded = loaded
        self._dtype = _CAST_DTYPES.get(precision)
        self._backbones: dict[str, nn.Module] = {}
        for side in sides if self._dtype is not None else ():
            self._backbone(side)

    def _backbone(self, side: Side) -> nn.Module:
        """``side``'s backbone in the cast dtype, BatchNorm folded (made on first use)."""
        if side not in self._backbones:
            assert self._dtype is not None
            example = example_input(self._loaded, side, batch=1).to(self.device)
            backbone = fold_batchnorm(self.model.backbone(side), example)
            self._backbones[side] = backbone.to(self.device, self._dtype).eval()
        return self._backbones[side]

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        x = batch.to(self.device, torch.float32)
        backbone = self._backbone(side) if self._dtype is not None else None
        with torch.inference_mode():
            if backbone is not None:
                features = backbone(x.to(self._dtype)).float()
                emb = self.model.embed_features(side, features)
            else:
                encode = self.model.encode_camera if side == "camera" else self.model.encode_lidar
                with autocast(self.device, self.precision):
                    emb = encode(x)
            return emb.float().cpu().numpy()

    def describe(self) -> str:
        return f"torch {torch.__version__} {self.precision} on {self.device}{self.note}"


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """The precisions torch runs natively on ``device``, fastest first."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return ("fp16", *(("bf16",) if bf16 else ()), "fp32")
    return ("bf16", "fp32") if cpu_has_bf16() else ("fp32",)


def create(
    loaded: LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: object = None,
    sides: tuple[Side, ...] = SIDES,
    calibration: object = None,
) -> TorchRunner:
    """The PyTorch runner; nothing is converted or calibrated, so ``cache_dir`` and
    ``calibration`` are unused."""
    del cache_dir, calibration
    target = resolve_device(device)
    return TorchRunner(loaded, target, resolve_precision(target, precision), sides)
