"""``backend: auto``: the fastest verified configuration for this model on this machine.

What it does for each encoder, on the encoder's first use (the node's warm-up frame, the
map builder's first batch), so that a node converts only its camera encoder and a map
builder only its LiDAR encoder:

1. **Small encoders stay on torch**: an encoder under :data:`SMALL_GFLOPS` per frame
   (counted, not timed: :mod:`.flops`; the demo model 0.03, ViT-S/16 at 224 px 8.5) runs in
   milliseconds in torch, and a conversion (seconds) would cost more start-up than it could
   ever save. On a CPU it runs fp32: at that size a reduced precision's casts cost more than
   its matrix units save (bench_backends, demo model on an AMX CPU, batch 1: torch bf16 6.0
   ms per frame against fp32's 4.95) and it would need a recall check; on CUDA, fp16
   (:func:`~liploc_ros.device.resolve_precision`). Where both are small, auto *is* that
   torch runner.
2. **Candidates** from the CPU's flags, the GPU and what is installed (:mod:`.auto_rule`,
   the rule in full): torch fp32 and torch's reduced precisions, one conversion runtime
   (OpenVINO, else ONNX Runtime) at its lowest float precision, and every verified INT8
   model in the cache (or calibrated now, given a calibration source).
3. **Measured**: each candidate (converted once, cached) runs the encoder at the probe
   batch (the Embedder's batch size, at most :data:`PROBE_BATCH`): a first call, a timed
   warm-up call, then up to :data:`ROUNDS` timed calls interleaved across the candidates
   within :data:`BUDGET_S` (one already 3x slower than the fastest is not timed further); its
   figure is the median ms per frame. One that fails to convert or load is left out, with
   the reason.
4. **Ranked** (:func:`.auto_rule.rank`: fastest, ties within 5 % to the higher precision)
   and **verified**: from the top, fp32 is taken as it is; a reduced precision only once it
   passes the recall check (:mod:`.acceptance`) on the calibration source's held-out frames,
   else on :data:`~.calibration.DEFAULT_VERIFICATION_SPEC` (INT8 models were checked when
   they were built). A refused one is skipped with its figures.
5. **Kept** (:mod:`.auto_store`) until the machine, the model or the candidates change; the
   choice and its latency are logged, in ``describe()`` (the node's start-up line and
   /diagnostics) and in ``liploc model-info``.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liploc_ros.device import resolve_device, resolve_precision
from liploc_ros.errors import DeviceError, LiplocError, VerificationError
from liploc_ros.model.backends.acceptance import verify_runner
from liploc_ros.model.backends.auto_rule import Config, Offer, candidates, rank
from liploc_ros.model.backends.auto_store import (
    Decision,
    decision_path,
    read_decision,
    read_verification_record,
    verification_path,
    write_decision,
    write_verification_record,
)
from liploc_ros.model.backends.base import SIDES, EncoderRunner, Side, input_size, joined
from liploc_ros.model.backends.cache import cache_folder, graph_key, model_cache_root
from liploc_ros.model.backends.calibration import CalibrationSet, default_verification_set
from liploc_ros.model.backends.flops import encoder_gflops
from liploc_ros.model.backends.int8 import REFERENCE_FOLDER, no_int8_message
from liploc_ros.model.backends.machine import machine_profile
from liploc_ros.model.backends.torch_backend import TorchRunner
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

NAME = "auto"
#: an encoder under this many GFLOPs per frame stays in torch (rule 1)
SMALL_GFLOPS = 1.0
#: the largest batch candidates are timed at
PROBE_BATCH = 8
ROUNDS = 5
#: a candidate this many times slower than the fastest in its warm-up is not timed further
OUT_OF_RACE = 3.0
#: seconds of timed calls across all candidates of one encoder (after the warm-ups)
BUDGET_S = 3.0
#: bump when the rule changes meaning: kept decisions are then measured again
RULE_VERSION = 1


def probe_input(loaded: LoadedModel, side: Side, batch: int) -> torch.Tensor:
    """A fixed random input batch of ``side`` (speed does not depend on the pixels)."""
    size = input_size(loaded, side)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def measure(
    runners: Mapping[Config, EncoderRunner], side: Side, x: torch.Tensor
) -> dict[Config, float]:
    """Median ms per frame of each runner on ``x``: a first call (allocations, kernel
    selection), a timed warm-up call, then timed calls interleaved across the runners
    within :data:`BUDGET_S`; a runner more than :data:`OUT_OF_RACE` times slower than the
    fastest in its warm-up cannot win and keeps that one figure."""
    times: dict[Config, list[float]] = {}
    for config, runner in runners.items():
        runner.encode(side, x)
        t0 = time.perf_counter()
        runner.encode(side, x)
        times[config] = [time.perf_counter() - t0]
    fastest = min(t[0] for t in times.values())
    racing = {c: r for c, r in runners.items() if times[c][0] <= OUT_OF_RACE * fastest}
    start = time.perf_counter()
    for round_ in range(ROUNDS):
        if round_ >= 1 and time.perf_counter() - start > BUDGET_S:
            break
        for config, runner in racing.items():
            t0 = time.perf_counter()
            runner.encode(side, x)
            times[config].append(time.perf_counter() - t0)
    return {c: 1e3 * statistics.median(t) / len(x) for c, t in times.items()}


def _module(name: str) -> Any:
    import importlib

    from liploc_ros.model.backends import BACKENDS

    return importlib.import_module(BACKENDS[name].module)


def offer(
    loaded: LoadedModel,
    device: torch.device,
    side: Side,
    cache_dir: Path | None,
    calibration: CalibrationSet | None,
) -> Offer:
    """What this machine offers ``side``'s encoder (installed runtimes, INT8 in the cache)."""
    from liploc_ros.model.backends import available_backends

    native: dict[str, tuple[str, ...]] = {}
    ready: set[str] = set()
    for name in available_backends():
        try:
            module = _module(name)
            native[name] = tuple(module.native_precisions(device))
            if "int8" in native[name] and (
                calibration is not None or module.has_cached_int8(loaded, side, cache_dir)
            ):
                ready.add(name)
        except (ImportError, LiplocError, RuntimeError, OSError) as err:
            log.debug("auto: backend %s left out: %s", name, err)
    engine = cache_folder(loaded, "onnxruntime", "fp32", cache_dir, side=side) / "tensorrt"
    prebuilt = {"onnxruntime:fp16"} if engine.is_dir() and any(engine.iterdir()) else set()
    return Offer(device.type, native, frozenset(ready), frozenset(prebuilt))


