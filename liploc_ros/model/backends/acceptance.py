"""The recall guarantee: a reduced-precision encoder is accepted only after a check on
held-out frames against fp32.

A map is built once, and the camera encoder that queries it may run at another precision
than the LiDAR encoder that built it. So an encoder at precision P (INT8, bf16, fp16) is
checked where it will be used, on held-out frames with poses (:mod:`.calibration`):

- **cosine**: its embeddings against PyTorch fp32's, row by row; the mean must reach
  :data:`MIN_COSINE` (bf16 / fp16 0.99, INT8 0.98);
- **Recall@1 at 20 m against an fp32 map**: a camera encoder at P queries the fp32 LiDAR
  embeddings of the same frames; a LiDAR encoder at P builds the map that fp32 camera
  embeddings query. Recall@1 may not fall more than :data:`RECALL_TOLERANCE` (0.01) below the
  all-fp32 figure, or one query's worth where fewer than 100 frames make a query worth more
  (a smaller drop cannot be seen);
- **top-1 agreement**: the share of queries whose best map entry is the fp32 one (reported).

The figures are stored with the cached model (:class:`Verification` in its folder) and
printed; a refused model raises :class:`~liploc_ros.errors.VerificationError` with them.
The fp32 reference embeddings of a verification set are computed once per model and kept
in the model's cache folder (``reference/<set id>.npz``, no pickle).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.errors import BackendError, VerificationError
from liploc_ros.io_utils import write_bytes_atomic, write_text_atomic
from liploc_ros.model.backends.base import EncoderRunner, Side
from liploc_ros.model.backends.calibration import CalibrationSet, HeldOut
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

#: the mean embedding cosine to fp32 each reduced precision must reach
MIN_COSINE: dict[str, float] = {"bf16": 0.99, "fp16": 0.99, "int8": 0.98}
#: how far Recall@1 may fall below fp32's (absolute)
RECALL_TOLERANCE = 0.01
#: a query is right when its best map entry lies within this ground distance (metres)
RECALL_RADIUS_M = 20.0
#: inputs per call when embedding the held-out frames
_BATCH = 16
VERIFICATION_FILE = "verification.json"


@dataclass(frozen=True)
class References:
    """PyTorch fp32 embeddings of a verification set's frames, and where the frames were."""

    camera: np.ndarray
    lidar: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True)
