"""The typed configuration of a training run (``liploc train --config FILE``).

Defaults reproduce the authors' recipe (ViT-S/16 at 224 px, AdamW with per-module learning
rates, ReduceLROnPlateau on the validation loss, batch 32, their soft-target loss, an 80/20
random split with seed 42, coarse dropout). A YAML file only states what differs; unknown
keys are errors (:mod:`liploc_ros.config`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from liploc_ros.config import from_dict, load_yaml, to_dict
from liploc_ros.device import Precision
from liploc_ros.errors import ConfigError
from liploc_ros.model.config import ModelConfig, model_preset
from liploc_ros.preprocess.config import (
    CameraConfig,
    EmptyMode,
    PreprocessConfig,
    sensor_preset,
)

DistanceName = Literal["ground", "authors"]


@dataclass(frozen=True)
class ModelSection:
    """Which dual encoder to train."""

    #: a preset of liploc_ros.model (liploc-vit-s16, liploc-resnet50, liploc-tiny,
    #: liploc-vit-tiny) or any timm model name (used for both encoders, no extra Linear)
    preset: str = "liploc-vit-s16"
    #: override the preset's backbones (timm names), e.g. a smaller LiDAR encoder
    camera_backbone: str | None = None
    lidar_backbone: str | None = None
    #: override the embedding size, the heads' dropout, L2 normalisation of the embeddings
    embed_dim: int | None = None
    dropout: float | None = None
    normalize: bool | None = None
    #: start from timm's ImageNet weights: true (fail if they cannot be had), false (random
    #: initialisation) or "if_available" (try, and fall back to random with a warning)
    pretrained: bool | Literal["if_available"] = True

    def model_config(self) -> ModelConfig:
        overrides: dict[str, Any] = {
            k: v
            for k in ("camera_backbone", "lidar_backbone", "embed_dim", "dropout", "normalize")
            if (v := getattr(self, k)) is not None
        }
        overrides["pretrained"] = self.pretrained is True
        return model_preset(self.preset, **overrides)


@dataclass(frozen=True)
class PreprocessSection:
    """How frames become encoder inputs (saved in the model file)."""

    #: LiDAR sensor preset of liploc_ros.preprocess (hdl64e: KITTI, KITTI-360, synthetic)
    sensor: str = "hdl64e"
    #: drop points farther than this before projecting (authors' KITTI-360 runs: 50 m)
    distance_threshold: float | None = None
    #: empty range pixels: "authors" (251, their uint8 wrap-around) or "clean" (0)
    empty_mode: EmptyMode = EmptyMode.AUTHORS
    #: side of the square camera input
    image_size: int = 224
    #: side of the square range-image input; null: the same as image_size
    lidar_image_size: int | None = None

    def preprocess_config(self) -> PreprocessConfig:
        lidar = sensor_preset(
            self.sensor, distance_threshold=self.distance_threshold, empty_mode=self.empty_mode
        )
        return PreprocessConfig(
            lidar=lidar,
            camera=CameraConfig(image_size=self.image_size),
            lidar_image_size=self.lidar_image_size or self.image_size,
        )


@dataclass(frozen=True)
class AugmentSection:
    """Training-only coarse dropout, after the resize, on each modality independently."""

    #: probability that a picture gets holes at all
    p: float = 0.9
    #: number of holes, drawn uniformly in [min_holes, max_holes]
    min_holes: int = 1
    max_holes: int = 5
    #: hole side range in pixels at reference_size; scaled by (input size / reference_size)
    min_size: int = 50
    max_size: int = 100
    reference_size: int = 224
    #: 8-bit value the holes are filled with (before normalisation)
    fill: int = 0
    #: camera only, not in the authors' recipe (0: off): scale the picture by a brightness
    #: factor in [1 - j, 1 + j] and each colour channel by a gain in [1 - j/2, 1 + j/2], so
    #: that a drive under other light still matches (drawn before the holes)
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"augment.p must be within [0, 1], got {self.p}")
        if not 0 <= self.min_holes <= self.max_holes:
            raise ConfigError("augment: need 0 <= min_holes <= max_holes")
        if not 1 <= self.min_size <= self.max_size:
            raise ConfigError("augment: need 1 <= min_size <= max_size")
        if self.reference_size < 1:
            raise ConfigError("augment.reference_size must be positive")
        if not 0 <= self.fill <= 255:
            raise ConfigError(f"augment.fill must be an 8-bit value, got {self.fill}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ConfigError(
                f"augment.color_jitter must be within [0, 1), got {self.color_jitter}"
            )


@dataclass(frozen=True)
class EvalSourceSection:
    """One Recall@K evaluation: ``map`` alone is the paper's protocol (database and queries
    from the same sequence); with ``queries``, the map is one drive and the queries another."""

    map: str
    queries: str | None = None


@dataclass(frozen=True)
class CrossTraversalSection:
    """Pairs across traversals: the camera of one drive with the LiDAR scan of another drive
    of the same place at the nearest position, its range-image crop turned to the camera's
    heading, so that a drive in the other lane or the other direction still matches a map
    built from one drive (see :mod:`liploc_ros.training.cross_pairs`)."""

    #: fraction of the training items replaced, each epoch, by a cross pair (among the
    #: items that have one); 0: off, same-instant pairs only (the authors)
    share: float = 0.0
    #: the partner scan is the nearest frame of the other drive within this ground-plane
    #: distance (metres) of the camera frame; none farther
    radius_m: float = 3.0
    #: crop headings (degrees, counter-clockwise from the LiDAR's x axis, in (-180, 180])
    #: of the LiDAR pictures rendered and cached per training frame; 0 (the forward crop of
    #: same-instant pairs) must be among them, e.g. [0, 180] for drives in both directions
    headings: tuple[float, ...] = (0.0,)
    #: a cross pair takes the cached heading nearest to the one it needs (the camera's yaw
    #: minus the scan's); none is formed when that is farther than this (degrees)
    heading_tolerance_deg: float = 30.0
    #: which training sources are drives of one place, with poses in one map frame: each
    #: group a list of data.train specs. Synthetic specs of the same seed
    #: (synthetic:SEED:TRAVERSAL:FRAMES) are grouped without being listed
    groups: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ConfigError(f"cross_traversal.share must be within [0, 1], got {self.share}")
        if not (math.isfinite(self.radius_m) and self.radius_m > 0):
            raise ConfigError(f"cross_traversal.radius_m must be > 0, got {self.radius_m}")
        if not 0.0 <= self.heading_tolerance_deg <= 180.0:
            raise ConfigError(
                "cross_traversal.heading_tolerance_deg must be within [0, 180], got "
                f"{self.heading_tolerance_deg}"
            )
        if not self.headings:
            raise ConfigError("cross_traversal.headings is empty: it needs at least 0")
        for heading in self.headings:
            if not (math.isfinite(heading) and -180.0 < heading <= 180.0):
                raise ConfigError(
                    f"cross_traversal.headings: {heading} is not within (-180, 180] degrees"
                )
        if len(set(self.headings)) != len(self.headings):
            raise ConfigError(f"cross_traversal.headings repeats one: {list(self.headings)}")
        if 0.0 not in self.headings:
            raise ConfigError("cross_traversal.headings must hold 0 (same-instant pairs)")
        seen: set[str] = set()
        for group in self.groups:
            specs = [spec.strip() for spec in group]
            if len(set(specs)) < 2:
                raise ConfigError(
                    f"cross_traversal.groups: {list(group)} needs two or more distinct specs"
                )
            twice = seen & set(specs)
            if twice:
                raise ConfigError(f"cross_traversal.groups: {sorted(twice)[0]} is in two groups")
            seen |= set(specs)


@dataclass(frozen=True)
class DataSection:
    """Where the pairs come from (dataset specs, see liploc_ros.training.sources)."""

    #: training sources: "kitti:ROOT:SEQ", "kitti360:ROOT:DRIVE", "bag:PATH",
    #: "synthetic:SEED:TRAVERSAL:FRAMES"; ${VAR} is replaced from the environment
    train: tuple[str, ...] = ()
    #: use every n-th frame of each training source (1: all, as the authors; bags: all)
    frame_step: int = 1
    #: 0: batches drawn at random from all training pairs (the authors); n: each batch takes
    #: batch_size / n pairs from each of n sources, so that most of its negatives are other
    #: places of the same drive (harder negatives than other drives)
    sources_per_batch: int = 0
    #: fraction of the training frames held out for validation (drawn at random)
    val_fraction: float = 0.2
    #: seed of that draw (the authors': 42)
    split_seed: int = 42
    #: sequences for the periodic Recall@1 (besides the validation split's own)
    eval: tuple[EvalSourceSection, ...] = ()
    #: keep preprocessed 8-bit inputs on disk and train from them (bags are always cached)
    cache: bool = True
    #: where; null: <output_dir>/cache
    cache_dir: str | None = None
    #: data-loading worker processes (0: load in the training process)
    num_workers: int = 4
    #: keep workers alive between epochs
    persistent_workers: bool = True
    augment: AugmentSection = field(default_factory=AugmentSection)
    cross_traversal: CrossTraversalSection = field(default_factory=CrossTraversalSection)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be within [0, 1), got {self.val_fraction}")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        if self.sources_per_batch < 0:
            raise ConfigError("data.sources_per_batch must be >= 0")
        if self.frame_step < 1:
            raise ConfigError(f"data.frame_step must be >= 1, got {self.frame_step}")
        train = {spec.strip() for spec in self.train}
        for group in self.cross_traversal.groups:
            for spec in group:
                if spec.strip() not in train:
                    raise ConfigError(
                        f"data.cross_traversal.groups: {spec!r} is not one of data.train"
                    )


@dataclass(frozen=True)
class OptimSection:
    """AdamW with one parameter group per module; the learning rate follows ReduceLROnPlateau
    on the validation loss (the authors) or a per-step cosine decay (a fixed budget of
    epochs, where the plateau rule may never fire)."""

    lr_camera: float = 1e-5
    lr_lidar: float = 1e-4
    #: both projection heads (and a learnable temperature)
    lr_head: float = 1e-3
    weight_decay_head: float = 1e-3
    #: every other group (the two encoders, the temperature)
    weight_decay: float = 0.0
    #: "plateau": x plateau_factor after plateau_patience epochs without a lower validation
    #: loss (the authors); "cosine": linear warm-up over warmup_epochs, then a cosine decay
    #: per step down to min_lr_ratio x the initial rate at the last epoch
    scheduler: Literal["plateau", "cosine"] = "plateau"
    plateau_patience: int = 1
    plateau_factor: float = 0.8
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    #: clip the gradient norm (null: no clipping, as the authors)
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        for name in ("lr_camera", "lr_lidar", "lr_head"):
            if getattr(self, name) < 0:
                raise ConfigError(f"optim.{name} must be >= 0")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError("optim.plateau_factor must be within (0, 1)")
        if self.warmup_epochs < 0:
            raise ConfigError("optim.warmup_epochs must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("optim.min_lr_ratio must be within [0, 1]")


@dataclass(frozen=True)
class LossSection:
    """The contrastive loss."""

    #: "authors": their soft-target loss (fixed temperature 1); "clip": CLIP's symmetric
    #: cross-entropy with a learnable temperature (pair it with model.normalize: true)
    name: Literal["authors", "clip"] = "authors"
    #: authors: the fixed temperature (1.0); clip: the initial one (0.07); null: default
    temperature: float | None = None
    #: clip only: learn the temperature
    learnable_temperature: bool = True


@dataclass(frozen=True)
class EvalSection:
    """The periodic validation Recall@K."""

    #: run it every this many epochs (and after the last); 0: never
    every: int = 5
    threshold_m: float = 20.0
    #: "ground": distance in the map's ground plane; "authors": their (ty, tz) quirk
    distance: DistanceName = "ground"


@dataclass(frozen=True)
class TrainSection:
    epochs: int = 100
    #: pairs per process and step (the contrastive batch is batch_size x processes)
    batch_size: int = 32
    seed: int = 0
    #: auto (CUDA when available), cpu, cuda, cuda:N (torchrun: the local rank's GPU)
    device: str = "auto"
    #: auto: bf16 on GPUs that have it, else fp16 with a gradient scaler; fp32 on the CPU
    #: (bf16: autocast on the CPU, about twice as fast on one with AMX / AVX512-BF16)
    precision: Precision = Precision.AUTO
    #: convert BatchNorm to SyncBatchNorm under several CUDA processes
    sync_batchnorm: bool = False
    #: torch CPU threads (0: torch's default)
    threads: int = 0
    #: run the encoders on NHWC tensors (channels_last): 1.5x faster steps for RegNet and
    #: MobileNet backbones on a CPU here, and the layout tensor cores prefer
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("train.epochs must be >= 1 and train.batch_size >= 2")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    #: a label written into the model file
    name: str = "liploc"
    #: where the checkpoints, logs and effective config go
    output_dir: str = "runs/liploc"
    model: ModelSection = field(default_factory=ModelSection)
    preprocess: PreprocessSection = field(default_factory=PreprocessSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    eval: EvalSection = field(default_factory=EvalSection)
    train: TrainSection = field(default_factory=TrainSection)
    #: also copy the best model here when training ends (null: keep it in output_dir only)
    export: str | None = None
    #: write TensorBoard logs under <output_dir>/tensorboard (if tensorboard is installed)
    tensorboard: bool = True
    #: progress bars
    progress: bool = True


_SETTING = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$", re.S)


def apply_overrides(data: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "data.train=[synthetic:1:0:50]"]`` applied to a raw config dict
    (values parsed as YAML), so that a run can differ from its file without a copy."""
    out = _deep_copy(data)
    for setting in settings:
        match = _SETTING.match(setting.strip())
        if not match:
            raise ConfigError(f"--set {setting!r}: expected KEY=VALUE, e.g. train.epochs=3")
        keys, raw = match.group(1).split("."), match.group(2)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {setting!r}: the value is not valid YAML: {err}") from err
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {setting!r}: {key} is not a section")
            node = child
        node[keys[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def load_train_config(path: str | Path | None, settings: list[str] | None = None) -> TrainConfig:
    """A config from a YAML file (None: the defaults) with ``--set`` overrides applied."""
    raw = load_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, list(settings or []))
    try:
        return from_dict(TrainConfig, raw)
    except ConfigError as err:
        if path is None or str(path) in str(err):
            raise
        raise ConfigError(f"{path}: {err}") from err


def config_to_yaml(config: TrainConfig) -> str:
    """The effective config as YAML (saved beside the checkpoints)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
