"""Attention fusion for ViT encoders in ONNX Runtime: tried on every conversion, checked,
and said (``describe()``, the cache folder's ``fusion.json``).

ONNX Runtime's transformer optimizer (``onnxruntime.transformers.optimizer``, model type
``vit``) rewrites attention blocks into its fused Attention / MultiHeadAttention kernels
where it recognises their pattern. timm's ViT computes q, k and v with one packed Linear
and splits the result (reshape, permute, unbind), a pattern it does not match: on the
exported liploc-vit-s16 with onnxruntime 1.32 it fused 0 of 12 attention blocks (the
dynamo and the TorchScript exporter alike) while rewriting LayerNorms and GELUs
(SkipLayerNormalization x 24, BiasGelu x 12), and that graph ran no faster than ONNX
Runtime's own ``ORT_ENABLE_ALL`` optimisation of the plain one. So the optimizer's graph is
used only where it fused attention, which a future exporter or optimizer may well do.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from liploc_ros.model.backends.base import Side, quiet_converter
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

FUSION_FILE = "fusion.json"
_ATTENTION_OPS = ("Attention", "MultiHeadAttention")
_CHATTY = ("fusion", "onnx_model", "optimizer", "onnxruntime.transformers", "shape_infer")


def _quiet() -> contextlib.AbstractContextManager[None]:
    """The optimizer's warnings, prints and per-fusion log lines hidden (its loggers are
    named after its modules: fusion_*, onnx_model*, ...)."""
    names = [n for n in logging.root.manager.loggerDict if n.startswith(_CHATTY)]
    return quiet_converter([logging.getLogger(n) for n in names], logging.ERROR)


def vit_shape(loaded: LoadedModel, side: Side) -> tuple[int, int] | None:
    """(heads, width) of ``side``'s ViT backbone, None for other backbones."""
    backbone = loaded.model.backbone(side)
    blocks = getattr(backbone, "blocks", None)
    width = getattr(backbone, "embed_dim", None)
    try:
        heads = blocks[0].attn.num_heads  # type: ignore[index]
    except (TypeError, IndexError, AttributeError):
        return None
    if not isinstance(heads, int) or not isinstance(width, int):
        return None
    return heads, width


def fuse_attention(loaded: LoadedModel, side: Side, onnx_path: Path, out_path: Path) -> dict:
    """Try the optimizer on ``onnx_path``; write its graph to ``out_path`` only if it fused
    attention. Returns what happened (for fusion.json and describe())."""
    shape = vit_shape(loaded, side)
    if shape is None:
        return {"attention": "not a transformer backbone", "fused_blocks": 0, "used": False}
    heads, width = shape
    blocks = len(loaded.model.backbone(side).blocks)  # type: ignore[arg-type]
    try:
        from onnxruntime.transformers import optimizer

        with _quiet():
            optimized = optimizer.optimize_model(
                str(onnx_path), model_type="vit", num_heads=heads, hidden_size=width, opt_level=0
            )
        stats: dict[str, Any] = dict(optimized.get_fused_operator_statistics())
    except Exception as err:  # the optimizer raises many kinds; it is only an attempt
        log.debug("the transformer optimizer failed on %s: %s", onnx_path, err)
        return {"attention": f"optimizer failed: {err}", "fused_blocks": 0, "used": False}
    fused = int(sum(stats.get(op, 0) for op in _ATTENTION_OPS))
    used = fused > 0
    if used:
        optimized.save_model_to_file(str(out_path))
    other = {k: int(v) for k, v in stats.items() if v and k not in _ATTENTION_OPS}
    return {
        "attention": f"fused {fused} of {blocks} blocks" if used else f"not fused (0 of {blocks})",
        "fused_blocks": fused,
        "blocks": blocks,
        "other_fusions": other,
        "used": used,
    }


def fusion_line(info: dict[str, Any]) -> str:
    """A few words for describe(): ``attention fused 12/12`` or ``attention not fused``."""
    if "blocks" not in info:
        return ""
    if info.get("used"):
        return f", attention fused {info['fused_blocks']}/{info['blocks']}"
    return f", attention not fused (0/{info['blocks']})"
