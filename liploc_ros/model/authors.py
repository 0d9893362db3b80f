"""Load the LIP-Loc authors' published PyTorch checkpoints (.pth state_dicts).

Only ``torch.load(..., weights_only=True)`` is used: a checkpoint that needs more than
tensors and plain containers is refused, because unpickling arbitrary objects can run code.
The architecture is read off the keys and shapes (which backbone, the extra Linear, the
embedding size, a ViT's input size); whether the embeddings were L2-normalised is not in
the weights, so the caller says so.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from liploc_ros.device import resolve_device
from liploc_ros.errors import CheckpointError
from liploc_ros.model.config import MODEL_PRESETS, ModelConfig
from liploc_ros.model.file_kind import model_file_kind
from liploc_ros.model.liploc import create_empty_model
from liploc_ros.model.liploc_file import LoadedModel
from liploc_ros.model.weights import SHORT_FINGERPRINT_LEN, load_state_strict, state_dict_sha256
from liploc_ros.preprocess.config import PreprocessConfig

_SIDES = ("camera", "lidar")
_NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_PREFIXES = ("module.", "_orig_mod.")

#: (embed dim, patch size) of a 12-block ViT -> timm name
_VIT_NAMES = {
    (192, 16): "vit_tiny_patch16_224",
    (384, 16): "vit_small_patch16_224",
    (768, 16): "vit_base_patch16_224",
    (384, 32): "vit_small_patch32_224",
    (768, 32): "vit_base_patch32_224",
}
#: (bottleneck blocks?, blocks per stage) -> timm name
_RESNET_NAMES: dict[tuple[bool, tuple[int, ...]], str] = {
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
    (True, (3, 8, 36, 3)): "resnet152",
}


def read_authors_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in an authors' checkpoint, unwrapped (nesting, ``module.`` prefix)."""
    path = Path(path)
    if model_file_kind(path) == "safetensors":
        raise CheckpointError(
            f"{path} is a safetensors file, not a PyTorch .pth; load it with load_model"
        )
    with path.open("rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    if is_zip and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is truncated or damaged: the zip archive torch.save writes is incomplete"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # damaged bytes can make the unpickler fail in any way
        # weights_only refuses any global but tensors and plain containers, naming it.
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found or "Unsupported global" in str(err):
            what = found.group(1) if found else "a Python object"
            raise CheckpointError(
                f"{path} is refused: it holds {what}, not only tensors, and unpickling such "
                "objects could run arbitrary code (torch.load weights_only=True). Re-save it "
                "as a plain state_dict where you trust it: "
                "torch.save(model.state_dict(), path)"
            ) from err
        raise CheckpointError(
            f"{path} is truncated, corrupt or not a PyTorch checkpoint: {_short(err)}"
        ) from err
    return _unwrap(obj, path)


def _short(err: BaseException) -> str:
    """The informative line of torch.load's long error messages."""
    text = str(err)
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    line = found.group(1) if found else (text.strip().splitlines() or [type(err).__name__])[0]
    return line.strip()[:200] or type(err).__name__


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        nested = next((obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = nested
    if not isinstance(obj, Mapping) or not obj:
        keys = (
            f" with keys {', '.join(map(str, list(obj)[:6]))}" if isinstance(obj, Mapping) else ""
        )
        raise CheckpointError(
            f"{path} does not hold a state_dict (found {type(obj).__name__}{keys})"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: the state_dict holds non-tensor entries: {', '.join(bad[:6])}"
        )
    state = {str(k): v for k, v in obj.items()}
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _block_count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _infer_side(
    state: Mapping[str, torch.Tensor], side: str, source: str
) -> tuple[str, int, str | None, int | None]:
    """(timm backbone, feature dim, global_pool, ViT input size or None) of one encoder."""
    p = f"encoder_{side}.model."
    if f"{p}patch_embed.proj.weight" in state:
        proj = state[f"{p}patch_embed.proj.weight"]
        dim, patch = int(proj.shape[0]), int(proj.shape[-1])
        depth = _block_count(state, f"{p}blocks.")
        name = _VIT_NAMES.get((dim, patch)) if depth == 12 else None
        if name is None:
            raise CheckpointError(
                f"{source}: encoder_{side} is a ViT this loader does not know "
                f"(width {dim}, patch {patch}, {depth} blocks)"
            )
        image_size = None
        pos = state.get(f"{p}pos_embed")
        if pos is not None and pos.ndim == 3:
            grid = math.isqrt(int(pos.shape[1]) - 1)
            if grid * grid == int(pos.shape[1]) - 1:
                image_size = grid * patch
        pool = "avg" if f"{p}fc_norm.weight" in state else None
        return name, dim, pool, image_size
    if f"{p}conv1.weight" in state and any(k.startswith(f"{p}layer4.") for k in state):
        bottleneck = f"{p}layer1.0.conv3.weight" in state
        blocks = tuple(_block_count(state, f"{p}layer{i}.") for i in range(1, 5))
        name = _RESNET_NAMES.get((bottleneck, blocks))
        if name is None:
            kind = "bottleneck" if bottleneck else "basic"
            raise CheckpointError(
                f"{source}: encoder_{side} is a ResNet this loader does not know "
                f"({kind} blocks {blocks})"
            )
        return name, 2048 if bottleneck else 512, "avg", None
    sample = ", ".join(k for k in list(state)[:4])
    raise CheckpointError(
        f"{source}: cannot tell the backbone of encoder_{side}: no ViT "
        f"({p}patch_embed.proj.weight) or ResNet ({p}conv1.weight, {p}layer4.*) keys; "
        f"keys start with: {sample}"
    )


def infer_authors_config(
    state: Mapping[str, torch.Tensor], *, normalize: bool = False, source: str = "checkpoint"
) -> tuple[ModelConfig, dict[str, int | None]]:
    """The :class:`ModelConfig` a state_dict was made with, and the ViT input sizes it
    implies (``{"camera": 224, "lidar": 224}``; None for CNNs, which take any size)."""
    backbones: dict[str, str] = {}
    fc_dims: dict[str, int | None] = {}
    sizes: dict[str, int | None] = {}
    pools: set[str | None] = set()
    embed_dims: set[int] = set()
    for side in _SIDES:
        name, feat, pool, size = _infer_side(state, side, source)
        backbones[side], sizes[side] = name, size
        pools.add(pool)
        fc = state.get(f"encoder_{side}.fc.weight")
        head = state.get(f"projection_{side}.projection.weight")
        if fc is not None and fc.ndim == 2:
            fc_dims[side] = int(fc.shape[0])
        elif head is not None and head.ndim == 2 and int(head.shape[1]) != feat:
            fc_dims[side] = int(head.shape[1])  # the fc keys are missing: strict load says so
        else:
            fc_dims[side] = None
        if head is not None and head.ndim == 2:
            embed_dims.add(int(head.shape[0]))
    if len(pools) > 1:
        raise CheckpointError(f"{source}: the two encoders pool their features differently")
    if len(embed_dims) > 1:
        raise CheckpointError(f"{source}: the two projection heads differ in output size")
    config = ModelConfig(
        name="custom",
        camera_backbone=backbones["camera"],
        lidar_backbone=backbones["lidar"],
        camera_fc_dim=fc_dims["camera"],
        lidar_fc_dim=fc_dims["lidar"],
        global_pool=pools.pop(),
        embed_dim=embed_dims.pop() if embed_dims else 256,
        normalize=normalize,
        pretrained=False,
    )
    for preset_name, preset in MODEL_PRESETS.items():
        if config == _renamed(preset, "custom", normalize):
            config = _renamed(preset, preset_name, normalize)
            break
    return config, sizes


def _renamed(config: ModelConfig, name: str, normalize: bool) -> ModelConfig:
    return replace(config, name=name, normalize=normalize, pretrained=False)


def load_authors_checkpoint(
    path: str | Path,
    *,
    normalize: bool = False,
    preprocess: PreprocessConfig | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Build the model an authors' checkpoint describes and load it strictly.

    ``preprocess`` defaults to the authors' (HDL-64E, 224 px); the input sizes of a ViT are
    taken from its position embeddings.
    """
    path = Path(path)
    state = read_authors_state_dict(path)
    config, sizes = infer_authors_config(state, normalize=normalize, source=str(path))
    pre = preprocess if preprocess is not None else PreprocessConfig()
    if sizes["camera"] is not None and sizes["camera"] != pre.camera.image_size:
        pre = replace(pre, camera=replace(pre.camera, image_size=sizes["camera"]))
    if sizes["lidar"] is not None and sizes["lidar"] != pre.lidar_image_size:
        pre = replace(pre, lidar_image_size=sizes["lidar"])
    target = resolve_device(device)
    model = create_empty_model(config, pre)
    load_state_strict(model, state, str(path), f"the inferred {config.name} model")
    model.to(target).eval()
    sha256 = state_dict_sha256(model)
    return LoadedModel(
        model=model,
        model_config=config,
        preprocess=pre,
        fingerprint=sha256[:SHORT_FINGERPRINT_LEN],
        sha256=sha256,
        metadata={"source": "authors", "variant": config.name, "checkpoint": str(path)},
        path=path,
    )
