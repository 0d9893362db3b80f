"""Map building: keyframe scans with poses -> LiDAR embeddings -> a map database."""

from liploc_ros.mapping.build_checkpoint import BuildCheckpoint, checkpoint_path_for
from liploc_ros.mapping.builder import MapBuilder
from liploc_ros.mapping.config import MapBuildConfig
from liploc_ros.mapping.keyframes import KeyframeSelector, select_keyframes
from liploc_ros.mapping.pipeline import BuildSummary, build_map

__all__ = [
    "BuildCheckpoint",
    "BuildSummary",
    "KeyframeSelector",
    "MapBuildConfig",
    "MapBuilder",
    "build_map",
    "checkpoint_path_for",
    "select_keyframes",
]
