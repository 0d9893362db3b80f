"""Where ``auto`` keeps what it measured: one JSON file per encoder, device, batch and
restriction in the model's cache folder (``auto/``), and the verifications of the float
precisions it accepted (``auto/verified/``).

A decision is reused only while its key (model, encoder, device, probe batch, machine
profile, candidates and the INT8 models among them, rule version) is the current one, so a
new runtime version, another CPU, another thread count or a new INT8 model means measuring
again (a few seconds); otherwise a second start only loads the chosen runtime.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from liploc_ros.errors import BackendError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.model.backends.acceptance import Verification

log = logging.getLogger(__name__)

AUTO_FOLDER = "auto"


@dataclass(frozen=True)
class Decision:
    """What auto chose for one encoder, and why."""

    side: str
    backend: str
    precision: str
    #: the chosen configuration's median ms per frame at ``batch`` (None: not timed)
    ms_per_frame: float | None
    batch: int
    #: "backend precision" -> ms per frame of every candidate measured (None: not measured)
    measured: dict[str, float | None]
    #: why candidates were left out (conversion failed, verification refused, ...)
    notes: list[str] = field(default_factory=list)
    #: the chosen reduced precision's verification (None for fp32)
    verification: dict[str, Any] | None = None
    #: ISO time of the measurement
    decided_at: str = ""
    #: seconds the measurement took (conversions included)
    seconds: float = 0.0
    #: True when read back from the cache rather than measured now
    cached: bool = False

    def summary(self) -> str:
        """One line: the choice, its latency, the others' figures."""
        others = ", ".join(
            f"{name} {ms:.1f}" if ms is not None else f"{name} -"
            for name, ms in self.measured.items()
        )
        if self.ms_per_frame is None:
            return (
                f"{self.side} encoder: {self.backend} {self.precision} ({'; '.join(self.notes)})"
            )
        when = f"measured in {self.seconds:.1f} s"
        if self.cached:
            when = f"measured {self.decided_at}"
        return (
            f"{self.side} encoder: {self.backend} {self.precision}, {self.ms_per_frame:.2f} "
            f"ms/frame at batch {self.batch} ({when}; candidates, ms/frame: {others})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        try:
            return cls(**{**data, "cached": True})
        except TypeError as err:
            raise BackendError(f"not an auto decision: {err}") from err


def decision_path(root: Path, device: str, side: str, batch: int, restrict: str) -> Path:
    name = f"{device.replace(':', '')}-{side}-b{batch}-{restrict}.json"
    return root / AUTO_FOLDER / name


def _as_read_back(key: dict[str, Any]) -> Any:
    """``key`` as JSON gives it back (tuples become lists), for comparison."""
    return json.loads(json.dumps(key, sort_keys=True))


def read_decision(path: Path, key: dict[str, Any]) -> Decision | None:
    """The decision stored at ``path`` if it was made for ``key``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != _as_read_back(key):
        if path.exists():
            log.info("auto: %s was measured for another machine, model or set of candidates; "
                     "measuring again", path.name)  # fmt: skip
        return None
    try:
        return Decision.from_dict(data["decision"])
    except (BackendError, KeyError, TypeError):
        return None


def write_decision(path: Path, key: dict[str, Any], decision: Decision) -> None:
    """Keep ``decision``; a read-only cache only costs measuring again next time."""
    text = json.dumps({"key": key, "decision": decision.to_dict()}, indent=1, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text + "\n")
    except OSError as err:
        log.warning("auto: cannot keep the measurement in %s: %s", path, err)


def list_decisions(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file name, decision) of every decision kept under ``root`` (for model-info)."""
    folder = root / AUTO_FOLDER
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append((path.name, dict(data["decision"])))
    return out


def verification_path(root: Path, name: str) -> Path:
    return root / AUTO_FOLDER / "verified" / f"{name}.json"


def read_verification_record(path: Path, key: dict[str, Any]) -> Verification | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != _as_read_back(key):
            return None
        return Verification.from_dict(data["verification"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, BackendError):
        return None


def write_verification_record(path: Path, key: dict[str, Any], result: Verification) -> None:
    text = json.dumps({"key": key, "verification": result.to_dict()}, indent=1, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text + "\n")
    except OSError as err:
        log.warning("auto: cannot keep the verification in %s: %s", path, err)
