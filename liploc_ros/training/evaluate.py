"""Recall@K evaluation of a model on one drive (the paper's protocol) or across two.

- Same sequence (the paper): the database is the LiDAR embedding of every frame of the
  sequence, the queries the camera embedding of every frame of the same sequence (each
  query's own scan is in the database, as in the authors' code).
- Across traversals (harder): the database comes from one drive (the map), the queries from
  another drive of the same place; both must share a map frame. Whether they do is checked
  (:func:`~liploc_ros.evaluation.frame_check.check_ground_truth_frame`) and reported in
  the summary (``ground_truth_frame``) and the report, loudly when they probably do not.

Frames without a pose are left out of both sides. The top-K are by dot product (exact FAISS
search); a query succeeds at K when one of its first K entries lies within the threshold
under the chosen distance convention (see :mod:`liploc_ros.evaluation.retrieval`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from liploc_ros.errors import ConfigError
from liploc_ros.evaluation.frame_check import check_ground_truth_frame
from liploc_ros.evaluation.retrieval import (
    Retrieval,
    chance_curve,
    chance_level,
    ground_positions,
    positions,
    recall_curve,
    retrieve,
)
from liploc_ros.io_utils import atomic_open, write_text_atomic
from liploc_ros.mapdb.places import RECALL_COUNTS
from liploc_ros.preprocess.config import PreprocessConfig
from liploc_ros.preprocess.tensors import picture_input
from liploc_ros.training.pictures import PictureSet

DEFAULT_KS = (1, 5, 10)
#: thresholds of the recall curve, metres
CURVE_THRESHOLDS = np.arange(0.0, 50.5, 0.5)

Encode = Callable[[torch.Tensor], np.ndarray]


class _Inputs(Dataset):
    """Normalised inputs of one modality for the given frames (for loader workers)."""

    def __init__(
        self,
        pictures: PictureSet,
        frames: np.ndarray,
        modality: str,
        pre: PreprocessConfig,
        heading: float = 0.0,
    ) -> None:
        self.pictures, self.frames, self.modality = pictures, frames, modality
        self.mean, self.std = pre.camera.mean, pre.camera.std
        self.heading = heading

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> torch.Tensor:
        frame = int(self.frames[i])
        pic = (
            self.pictures.camera(frame)
            if self.modality == "camera"
            else self.pictures.lidar(frame, self.heading)
        )
        return torch.from_numpy(picture_input(pic, self.mean, self.std))


def embed_frames(
    encode: Encode,
    pictures: PictureSet,
    frames: np.ndarray,
    modality: str,
    pre: PreprocessConfig,
    *,
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = False,
    heading: float = 0.0,
) -> np.ndarray:
    """(len(frames), D) float32 embeddings of one modality of ``pictures``' frames (LiDAR
    crops centred at ``heading`` degrees)."""
    loader = DataLoader(
        _Inputs(pictures, np.asarray(frames), modality, pre, heading),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        # its own generator: embedding must not advance the global random state (resume)
        generator=torch.Generator().manual_seed(0),
    )
    out = [
        encode(batch)
        for batch in tqdm(
            loader,
            desc=f"embedding {pictures.name} ({modality}"
            + (f", crop at {heading:g} deg)" if heading else ")"),
            unit="batch",
            disable=not progress,
        )
    ]
    if not out:
        raise ConfigError(f"{pictures.name}: no frame to embed")
    return np.concatenate(out).astype(np.float32, copy=False)


@dataclass
class EvalResult:
    """Everything an evaluation measured, per query and in summary."""

    protocol: str
    map_name: str
    query_name: str
    distance: str
    threshold_m: float
    ks: tuple[int, ...]
    recalls: dict[int, float]
    chance: float
    #: source frame indices of the database rows (one per keyframe and crop heading,
    #: keyframe by keyframe) and of the queries
    db_frames: np.ndarray
    query_frames: np.ndarray
    db_xy: np.ndarray
    query_xy: np.ndarray
    #: ground-plane positions for the route figure (the distance positions if no poses)
    db_route: np.ndarray
    query_route: np.ndarray
    lidar: np.ndarray
    camera: np.ndarray
    retrieval: Retrieval
    curve_thresholds: np.ndarray = field(default_factory=CURVE_THRESHOLDS.copy)
    curve_recall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_chance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: across traversals: is the query ground truth near the map (GroundTruthFrameCheck)
    ground_truth_frame: dict[str, Any] | None = None
    #: the crop heading (degrees) of each database row; the map's headings
    db_heading_deg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    headings: tuple[float, ...] = (0.0,)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary."""
        extra = {"ground_truth_frame": self.ground_truth_frame} if self.ground_truth_frame else {}
        return {
            "protocol": self.protocol,
            "map": self.map_name,
            "queries": self.query_name,
            "distance": self.distance,
            "threshold_m": self.threshold_m,
            "num_queries": len(self.query_frames),
            "num_database": len(self.db_frames),
            "num_keyframes": len(np.unique(self.db_frames)),
            "headings_deg": list(self.headings),
            **{f"recall@{k}": self.recalls[k] for k in self.ks},
            "recall_counts": RECALL_COUNTS,
            "chance@1": self.chance,
            "median_top1_error_m": float(np.median(self.retrieval.top1_error)),
            **extra,
        }

    def report(self) -> str:
        """Human-readable lines."""
        distance = {
            "ground": "ground-plane distance (x, y of the map frame)",
            "authors": "the authors' distance (2nd and 3rd pose-file translation components)",
        }[self.distance]
        recalls = ", ".join(f"R@{k} {self.recalls[k]:.3f}" for k in self.ks)
        lines = [
            f"protocol: {self.protocol}; map {self.map_name} ({self._map_size()}), "
            f"queries {self.query_name} ({len(self.query_frames)} images)",
            f"distance: {distance}; threshold {self.threshold_m:g} m",
            f"{recalls}; chance (random pick) {self.chance:.3f}; median top-1 error "
            f"{np.median(self.retrieval.top1_error):.1f} m",
        ]
        if self.ground_truth_frame:
            lines.append(self.ground_truth_frame["message"])
        return "\n".join(lines)

    def _map_size(self) -> str:
        scans = len(np.unique(self.db_frames))
        if self.headings == (0.0,):
            return f"{scans} scans"
        crops = ", ".join(f"{h:g}" for h in self.headings)
        return f"{scans} scans x crops at {crops} deg = {len(self.db_frames)} entries"


