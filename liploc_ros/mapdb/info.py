"""What a map records about where its embeddings came from.

A map is only meaningful to the model that made it, fed with the same LiDAR preprocessing:
the fingerprint and the range-image config travel with the map so that a localizer can refuse
a map it cannot read correctly, instead of returning confident nonsense.
"""

from __future__ import annotations

from dataclasses import dataclass

from liploc_ros.errors import ConfigError
from liploc_ros.preprocess.config import RangeImageConfig


@dataclass(frozen=True)
class MapInfo:
    """A map's provenance: model, preprocessing, frame, sources."""

    #: 16 hex digits identifying the model's weights (``LoadedModel.fingerprint``)
    model_fingerprint: str
    #: ``ModelConfig.name``
    model_name: str
    embed_dim: int
    #: embeddings were L2-normalised by the model
    normalized: bool
    #: the range-image preprocessing the scans went through
    lidar: RangeImageConfig
    #: the frame the entries' poses are expressed in
    frame_id: str = "map"
    #: names of the drives / bags the entries came from (``source_index`` points here)
    sources: tuple[str, ...] = ()
    #: ISO 8601 UTC time of writing; set on save when empty
    created: str = ""
    liploc_ros_version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model_fingerprint, str) or not self.model_fingerprint.strip():
            raise ConfigError("MapInfo.model_fingerprint must be a non-empty string")
        if not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ConfigError(
                f"MapInfo.embed_dim must be a positive integer, not {self.embed_dim}"
            )
        if not isinstance(self.frame_id, str) or not self.frame_id.strip():
            raise ConfigError("MapInfo.frame_id must be a non-empty frame name")
        if not isinstance(self.lidar, RangeImageConfig):
            raise ConfigError(
                f"MapInfo.lidar must be a RangeImageConfig, not {type(self.lidar).__name__}"
            )
        if not all(isinstance(s, str) for s in self.sources):
            raise ConfigError("MapInfo.sources must be a tuple of names")
        # a list at run time when built directly (from_dict gives a tuple)
        if not isinstance(self.sources, tuple):
            object.__setattr__(self, "sources", tuple(self.sources))  # type: ignore[unreachable]