class AutoRunner:
    """Each encoder in the configuration auto chose for it (chosen on first use)."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        *,
        backend: str,
        precision: str,
        batch_size: int,
        cache_dir: Path | None,
        calibration: CalibrationSet | None,
        torch_runner: TorchRunner | None,
        small: Mapping[Side, float],  # GFLOPs of the small sides
    ) -> None:
        self.loaded = loaded
        self.device = device
        self._want = (backend, precision)
        self._batch = max(1, min(batch_size, PROBE_BATCH))
        self._cache_dir = cache_dir
        self._calibration = calibration
        self._torch = torch_runner
        self._small = dict(small)
        self._lock = threading.Lock()
        self._runners: dict[Side, EncoderRunner] = {}
        self.decisions: dict[Side, Decision] = {}

    @property
    def backend(self) -> str:
        chosen = {s: r.backend for s, r in self._runners.items()}
        return joined(chosen) if chosen else NAME

    @property
    def precision(self) -> str:
        chosen = {s: r.precision for s, r in self._runners.items()}
        return joined(chosen) if chosen else self._want[1]

    def prepare(self, sides: tuple[Side, ...] = SIDES) -> None:
        """Choose for ``sides`` now rather than on their first use."""
        for side in sides:
            self._runner(side)

    def encode(self, side: Side, batch: torch.Tensor) -> np.ndarray:
        return self._runner(side).encode(side, batch)

    def describe(self) -> str:
        if not self.decisions:
            return f"auto ({self._want[0]} / {self._want[1]}), not chosen yet"
        return "auto: " + "; ".join(d.summary() for d in self.decisions.values())

    def _runner(self, side: Side) -> EncoderRunner:
        with self._lock:
            if side not in self._runners:
                runner, decision = self._choose(side)
                self._runners[side] = runner
                self.decisions[side] = decision
                log.info("auto: %s", decision.summary())
            return self._runners[side]

    # -- the choice ----------------------------------------------------------------------
    def _key(self, side: Side, options: list[Config], int8: dict[str, str]) -> dict[str, Any]:
        calibration = self._calibration.id if self._calibration is not None else None
        return {
            "rule": RULE_VERSION,
            "model": graph_key(self.loaded, NAME, self._want[1]),
            "side": side,
            "device": str(self.device),
            "batch": self._batch,
            "want": list(self._want),
            "machine": machine_profile(self.device).to_dict(),
            "candidates": [f"{b}:{p}" for b, p in options],
            "int8_models": int8,
            "calibration": calibration,
        }

    def _int8_models(self, side: Side, options: list[Config]) -> dict[str, str]:
        """The INT8 folder each INT8 candidate would load (part of the decision's key)."""
        out = {}
        for backend, precision in options:
            if precision == "int8" and self._calibration is None:
                module = _module(backend)
                found = module.cached_int8(
                    self.loaded, module.int8_recipe(self.loaded, side, self._cache_dir), side,
                    self._cache_dir)  # fmt: skip
                out[backend] = found[0][0].parent.name if found else ""
        return out

    def _build(self, config: Config, side: Side) -> EncoderRunner:
        from liploc_ros.model.backends import create_runner

        backend, precision = config
        if backend == "torch" and self._torch is not None and self._torch.precision == precision:
            return self._torch
        calibration = self._calibration if precision == "int8" else None
        runner = create_runner(backend, self.loaded, device=self.device, precision=precision,
                               cache_dir=self._cache_dir, sides=(side,),
                               calibration=calibration)  # fmt: skip
        if runner.precision != precision:  # an INT8 model refused: the backend ran fp32
            raise VerificationError(f"{backend} int8 was refused (see the warning above)")
        return runner

    def _choose(self, side: Side) -> tuple[EncoderRunner, Decision]:
        if side in self._small and self._torch is not None:
            return self._torch, self._small_decision(side)
        if self._torch is None and self._want[1] != "int8" and self._want[0] in ("auto", "torch"):
            precision = resolve_precision(self.device, self._want[1])
            self._torch = TorchRunner(self.loaded, self.device, precision, ())
        options = candidates(
            offer(self.loaded, self.device, side, self._cache_dir, self._calibration),
            *self._want,
        )
        if not options:
            options = [("torch", "fp32")]
        key = self._key(side, options, self._int8_models(side, options))
        root = model_cache_root(self.loaded, self._cache_dir)
        path = decision_path(root, str(self.device), side, self._batch, "-".join(self._want))
        kept = read_decision(path, key)
        if kept is not None:
            try:
                return self._build((kept.backend, kept.precision), side), kept
            except LiplocError as err:
                log.warning("auto: the kept choice %s %s does not load (%s); measuring again",
                            kept.backend, kept.precision, err)  # fmt: skip
        decision, runner = self._measure(side, options)
        write_decision(path, key, decision)
        return runner, decision

    def _small_decision(self, side: Side) -> Decision:
        assert self._torch is not None
        note = f"small encoder ({self._small[side]:.3f} GFLOP/frame): kept in torch"
        return Decision(side, "torch", self._torch.precision, None, 1, {}, [note],
                        decided_at=_now())  # fmt: skip

    def _measure(self, side: Side, options: list[Config]) -> tuple[Decision, EncoderRunner]:
        t0 = time.perf_counter()
        notes: list[str] = []
        runners: dict[Config, EncoderRunner] = {}
        for config in options:
            try:
                runners[config] = self._build(config, side)
            except LiplocError as err:
                notes.append(f"{config[0]} {config[1]} left out: {err}")
                log.warning("auto: %s", notes[-1])
        if not runners:
            runners[("torch", "fp32")] = TorchRunner(self.loaded, self.device, "fp32", (side,))
        measured = measure(runners, side, probe_input(self.loaded, side, self._batch))
        chosen, verification = ("torch", "fp32"), None
        for config in rank(measured):
            if config[1] == "fp32":
                chosen = config
                break
            result = self._verified(config, runners[config], side)
            if result is None or result.passed:
                chosen, verification = config, result
                break
            notes.append(f"{config[0]} {config[1]} refused: {result.summary()}")
        runner = runners.get(chosen) or TorchRunner(self.loaded, self.device, "fp32", (side,))
        decision = Decision(
            side=side,
            backend=chosen[0],
            precision=chosen[1],
            ms_per_frame=round(measured.get(chosen, float("nan")), 3),
            batch=self._batch,
            measured={
                f"{b} {p}": round(measured[(b, p)], 3) if (b, p) in measured else None
                for b, p in options
            },
            notes=notes,
            verification=verification.to_dict() if verification is not None else None,
            decided_at=_now(),
            seconds=round(time.perf_counter() - t0, 1),
        )
        return decision, runner

    def _verified(self, config: Config, runner: EncoderRunner, side: Side) -> Any:
        """The verification of a reduced precision (INT8: the one made at its build)."""
        if config[1] == "int8":
            return self._int8_verification(config[0], side)
        vset = self._calibration or default_verification_set()
        root = model_cache_root(self.loaded, self._cache_dir)
        key = {
            "model": graph_key(self.loaded, config[0], config[1], side=side),
            "set": vset.id,
            "machine": machine_profile(self.device).key(),
        }
        path = verification_path(root, f"{config[0]}-{config[1]}-{side}-{vset.id}")
        result = read_verification_record(path, key)
        if result is None:
            result = verify_runner(runner, side, self.loaded, vset, root / REFERENCE_FOLDER)
            write_verification_record(path, key, result)
        return result

    def _int8_verification(self, backend: str, side: Side) -> Any:
        module = _module(backend)
        recipe = module.int8_recipe(self.loaded, side, self._cache_dir)
        if self._calibration is not None:
            from liploc_ros.model.backends.acceptance import read_verification
            from liploc_ros.model.backends.int8 import int8_folder

            folder = int8_folder(self.loaded, recipe, side, self._calibration.id, self._cache_dir)
            return read_verification(folder)
        found = module.cached_int8(self.loaded, recipe, side, self._cache_dir)
        return found[0][1] if found else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def create(
    loaded: LoadedModel,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: Path | None = None,
    sides: tuple[Side, ...] = SIDES,
    calibration: CalibrationSet | None = None,
    backend: str = "auto",
    batch_size: int = 1,
) -> EncoderRunner:
    """auto's runner (see the module's docstring); ``backend`` restricts the candidates to
    one backend, an explicit ``precision`` to one precision."""
    target = resolve_device(device)
    if precision == "int8" and calibration is None:
        for side in sides:  # refused now rather than on the first frame
            if not candidates(offer(loaded, target, side, cache_dir, None), backend, "int8"):
                raise DeviceError(no_int8_message(loaded, backend))
    torch_runner = None
    small: dict[Side, float] = {}
    if precision != "int8" and backend in ("auto", "torch"):
        sizes = {side: encoder_gflops(loaded, side) for side in sides}
        small = {side: g for side, g in sizes.items() if g < SMALL_GFLOPS}
    if small:
        cpu_auto = target.type == "cpu" and precision == "auto"
        kept = "fp32" if cpu_auto else resolve_precision(target, precision)
        torch_runner = TorchRunner(loaded, target, kept, ())
        if set(small) == set(sides):
            shown = ", ".join(f"{s} {g:.3f}" for s, g in small.items())
            torch_runner.note = f" (auto: small encoders, GFLOP/frame {shown})"
            return torch_runner
    return AutoRunner(
        loaded, target, backend=backend, precision=precision, batch_size=batch_size,
        cache_dir=cache_dir, calibration=calibration, torch_runner=torch_runner, small=small,
    )  # fmt: skip