def _posed_frames(xy: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isfinite(xy).all(axis=1))


def _route(pictures: PictureSet, frames: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    if pictures.poses is None:
        return fallback
    xy = ground_positions(pictures.poses)[frames]
    return xy if np.isfinite(xy).all() else fallback


def evaluate_pictures(
    encode_camera: Encode,
    encode_lidar: Encode,
    pre: PreprocessConfig,
    map_set: PictureSet,
    query_set: PictureSet | None = None,
    *,
    distance: str = "ground",
    threshold_m: float = 20.0,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = False,
    frames: np.ndarray | None = None,
    headings: Sequence[float] = (0.0,),
) -> EvalResult:
    """Recall@K of queries from ``query_set`` (None: ``map_set`` itself) against the LiDAR
    database of ``map_set``. ``frames`` restricts the same-sequence protocol to some frames
    (the training loop's validation split). ``headings``: the database holds one entry per
    scan and crop heading (``map_set`` must hold those crops), and Recall@K counts K
    distinct scans, so that two crops of one place take one of the K places."""
    if threshold_m <= 0:
        raise ConfigError(f"threshold must be positive, got {threshold_m}")
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ConfigError(f"K values must be positive, got {ks}")
    same = query_set is None
    query_set = map_set if query_set is None else query_set
    db_all = positions(map_set.poses, map_set.file_poses, distance, map_set.name)
    q_all = positions(query_set.poses, query_set.file_poses, distance, query_set.name)
    db_frames = _posed_frames(db_all)
    q_frames = _posed_frames(q_all)
    if frames is not None:
        keep = np.asarray(frames, np.int64)
        db_frames = np.intersect1d(db_frames, keep)
        q_frames = np.intersect1d(q_frames, keep)
    if len(db_frames) == 0 or len(q_frames) == 0:
        raise ConfigError(
            f"no posed frames to evaluate ({map_set.name}: {len(db_frames)} in the database, "
            f"{query_set.name}: {len(q_frames)} queries)"
        )
    opts: dict[str, Any] = {"batch_size": batch_size, "workers": workers, "progress": progress}
    headings = tuple(float(h) for h in headings) or (0.0,)
    crops = [
        embed_frames(encode_lidar, map_set, db_frames, "lidar", pre, heading=h, **opts)
        for h in headings
    ]
    lidar = np.stack(crops, axis=1).reshape(len(db_frames) * len(headings), -1)
    db_frames = np.repeat(db_frames, len(headings))
    db_heading = np.tile(np.asarray(headings, np.float32), len(db_frames) // len(headings))
    camera = embed_frames(encode_camera, query_set, q_frames, "camera", pre, **opts)
    db_xy, q_xy = db_all[db_frames], q_all[q_frames]
    frame_check = None if same else check_ground_truth_frame(q_xy, db_xy, threshold_m)
    retrieval = retrieve(
        camera, lidar, q_xy, db_xy, k=max(ks), threshold_m=threshold_m,
        groups=db_frames if len(headings) > 1 else None,
    )  # fmt: skip
    return EvalResult(
        protocol="same sequence" if same else "across traversals",
        map_name=map_set.name,
        query_name=query_set.name,
        distance=distance,
        threshold_m=float(threshold_m),
        ks=ks,
        recalls={k: retrieval.recall_at(k) for k in ks},
        chance=chance_level(q_xy, db_xy, threshold_m),
        db_frames=db_frames,
        query_frames=q_frames,
        db_xy=db_xy,
        query_xy=q_xy,
        db_route=_route(map_set, db_frames, db_xy),
        query_route=_route(query_set, q_frames, q_xy),
        lidar=lidar,
        camera=camera,
        retrieval=retrieval,
        curve_recall=recall_curve(retrieval.top1_error, CURVE_THRESHOLDS),
        curve_chance=chance_curve(q_xy, db_xy, CURVE_THRESHOLDS),
        ground_truth_frame=frame_check.as_dict() if frame_check is not None else None,
        db_heading_deg=db_heading,
        headings=headings,
    )


def save_eval_outputs(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """results.npz (embeddings in frame order and per-query arrays), summary.json,
    route.png and recall_curve.png under ``out_dir``."""
    from liploc_ros.evaluation.plots import save_recall_curve
    from liploc_ros.evaluation.route_figure import save_route_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = result.retrieval
    arrays = {
        "camera": result.camera,
        "lidar": result.lidar,
        "query_frame": result.query_frames,
        "db_frame": result.db_frames,
        "db_heading_deg": result.db_heading_deg,
        "query_xy": result.query_xy,
        "db_xy": result.db_xy,
        "topk_index": r.indices,
        "topk_db_frame": result.db_frames[r.indices],
        "topk_score": r.scores,
        "topk_distance": r.distances,
        "top1_error": r.top1_error,
        "threshold_m": np.float64(result.threshold_m),
        "curve_threshold_m": result.curve_thresholds,
        "curve_recall": result.curve_recall,
        "curve_chance": result.curve_chance,
        **{f"success_at_{k}": r.success_at(k) for k in result.ks},
    }
    paths = {"npz": out / "results.npz", "summary": out / "summary.json"}
    with atomic_open(paths["npz"], "wb") as handle:
        np.savez(handle, **arrays)
    write_text_atomic(paths["summary"], json.dumps(result.summary(), indent=2) + "\n")
    title = (
        f"{result.query_name} in {result.map_name}: R@1 {result.recalls[result.ks[0]]:.2f} "
        f"at {result.threshold_m:g} m ({result.distance}), chance {result.chance:.2f}"
    )
    paths["route"] = save_route_figure(
        out / "route.png", result.db_route, result.query_route, result.query_route,
        success=r.success_at(1), noun="top-1", title=title, axis_labels=("x (m)", "y (m)"),
    )  # fmt: skip
    paths["curve"] = save_recall_curve(
        result.curve_thresholds,
        result.curve_recall,
        result.curve_chance,
        out / "recall_curve.png",
        marked_threshold=result.threshold_m,
        title=title,
    )
    return paths
