"""One modality's encoder: a timm backbone (``.model``) and the authors' optional ``.fc``.

The attribute names are those of the authors' modules, so that the state_dict keys match
their checkpoints (``encoder_camera.model.*``, ``encoder_camera.fc.*``).
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from liploc_ros.errors import CheckpointError, ConfigError


def create_backbone(
    name: str,
    *,
    image_size: int | None = None,
    global_pool: str | None = None,
    pretrained: bool = False,
) -> nn.Module:
    """A timm model with no classifier, built for square ``image_size`` inputs.

    Backbones with a fixed input size (ViT: the position embeddings) are created for
    ``image_size`` when it differs from their default; timm resamples pretrained position
    embeddings to fit.
    """
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown timm backbone {name!r}{hint}")
    kwargs: dict[str, Any] = {"num_classes": 0}
    if global_pool is not None:
        kwargs["global_pool"] = global_pool
    cfg = get_pretrained_cfg(name)
    if (
        image_size is not None
        and cfg is not None
        and cfg.fixed_input_size
        and tuple(cfg.input_size[-2:]) != (image_size, image_size)
    ):
        kwargs["img_size"] = image_size
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as err:
        raise ConfigError(f"cannot create timm backbone {name!r} with {kwargs}: {err}") from err
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained:
            raise ConfigError(f"cannot create timm backbone {name!r}: {err}") from err
        raise CheckpointError(
            f"cannot load the ImageNet-pretrained weights of timm backbone {name!r}: {err}. "
            "They come from the Hugging Face hub (or its local cache); without access, train "
            "with pretrained: false"
        ) from err


def backbone_feature_dim(model: nn.Module) -> int:
    """Size of the pooled features a num_classes=0 timm model returns.

    ``head_hidden_size`` where timm defines it: some models (MobileNetV3) put a hidden layer
    after ``num_features``.
    """
    size = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"cannot tell the feature size of backbone {type(model).__name__}")
    return size


class Encoder(nn.Module):
    """Backbone features, then (authors' ViT variant) a Linear to ``fc_dim``."""

    def __init__(
        self,
        backbone: str,
        *,
        fc_dim: int | None = None,
        image_size: int | None = None,
        global_pool: str | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.model = create_backbone(
            backbone, image_size=image_size, global_pool=global_pool, pretrained=pretrained
        )
        self.feature_dim = backbone_feature_dim(self.model)
        self.fc = nn.Linear(self.feature_dim, fc_dim) if fc_dim is not None else None
        self.out_dim = fc_dim if fc_dim is not None else self.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model(x)
        return self.fc(features) if self.fc is not None else features