class Verification:
    """One encoder at one precision, checked against fp32 (see the module's docstring)."""

    backend: str
    precision: str
    side: str
    source: str
    frames: int
    cosine_mean: float
    cosine_min: float
    recall_fp32: float
    recall: float
    top1_agreement: float
    min_cosine: float
    allowed_drop: float
    passed: bool

    def summary(self) -> str:
        """One line with the figures and the verdict."""
        verdict = "accepted" if self.passed else "REFUSED"
        return (
            f"{self.side} encoder {self.backend} {self.precision}: {verdict} on {self.frames} "
            f"held-out frames of {self.source}: cosine to fp32 mean {self.cosine_mean:.5f} "
            f"(min {self.cosine_min:.5f}, needs {self.min_cosine}), Recall@1 "
            f"{self.recall:.3f} vs fp32 {self.recall_fp32:.3f} (may drop {self.allowed_drop:.3f}),"
            f" top-1 agreement {self.top1_agreement:.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        try:
            return cls(**data)
        except TypeError as err:
            raise BackendError(f"not a verification record: {err}") from err

    def raise_if_refused(self) -> None:
        if not self.passed:
            raise VerificationError(f"refused, falling back to fp32: {self.summary()}")


def write_verification(folder: Path, result: Verification) -> None:
    write_text_atomic(folder / VERIFICATION_FILE, json.dumps(result.to_dict(), indent=1) + "\n")


def read_verification(folder: Path) -> Verification | None:
    """The verification stored in ``folder`` (None: none there)."""
    path = folder / VERIFICATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BackendError(f"unreadable {path}: {err}") from err
    return Verification.from_dict(data)


def recall_at_1(
    queries: np.ndarray, database: np.ndarray, positions: np.ndarray
) -> tuple[float, np.ndarray]:
    """(Recall@1 at :data:`RECALL_RADIUS_M`, each query's best entry) by inner product, as a
    map searches; query i and entry i were taken at ``positions[i]``."""
    scores = queries.astype(np.float64) @ database.astype(np.float64).T
    best = scores.argmax(axis=1)  # the lower index among equal scores, as the map's search
    error = np.linalg.norm(positions[best] - positions, axis=1)
    return float((error <= RECALL_RADIUS_M).mean()), best


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return (a64 * b64).sum(axis=1) / np.maximum(norms, 1e-30)


def allowed_recall_drop(frames: int) -> float:
    """:data:`RECALL_TOLERANCE`, or one query's worth on fewer than 100 frames."""
    return max(RECALL_TOLERANCE, 1.0 / frames) + 1e-9


def judge(
    backend: str,
    precision: str,
    side: Side,
    embeddings: np.ndarray,
    references: References,
    source: str,
) -> Verification:
    """The verdict on ``side``'s embeddings of the held-out frames at ``precision``."""
    ref_side = references.camera if side == "camera" else references.lidar
    cosines = row_cosines(embeddings, ref_side)
    positions = references.positions
    recall_fp32, best_fp32 = recall_at_1(references.camera, references.lidar, positions)
    if side == "camera":
        recall, best = recall_at_1(embeddings, references.lidar, positions)
    else:
        recall, best = recall_at_1(references.camera, embeddings, positions)
    bound = MIN_COSINE.get(precision, 0.999)
    drop = allowed_recall_drop(len(positions))
    passed = bool(cosines.mean() >= bound and recall >= recall_fp32 - drop)
    return Verification(
        backend=backend,
        precision=precision,
        side=side,
        source=source,
        frames=len(positions),
        cosine_mean=float(cosines.mean()),
        cosine_min=float(cosines.min()),
        recall_fp32=recall_fp32,
        recall=recall,
        top1_agreement=float((best == best_fp32).mean()),
        min_cosine=bound,
        allowed_drop=round(drop, 6),
        passed=passed,
    )


def embed(runner: EncoderRunner, side: Side, inputs: np.ndarray) -> np.ndarray:
    """``runner``'s ``side`` embeddings of preprocessed ``inputs``, in small batches."""
    out = [
        runner.encode(side, torch.from_numpy(inputs[i : i + _BATCH]))
        for i in range(0, len(inputs), _BATCH)
    ]
    return np.concatenate(out).astype(np.float32, copy=False)


def _fp32_references(loaded: LoadedModel, held: HeldOut, device: torch.device) -> References:
    from liploc_ros.model.backends.torch_backend import TorchRunner

    runner = TorchRunner(loaded, device, "fp32")
    return References(
        camera=embed(runner, "camera", held.camera),
        lidar=embed(runner, "lidar", held.lidar),
        positions=held.positions,
    )


def references(
    loaded: LoadedModel,
    verification_set: CalibrationSet,
    folder: Path | None,
    device: torch.device | None = None,
) -> References:
    """The fp32 references of ``verification_set`` for ``loaded``, read from
    ``folder/<set id>.npz`` when it was made for these weights, else computed and kept."""
    path = None if folder is None else folder / f"{verification_set.id}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["sha256"]) == loaded.sha256 and str(data["fingerprint"]) == (
                    loaded.fingerprint
                ):
                    return References(data["camera"], data["lidar"], data["positions"])
        except (OSError, ValueError, KeyError) as err:
            log.warning("recomputing the fp32 references (%s is unreadable: %s)", path, err)
    held = verification_set.held_out(loaded)
    found = _fp32_references(loaded, held, device or torch.device("cpu"))
    if path is not None:
        buf = io.BytesIO()
        sha, fingerprint = np.array(loaded.sha256), np.array(loaded.fingerprint)
        camera, lidar, positions = found.camera, found.lidar, found.positions
        np.savez(buf, camera=camera, lidar=lidar, positions=positions, sha256=sha,
                 fingerprint=fingerprint)  # fmt: skip
        with contextlib.suppress(OSError):  # a read-only cache only costs the recomputation
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, buf.getvalue())
    return found


def verify_runner(
    runner: EncoderRunner,
    side: Side,
    loaded: LoadedModel,
    verification_set: CalibrationSet,
    reference_folder: Path | None,
) -> Verification:
    """Check ``runner``'s ``side`` encoder on ``verification_set``'s held-out frames."""
    held = verification_set.held_out(loaded)
    refs = references(loaded, verification_set, reference_folder, runner.device)
    inputs = held.camera if side == "camera" else held.lidar
    embeddings = embed(runner, side, inputs)
    source = verification_set.held_out_spec
    result = judge(runner.backend, runner.precision, side, embeddings, refs, source)
    log.info("%s", result.summary())  # a refusal is warned about by whoever falls back
    return result
