"""The LIP-Loc dual encoder: configs, modules, losses, model files and inference."""

from liploc_ros.model.authors import load_authors_checkpoint
from liploc_ros.model.config import MODEL_PRESETS, PRESET_IMAGE_SIZES, ModelConfig, model_preset
from liploc_ros.model.inference import Embedder
from liploc_ros.model.liploc import LipLocModel, create_model
from liploc_ros.model.liploc_file import (
    LoadedModel,
    load_model,
    read_model_info,
    save_model,
    wrap_model,
)
from liploc_ros.model.loss import AuthorsContrastiveLoss, ClipLoss, make_loss
from liploc_ros.model.model_file import load_embedder, load_model_file, with_sensor
from liploc_ros.model.weights import model_fingerprint, state_dict_sha256

__all__ = [
    "MODEL_PRESETS",
    "PRESET_IMAGE_SIZES",
    "AuthorsContrastiveLoss",
    "ClipLoss",
    "Embedder",
    "LipLocModel",
    "LoadedModel",
    "ModelConfig",
    "create_model",
    "load_authors_checkpoint",
    "load_embedder",
    "load_model",
    "load_model_file",
    "make_loss",
    "model_fingerprint",
    "model_preset",
    "read_model_info",
    "save_model",
    "state_dict_sha256",
    "with_sensor",
    "wrap_model",
]
