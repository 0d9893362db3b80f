"""What a LIP-Loc dual encoder is made of: backbones, extra Linear, embedding size.

The image sizes are not here: they belong to :class:`~liploc_ros.preprocess.PreprocessConfig`
(the model factory takes both), so that a model file records one source of truth for how
its inputs were prepared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from liploc_ros.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """A dual encoder; the defaults are the authors' ViT-S/16 variant."""

    #: a label for humans (the preset this config came from, or "custom")
    name: str = "liploc-vit-s16"
    #: timm model names of the two backbones (created with num_classes=0)
    camera_backbone: str = "vit_small_patch16_224"
    lidar_backbone: str = "vit_small_patch16_224"
    #: output size of the authors' extra Linear after each backbone (`encoder_*.fc`);
    #: None: no such layer, the projection head takes the backbone's features directly
    camera_fc_dim: int | None = 2048
    lidar_fc_dim: int | None = 2048
    #: timm global_pool for both backbones; None keeps the backbone's own default (token
    #: pooling for ViT); the authors' ResNet variant uses "avg"
    global_pool: str | None = None
    #: size of the shared embedding space
    embed_dim: int = 256
    #: dropout in the projection heads
    dropout: float = 0.1
    #: L2-normalise both embeddings (the authors' "Norm" variant); retrieval is by dot product
    normalize: bool = False
    #: start training from timm's ImageNet weights (needs the Hugging Face hub or its local
    #: cache); never used when a trained model file is loaded
    pretrained: bool = False

    def __post_init__(self) -> None:
        for field in ("camera_backbone", "lidar_backbone"):
            if not getattr(self, field).strip():
                raise ConfigError(f"{field} must name a timm model")
        for field in ("camera_fc_dim", "lidar_fc_dim"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise ConfigError(f"{field} must be positive or null, got {value}")
        if self.embed_dim < 1:
            raise ConfigError(f"embed_dim must be positive, got {self.embed_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


#: Named presets. The first two are the authors' architectures (their checkpoints load into
#: them); the small ones are meant for training on a CPU at a small input size.
MODEL_PRESETS: dict[str, ModelConfig] = {
    "liploc-vit-s16": ModelConfig(),
    "liploc-resnet50": ModelConfig(
        name="liploc-resnet50",
        camera_backbone="resnet50",
        lidar_backbone="resnet50",
        camera_fc_dim=None,
        lidar_fc_dim=None,
        global_pool="avg",
    ),
    # ResNet-18 at 64-96 px trains from scratch on two CPU cores in minutes; convolutions
    # learn from a few thousand pairs where a ViT from scratch needs far more data.
    "liploc-tiny": ModelConfig(
        name="liploc-tiny",
        camera_backbone="resnet18",
        lidar_backbone="resnet18",
        camera_fc_dim=None,
        lidar_fc_dim=None,
        global_pool="avg",
    ),
    "liploc-vit-tiny": ModelConfig(
        name="liploc-vit-tiny",
        camera_backbone="vit_tiny_patch16_224",
        lidar_backbone="vit_tiny_patch16_224",
        camera_fc_dim=None,
        lidar_fc_dim=None,
    ),
}

#: The input side (pixels) each preset is meant for; PreprocessConfig holds the real value.
PRESET_IMAGE_SIZES: dict[str, int] = {
    "liploc-vit-s16": 224,
    "liploc-resnet50": 224,
    "liploc-tiny": 96,
    "liploc-vit-tiny": 64,
}


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset by name, or any timm backbone name used for both encoders (no extra Linear).

    ``overrides`` replace fields, e.g. ``model_preset("liploc-vit-s16", normalize=True)`` for
    the authors' "Norm" variant. Whether a timm name exists is checked when the model is
    created, not here, so that this module stays free of timm.
    """
    key = name.strip()
    if key.lower() in MODEL_PRESETS:
        base = MODEL_PRESETS[key.lower()]
    elif key.lower().startswith("liploc-"):
        known = ", ".join(sorted(MODEL_PRESETS))
        raise ConfigError(f"unknown model preset {name!r}; known: {known}, or a timm model name")
    else:
        base = ModelConfig(
            name=key,
            camera_backbone=key,
            lidar_backbone=key,
            camera_fc_dim=None,
            lidar_fc_dim=None,
        )
    if not overrides:
        return base
    try:
        return dataclasses.replace(base, **overrides)
    except TypeError as err:
        raise ConfigError(f"bad override for model preset {name!r}: {err}") from err
