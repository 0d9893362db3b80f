"""Camera frame -> embedding -> top-k in the LiDAR map -> pose estimate, timed per stage.

The core of the localizer node and of ``liploc localize``; no ROS here. A map is only
readable by the model that built it, so the constructor refuses any other model instead of
returning confident nonsense.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np

from liploc_ros.errors import ConfigError, MapError, ModelMismatchError
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate, estimate_pose
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model.inference import Embedder
from liploc_ros.preprocess.camera import ColorOrder
from liploc_ros.preprocess.tensors import camera_input

#: the stages of :attr:`PoseEstimate.timings_ms`, in pipeline order
STAGES = ("preprocess", "encode", "search", "estimate")


def _ms(seconds: float) -> float:
    return 1000.0 * seconds


class Localizer:
    """Localizes camera frames in one map with one model (the map's own)."""

    def __init__(
        self,
        embedder: Embedder,
        database: MapDatabase,
        config: LocalizerConfig = DEFAULT_CONFIG,
    ) -> None:
        loaded = embedder.loaded
        database.check_model(embedder.fingerprint, loaded.model_config.name)
        if database.dim != embedder.embed_dim:  # same fingerprint, so only a corrupt header
            raise ModelMismatchError(
                f"map holds {database.dim}-d embeddings, model {loaded.model_config.name!r} "
                f"makes {embedder.embed_dim}-d ones"
            )
        self.embedder = embedder
        self.database = database
        self.config = config

    @property
    def frame_id(self) -> str:
        """The frame the estimated poses are expressed in (the map's)."""
        return self.database.info.frame_id

    def warm_up(self) -> None:
        """Run one dummy frame through every stage, so that the first real frame does not pay
        for lazy initialisation (allocator, kernels, FAISS threads)."""
        size = self.embedder.loaded.preprocess.camera.image_size
        self.localize(np.zeros((size, size, 3), np.uint8), 0.0)

    def localize(
        self,
        image: np.ndarray,
        stamp: float,
        *,
        order: ColorOrder = "rgb",
        timings_ms: Mapping[str, float] | None = None,
    ) -> PoseEstimate:
        """One H x W x 3 (or mono) uint8 frame -> its estimate, stamped ``stamp``.

        ``timings_ms``: stages the caller timed before (e.g. ``{"decode": 2.1}``); they are
        added to the result's timings and its total.
        """
        return self.localize_batch([image], [stamp], order=order, timings_ms=timings_ms)[0]

    def localize_batch(
        self,
        images: Sequence[np.ndarray],
        stamps: Sequence[float],
        *,
        order: ColorOrder = "rgb",
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        """Frames encoded together (faster offline) -> one estimate per frame, in order.

        ``k`` retrieves more entries than ``config.top_k`` (for Recall@K): the estimate still
        uses the best ``top_k``, the result lists all ``k``. The preprocess, encode and search
        timings are the batch's divided by its size (amortised); estimate is per frame.
        """
        n = len(images)
        if n != len(stamps):
            raise ConfigError(f"localize_batch: {n} images but {len(stamps)} stamps")
        if n == 0:
            return []
        # every crop heading of the top_k best keyframes may be among the best entries
        top = self.config.top_k * max(1, self.database.entries_per_keyframe)
        depth = top if k is None else max(int(k), top)
        queries, shared = self.encode(images, order=order)
        t2 = time.perf_counter()
        found = self.database.search(queries, depth)
        shared["search"] = _ms(time.perf_counter() - t2) / n
        extra = dict(timings_ms or {})
        query_norms = np.linalg.norm(queries.astype(np.float64), axis=1)
        out = []
        for q in range(n):
            t4 = time.perf_counter()
            scale = self._scale(found.indices[q], found.scores[q], query_norms[q])
            est = estimate_pose(
                found.indices[q], found.scores[q], found.poses[q], stamps[q], self.config,
                scale=scale, keyframes=self._keyframes_of(found.indices[q]),
            )  # fmt: skip
            timings = {**extra, **shared, "estimate": _ms(time.perf_counter() - t4)}
            timings["total"] = sum(timings.values())
            out.append(dataclasses.replace(est, timings_ms=timings))
        return out

    def encode(
        self, images: Sequence[np.ndarray], *, order: ColorOrder = "rgb"
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Frames -> their (B, D) camera embeddings, and the preprocess and encode times per
        frame (ms, the batch's divided by its size). The sequence localizer's front end."""
        n = max(len(images), 1)
        pre = self.embedder.loaded.preprocess
        t0 = time.perf_counter()
        batch = np.stack([camera_input(image, pre, order) for image in images])
        t1 = time.perf_counter()
        queries = self.embedder.embed_camera(batch)
        t2 = time.perf_counter()
        return queries, {"preprocess": _ms(t1 - t0) / n, "encode": _ms(t2 - t1) / n}

    def estimate(
        self,
        indices: np.ndarray,
        scores: np.ndarray,
        stamp: float,
        *,
        query: np.ndarray | None = None,
    ) -> PoseEstimate:
        """Pure step: retrieved entries of this map and their scores -> the estimate.

        ``query``: the frame's embedding, for the cosine temperature's |query|; without it
        |query| is taken as |best entry| (both heads end in the same LayerNorm'd space).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and idx.max() >= len(self.database):
            raise MapError(
                f"estimate: entry {int(idx.max())} is not in the map ({len(self.database)} "
                "entries)"
            )
        norm = None if query is None else float(np.linalg.norm(np.asarray(query, np.float64)))
        scale = self._scale(idx, scores, norm)
        poses = self.database.poses_at(idx)
        return estimate_pose(
            idx, scores, poses, stamp, self.config, scale=scale, keyframes=self._keyframes_of(idx)
        )

    def _keyframes_of(self, indices: np.ndarray) -> np.ndarray | None:
        """Keyframe ids of retrieved entries (-1 for none); None for a one-crop map, whose
        entries are their own keyframes."""
        if self.database.entries_per_keyframe <= 1:
            return None
        idx = np.asarray(indices, np.int64)
        return np.where(idx >= 0, self.database.keyframes[np.maximum(idx, 0)], -1)

    def _scale(self, indices: np.ndarray, scores: np.ndarray, query_norm: float | None) -> float:
        """|query| * |best entry| (the cosine temperature's unit); 1 when nothing matched."""
        sc = np.asarray(scores, np.float64).reshape(-1)
        valid = (np.asarray(indices) >= 0) & np.isfinite(sc)
        if not valid.any():
            return 1.0
        best = int(np.asarray(indices)[valid][np.argmax(sc[valid])])
        entry = float(np.linalg.norm(np.asarray(self.database.embeddings[best], np.float64)))
        return entry * (entry if query_norm is None else float(query_norm))
