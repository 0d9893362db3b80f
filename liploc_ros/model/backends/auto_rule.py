"""The rule of ``backend: auto`` / ``precision: auto``, as pure functions of what the machine
offers (so that tests can fake CPU flags and installed runtimes).

Which configurations are *candidates* for one encoder (``candidates``):

1. torch at fp32 (the reference, and what every other candidate is checked against), and at
   each precision torch runs natively on the device: bf16 on a CPU with bf16 units (AMX,
   AVX512-BF16), fp16 (and bf16 where the GPU has it) on CUDA;
2. one conversion runtime: the first of :data:`RUNTIME_PREFERENCE` (OpenVINO, then ONNX
   Runtime) that is installed and runs on the device, at its lowest float precision there
   (OpenVINO: bf16 on a CPU with bf16 units, else fp32). One, because each costs a conversion
   on first use (10 to 60 s for a ViT) and on x86 CPUs OpenVINO's kernels have been at least as
   fast as ONNX Runtime's at every precision measured (bench_backends). On CUDA, ONNX Runtime
   only with TensorRT at fp16 and only where its engine is already built (a first build
   takes minutes);
3. every backend's **int8** where a verified INT8 model of this encoder is in the cache
   (``liploc export --precision int8``) or a calibration source was given.

An explicit backend keeps only that backend's configurations (all of its native float
precisions, and its int8 as in 3.); an explicit precision keeps only that precision.

How measured candidates are *ranked* (``rank``): by milliseconds per frame; those within
:data:`TIE` (5 %) of the fastest count as equally fast, and among them the higher precision
(fp32, then bf16 / fp16, then int8), then torch, then the registry order wins, so that
noise never trades accuracy for nothing. :mod:`.auto` walks the ranking and takes the first
candidate that passes its verification (fp32 needs none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: conversion runtimes, in the order auto prefers them
RUNTIME_PREFERENCE: tuple[str, ...] = ("openvino", "onnxruntime")
#: relative speed difference below which two candidates count as equally fast
TIE = 0.05
#: higher precision first (the tie-break)
PRECISION_RANK = {"fp32": 0, "bf16": 1, "fp16": 1, "int8": 2}
BACKEND_RANK = {"torch": 0, "openvino": 1, "onnxruntime": 2}

Config = tuple[str, str]


@dataclass(frozen=True)
class Offer:
    """What the machine offers one encoder."""

    #: "cpu" or "cuda"
    device_type: str
    #: each installed backend's native precisions on the device, fastest first
    native: Mapping[str, tuple[str, ...]]
    #: backends with a verified INT8 model of this encoder cached (or being calibrated)
    int8_ready: frozenset[str] = frozenset()
    #: "backend:precision" whose slow first build is already done (TensorRT engines)
    prebuilt: frozenset[str] = frozenset()
    #: the backends in registry order
    order: tuple[str, ...] = field(default=("torch", "openvino", "onnxruntime"))


def _floats(precisions: Iterable[str]) -> list[str]:
    return [p for p in precisions if p != "int8"]


def _runtime_choice(offer: Offer) -> Config | None:
    """The one conversion runtime auto tries, at its lowest float precision (rule 2)."""
    for name in RUNTIME_PREFERENCE:
        floats = _floats(offer.native.get(name, ()))
        if not floats:
            continue
        lowest = floats[0]
        if offer.device_type == "cuda" and f"{name}:{lowest}" not in offer.prebuilt:
            continue
        return name, lowest
    return None


def candidates(offer: Offer, backend: str = "auto", precision: str = "auto") -> list[Config]:
    """The (backend, precision) pairs auto measures for one encoder (module docstring)."""
    found: list[Config] = []
    if backend in ("auto", "torch") and "torch" in offer.native:
        found += [("torch", p) for p in _floats(offer.native["torch"])]
    if backend == "auto":
        runtime = _runtime_choice(offer)
        if runtime is not None:
            found.append(runtime)
    elif backend != "torch":
        found += [(backend, p) for p in _floats(offer.native.get(backend, ()))]
    for name in offer.order:
        usable = name in offer.int8_ready and "int8" in offer.native.get(name, ())
        if backend in ("auto", name) and usable:
            found.append((name, "int8"))
    if precision != "auto":
        found = [c for c in found if c[1] == precision]
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda c: (offer.order.index(c[0]) if c[0] in offer.order else 99,
                                         PRECISION_RANK.get(c[1], 9)))  # fmt: skip


def rank(measured: Mapping[Config, float]) -> list[Config]:
    """Candidates, best first (module docstring); ``measured``: ms per frame of each."""
    if not measured:
        return []
    fastest = min(measured.values())

    def tie_break(config: Config) -> tuple[int, int]:
        return PRECISION_RANK.get(config[1], 9), BACKEND_RANK.get(config[0], 9)

    tied = sorted((c for c, ms in measured.items() if ms <= fastest * (1 + TIE)), key=tie_break)
    others = (c for c in measured if c not in tied)
    rest = sorted(others, key=lambda c: (measured[c], tie_break(c)))
    return tied + rest
