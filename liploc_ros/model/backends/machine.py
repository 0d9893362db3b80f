"""What the machine offers the encoders: the CPU's relevant flags, the runtimes installed.

The automatic choice (:mod:`.auto`) is measured once per model and *machine*, and this module
says what "machine" means: the CPU model and the flags that decide which kernels exist
(AVX2, AVX-512, VNNI, bf16, AMX), the thread count, the GPU, and the versions of the runtimes.
A change to any of them makes a cached choice stale. The same line of flags is printed by
every benchmark beside its figures, so that a figure always says which units produced it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import platform
from dataclasses import asdict, dataclass
from typing import Any

import torch

from liploc_ros import device as device_mod

#: the flags that change which encoder kernels a CPU has, in the order they are printed
RELEVANT_FLAGS: tuple[str, ...] = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "asimddp",
    "bf16",
    "i8mm",
)
#: distributions whose version is part of a cached choice (installed or not)
RUNTIMES: tuple[str, ...] = ("torch", "openvino", "onnxruntime", "nncf", "tensorrt")


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        text = device_mod.CPUINFO_PATH.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("model name", "cpu model", "hardware"):
            return value.strip()
    return platform.processor() or platform.machine()


def relevant_cpu_flags() -> tuple[str, ...]:
    """The :data:`RELEVANT_FLAGS` this CPU has (empty where the flags cannot be read)."""
    flags = device_mod.read_cpu_flags() or frozenset()
    return tuple(f for f in RELEVANT_FLAGS if f in flags)


def runtime_versions() -> dict[str, str]:
    """The installed version of each of :data:`RUNTIMES` ("" where it is not installed)."""
    out = {}
    for name in RUNTIMES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = ""
    # onnxruntime-gpu installs the same module under another distribution name
    if not out["onnxruntime"]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out["onnxruntime"] = importlib.metadata.version("onnxruntime-gpu")
    return out


@dataclass(frozen=True)
class MachineProfile:
    """One machine as far as encoder speed is concerned."""

    cpu: str
    flags: tuple[str, ...]
    bf16_units: bool
    vnni: bool
    threads: int
    gpu: str
    runtimes: dict[str, str]

    def key(self) -> str:
        """16 hex digits that change whenever anything here changes."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_profile(device: torch.device | None = None) -> MachineProfile:
    """This machine's profile; ``device`` a CUDA device adds the GPU's name."""
    gpu = ""
    if device is not None and device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
    flags = device_mod.read_cpu_flags() or frozenset()
    return MachineProfile(
        cpu=cpu_model_name(),
        flags=relevant_cpu_flags(),
        bf16_units=device_mod.cpu_has_bf16(),
        vnni=device_mod.cpu_flags_have_vnni(flags),
        threads=torch.get_num_threads(),
        gpu=gpu,
        runtimes=runtime_versions(),
    )


def flags_line() -> str:
    """One line for benchmarks: the CPU, its relevant flags, threads and runtimes."""
    profile = machine_profile()
    runtimes = ", ".join(f"{k} {v}" for k, v in profile.runtimes.items() if v)
    flags = " ".join(profile.flags) or "none of " + " ".join(RELEVANT_FLAGS[:4])
    return (
        f"CPU {profile.cpu}; flags: {flags}; bf16 units: {profile.bf16_units}, VNNI: "
        f"{profile.vnni}; {profile.threads} threads; {runtimes}"
    )
