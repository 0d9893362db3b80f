"""The LIP-Loc dual encoder: camera and LiDAR images into one embedding space."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from liploc_ros.model.config import ModelConfig
from liploc_ros.model.encoders import Encoder
from liploc_ros.model.heads import ProjectionHead
from liploc_ros.preprocess.config import PreprocessConfig


class LipLocModel(nn.Module):
    """Two encoders and two projection heads, named as in the authors' checkpoints.

    The model keeps the :class:`ModelConfig` and :class:`PreprocessConfig` it was built
    from, so that whoever saves it saves how its inputs must be prepared.
    """

    def __init__(
        self,
        config: ModelConfig,
        preprocess: PreprocessConfig | None = None,
        *,
        pretrained: bool | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.preprocess = preprocess if preprocess is not None else PreprocessConfig()
        use_pretrained = config.pretrained if pretrained is None else pretrained
        self.encoder_camera = Encoder(
            config.camera_backbone,
            fc_dim=config.camera_fc_dim,
            image_size=self.preprocess.camera.image_size,
            global_pool=config.global_pool,
            pretrained=use_pretrained,
        )
        self.encoder_lidar = Encoder(
            config.lidar_backbone,
            fc_dim=config.lidar_fc_dim,
            image_size=self.preprocess.lidar_image_size,
            global_pool=config.global_pool,
            pretrained=use_pretrained,
        )
        self.projection_camera = ProjectionHead(
            self.encoder_camera.out_dim, config.embed_dim, config.dropout
        )
        self.projection_lidar = ProjectionHead(
            self.encoder_lidar.out_dim, config.embed_dim, config.dropout
        )

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def _finish(self, emb: torch.Tensor, normalize: bool | None) -> torch.Tensor:
        if self.config.normalize if normalize is None else normalize:
            return nnf.normalize(emb, dim=-1)
        return emb

    def encode_camera(self, x: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """(B, 3, S, S) preprocessed camera images -> (B, embed_dim); None: the config's norm."""
        return self._finish(self.projection_camera(self.encoder_camera(x)), normalize)

    def encode_lidar(self, x: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """(B, 3, S, S) preprocessed range images -> (B, embed_dim); None: the config's norm."""
        return self._finish(self.projection_lidar(self.encoder_lidar(x)), normalize)

    def backbone(self, side: str) -> nn.Module:
        """The timm backbone of ``side`` ("camera" or "lidar"): where nearly all FLOPs are."""
        return self._encoder(side).model

    def embed_features(
        self, side: str, features: torch.Tensor, normalize: bool | None = None
    ) -> torch.Tensor:
        """Pooled backbone features -> embeddings: the authors' ``fc``, the projection head
        and the L2 normalisation; ``encode_<side>(x)`` is this of ``backbone(side)(x)``.

        Kept apart so that a reduced-precision backbone can feed an fp32 head."""
        encoder = self._encoder(side)
        if encoder.fc is not None:
            features = encoder.fc(features)
        head = self.projection_camera if side == "camera" else self.projection_lidar
        return self._finish(head(features), normalize)

    def _encoder(self, side: str) -> Encoder:
        if side not in ("camera", "lidar"):
            raise ValueError(f"side must be 'camera' or 'lidar', not {side!r}")
        return self.encoder_camera if side == "camera" else self.encoder_lidar

    def forward(
        self, camera: torch.Tensor, lidar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both embeddings of a batch of pairs: (camera_emb, lidar_emb)."""
        return self.encode_camera(camera), self.encode_lidar(lidar)


def create_model(
    config: ModelConfig,
    preprocess: PreprocessConfig | None = None,
    *,
    pretrained: bool | None = None,
) -> LipLocModel:
    """Build a model for ``preprocess``'s input sizes (default: the authors' 224 px).

    ``pretrained`` overrides ``config.pretrained``; loaders pass False so that loading a
    trained model never reaches for ImageNet weights.
    """
    return LipLocModel(config, preprocess, pretrained=pretrained)


def create_empty_model(
    config: ModelConfig, preprocess: PreprocessConfig | None = None
) -> LipLocModel:
    """A model whose weights are allocated but not initialised, to load a state_dict into.

    Random initialisation costs a ViT-S pair about a second on a small CPU, and a loader
    overwrites every tensor anyway. Models holding buffers that no state_dict restores
    (non-persistent ones) are initialised normally instead.
    """
    with torch.device("meta"):
        model = LipLocModel(config, preprocess, pretrained=False)
    persistent = model.state_dict().keys()
    if any(name not in persistent for name, _ in model.named_buffers()):
        return LipLocModel(config, preprocess, pretrained=False)
    return model.to_empty(device="cpu")
