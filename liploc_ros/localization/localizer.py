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

from liploc_ros.errors import ConfigError, ModelMismatchError
from liploc_ros.localization.calibration import evidence_for
from liploc_ros.localization.config import DEFAULT_CONFIG, LocalizerConfig
from liploc_ros.localization.estimate import PoseEstimate, estimate_pose
from liploc_ros.localization.evidence import EvidenceModel
from liploc_ros.localization.mode import LocalizationMode, ModeSettings
from liploc_ros.localization.mode_registry import mode_class
from liploc_ros.localization.scores import embedding_stats, standardized
from liploc_ros.mapdb import MapDatabase
from liploc_ros.model.inference import Embedder
from liploc_ros.preprocess.camera import ColorOrder
from liploc_ros.preprocess.tensors import camera_input

#: the stages of :attr:`PoseEstimate.timings_ms`, in pipeline order
STAGES = ("preprocess", "encode", "search", "estimate")


def _ms(seconds: float) -> float:
    return 1000.0 * seconds


class FrameEstimator:
    """Embedded camera frames -> single-frame estimates in one map: the retrieval and the
    estimate, everything of a frame but its encoder.

    The one single-frame path: the localizer node and ``liploc localize`` reach it through
    :class:`Localizer`, ``liploc eval`` and the benchmarks with embeddings they computed,
    so all of them decide alike.
    """

    def __init__(
        self,
        database: MapDatabase,
        config: LocalizerConfig = DEFAULT_CONFIG,
        evidence: EvidenceModel | None = None,
    ) -> None:
        """``evidence``: what the map's scores mean (None: its calibration, or the
        conservative model with :attr:`calibration_warning` saying why)."""
        self.database = database
        self.config = config
        if evidence is None:
            evidence, self.calibration_warning = evidence_for(database)
        else:
            self.calibration_warning = ""
        self.evidence = evidence
        self._mean, self._cov = embedding_stats(np.asarray(database.embeddings))

    def depth(self, k: int | None = None) -> int:
        """Entries retrieved per frame: every crop heading of the ``top_k`` best keyframes
        may be among the best entries, and ``k`` asks for more (Recall@K)."""
        top = self.config.top_k * max(1, self.database.entries_per_keyframe)
        return top if k is None else max(int(k), top)

    def estimate_batch(
        self,
        queries: np.ndarray,
        stamps: Sequence[float] | np.ndarray,
        *,
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        """(B, D) camera embeddings -> one estimate per frame, in order. ``k``: entries
        retrieved for the result's ``indices`` (the estimate uses the ``top_k`` best
        keyframes). The search time is the batch's divided by its size; ``timings_ms``
        (stages the caller timed before) are added to every frame's timings and total."""
        q = np.asarray(queries, np.float32)
        n = len(q)
        if n != len(stamps):
            raise ConfigError(f"estimate_batch: {n} queries but {len(stamps)} stamps")
        if n == 0:
            return []
        t0 = time.perf_counter()
        found = self.database.search(q, self.depth(k))
        shared = {**(timings_ms or {}), "search": _ms(time.perf_counter() - t0) / n}
        z = standardized(q, found.scores, self._mean, self._cov)
        out = []
        for i in range(n):
            t1 = time.perf_counter()
            est = estimate_pose(
                found.indices[i], found.scores[i], found.poses[i], stamps[i], self.config,
                z=z[i], evidence=self.evidence, entries=len(self.database),
                keyframes=self._keyframes_of(found.indices[i]), depth=self.depth(),
            )  # fmt: skip
            timings = {**shared, "estimate": _ms(time.perf_counter() - t1)}
            timings["total"] = sum(timings.values())
            out.append(dataclasses.replace(est, timings_ms=timings))
        return out

    def _keyframes_of(self, indices: np.ndarray) -> np.ndarray | None:
        """Keyframe ids of retrieved entries (-1 for none); None for a one-crop map, whose
        entries are their own keyframes."""
        if self.database.entries_per_keyframe <= 1:
            return None
        idx = np.asarray(indices, np.int64)
        return np.where(idx >= 0, self.database.keyframes[np.maximum(idx, 0)], -1)


class Localizer:
    """Localizes camera frames in one map with one model (the map's own): the camera
    encoder in front of a localizer mode (:mod:`~liploc_ros.localization.mode`), which
    estimates over the map's :class:`FrameEstimator`. Every caller drives every mode through
    :meth:`localize_batch` / :meth:`localize`; ``mode`` holds the mode's own state (reset,
    initial pose, particles)."""

    def __init__(
        self,
        embedder: Embedder,
        database: MapDatabase,
        config: LocalizerConfig = DEFAULT_CONFIG,
        *,
        mode: str = "single",
        settings: ModeSettings | None = None,
    ) -> None:
        """``mode``: a registered mode's name; ``settings``: its settings (None: ``config``
        and the sequence defaults)."""
        loaded = embedder.loaded
        database.check_model(embedder.fingerprint, loaded.model_config.name)
        if database.dim != embedder.embed_dim:  # same fingerprint, so only a corrupt header
            raise ModelMismatchError(
                f"map holds {database.dim}-d embeddings, model {loaded.model_config.name!r} "
                f"makes {embedder.embed_dim}-d ones"
            )
        self.embedder = embedder
        self.estimator = FrameEstimator(database, config)
        settings = settings or ModeSettings(localizer=config)
        self.mode: LocalizationMode = mode_class(mode)(self.estimator, settings)

    @property
    def database(self) -> MapDatabase:
        return self.estimator.database

    @property
    def config(self) -> LocalizerConfig:
        return self.estimator.config

    def reconfigure(self, settings: ModeSettings) -> None:
        """New settings (dynamic parameters), from the next frame on."""
        if not isinstance(settings, ModeSettings):
            raise ConfigError(f"settings must be ModeSettings, not {type(settings).__name__}")
        self.mode.reconfigure(settings)

    @property
    def frame_id(self) -> str:
        """The frame the estimated poses are expressed in (the map's)."""
        return self.database.info.frame_id

    def warm_up(self) -> None:
        """Run one dummy frame through every stage, so that the first real frame does not pay
        for lazy initialisation (allocator, kernels, FAISS threads)."""
        size = self.embedder.loaded.preprocess.camera.image_size
        self.localize(np.zeros((size, size, 3), np.uint8), 0.0)
        self.mode.reset()  # the dummy frame is no part of any stream

    def localize(
        self,
        image: np.ndarray,
        stamp: float,
        odometry: np.ndarray | None = None,
        *,
        order: ColorOrder = "rgb",
        timings_ms: Mapping[str, float] | None = None,
    ) -> PoseEstimate:
        """One H x W x 3 (or mono) uint8 frame -> its estimate, stamped ``stamp``, with the
        odometry pose at its stamp (None: none; a mode without memory ignores it).

        ``timings_ms``: stages the caller timed before (e.g. ``{"decode": 2.1}``); they are
        added to the result's timings and its total.
        """
        return self.localize_batch(
            [image], [stamp], [odometry], order=order, timings_ms=timings_ms
        )[0]

    def localize_batch(
        self,
        images: Sequence[np.ndarray],
        stamps: Sequence[float],
        odometry: Sequence[np.ndarray | None] | None = None,
        *,
        order: ColorOrder = "rgb",
        k: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> list[PoseEstimate]:
        """Frames of one stream, in time order, encoded together (faster offline), with
        their odometry poses (None: none) -> one estimate per frame, by the mode.

        ``k`` retrieves more entries than the estimate uses (for Recall@K): the result lists
        them all. The preprocess, encode and search timings are the batch's divided by its
        size (amortised); estimate is per frame.
        """
        if len(images) != len(stamps):
            raise ConfigError(f"localize_batch: {len(images)} images but {len(stamps)} stamps")
        if not images:
            return []
        queries, timings = self.encode(images, order=order)
        return self.mode.estimate(
            queries, stamps, odometry, k=k, timings_ms={**(timings_ms or {}), **timings}
        )

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
