"""Compute device and numeric precision, chosen once and checked up front.

A request that cannot be honoured (``cuda`` on a machine without a GPU, fp16 on a CPU) is an
error at start-up instead of a silent fallback, so that a node never runs ten times slower
than its operator believes. ``auto`` is the only spec that adapts to the machine: on a CPU
it picks bf16 only where the CPU has bf16 matrix units (read from the CPU's flags, never
assumed), because without them bf16 is emulated and several times slower than fp32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from liploc_ros.config_fields import Choice
from liploc_ros.errors import DeviceError

log = logging.getLogger(__name__)


class Precision(Choice):
    """Numeric precision of the encoders (``precision`` of the nodes and the CLI)."""

    #: the fastest verified precision (backend auto, :mod:`liploc_ros.model.backends.auto`);
    #: with backend torch fp16 on CUDA, bf16 on a CPU with bf16 units, else fp32
    AUTO = "auto"
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    #: post-training quantized (backends openvino / onnxruntime), calibrated and verified
    INT8 = "int8"


PRECISIONS: tuple[str, ...] = Precision.values()

_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

#: where Linux describes the CPU; tests point it at a fake file
CPUINFO_PATH = Path("/proc/cpuinfo")
#: x86 flags of bf16 matrix units (Sapphire Rapids AMX, Cooper Lake / Zen 4 AVX512-BF16)
_X86_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
#: the aarch64 "Features" entry of the BF16 extension (BFMMLA, ARMv8.6: Graviton 3, ...)
_ARM_BF16_FLAG = "bf16"
#: x86 flags of 8-bit dot-product units (VNNI: Cascade Lake, Ice Lake, Zen 4, Alder Lake's
#: AVX-VNNI; AMX-INT8); without them u8 x s8 products saturate in 16 bits (NNCF's overflow fix)
_X86_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
#: the aarch64 "Features" entry of the 8-bit dot product (SDOT/UDOT)
_ARM_DOT_FLAG = "asimddp"
#: precisions below fp32: a backend runs them only after a check against fp32 where auto picks
REDUCED_PRECISIONS: tuple[str, ...] = ("fp16", "bf16", "int8")


def read_cpu_flags(path: Path | None = None) -> frozenset[str] | None:
    """The CPU's feature flags (x86 ``flags`` / aarch64 ``Features``), None if unreadable."""
    try:
        text = (path or CPUINFO_PATH).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def cpu_flags_have_bf16(flags: Iterable[str]) -> bool:
    """Whether a set of CPU flags includes bf16 matrix support."""
    found = set(flags)
    return bool(found & _X86_BF16_FLAGS) or (
        _ARM_BF16_FLAG in found and platform.machine().lower() in ("aarch64", "arm64")
    )


def cpu_flags_have_vnni(flags: Iterable[str]) -> bool:
    """Whether a set of CPU flags includes 8-bit dot-product units (no INT8 overflow)."""
    found = set(flags)
    return bool(found & _X86_VNNI_FLAGS) or (
        _ARM_DOT_FLAG in found and platform.machine().lower() in ("aarch64", "arm64")
    )


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product units (read from /proc/cpuinfo, never assumed);
    False where the flags cannot be read, which errs towards the overflow-safe INT8 build."""
    flags = read_cpu_flags()
    return flags is not None and cpu_flags_have_vnni(flags)


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matrix products natively (so bf16 beats fp32).

    Linux: the flags in /proc/cpuinfo; elsewhere torch's own CPU probe where it has one.
    oneDNN (torch.backends.mkldnn) must be there too: it holds torch's fast bf16 kernels.
    Cached; tests call ``cpu_has_bf16.cache_clear()`` after faking the flags.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    flags = read_cpu_flags()
    if flags is not None:
        return cpu_flags_have_bf16(flags)
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as err:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} asked for, but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use 'cpu' or 'auto'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {spec!r} asked for, but only {count} CUDA device(s) exist")
        return device
    raise DeviceError(f"unsupported device type {device.type!r} in {spec!r}; use cpu or cuda")


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """The concrete precision ("fp32", "fp16" or "bf16") to run with on ``device``.

    ``auto`` is fp16 on CUDA (the encoders lose nothing measurable in retrieval and run about
    twice as fast); on a CPU it is bf16 where the CPU has bf16 matrix units (AMX,
    AVX512-BF16, Arm BF16: about twice as fast, embedding cosine > 0.999 to fp32) and fp32
    elsewhere. An explicit bf16 on a CPU without them is honoured (it computes the same
    numbers, emulated) with a warning that it is slower than fp32.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "int8":
        raise DeviceError(
            "int8 runs in backend openvino or onnxruntime (post-training quantized, see "
            "`liploc export --precision int8`), not in torch; use backend auto, openvino or "
            "onnxruntime"
        )
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"fp16 needs a CUDA device, not {device}; use fp32 (or bf16 on CPU)")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        _warn_emulated_bf16()
    if (
        precision == "bf16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported(including_emulation=False)
    ):
        raise DeviceError(f"bf16 is not supported by {torch.cuda.get_device_name(device)}")
    return precision


@functools.lru_cache(maxsize=1)
def _warn_emulated_bf16() -> None:
    log.warning(
        "bf16 asked for on a CPU without bf16 matrix units (no amx_bf16 / avx512_bf16 flag): "
        "it is emulated and slower than fp32; precision auto picks fp32 on this CPU"
    )


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str = "auto") -> Iterator[str]:
    """Run the block in ``precision`` on ``device`` (mixed precision autocast or plain fp32).

    Yields the concrete precision in effect.
    """
    device = resolve_device(device)
    chosen = resolve_precision(device, precision)
    if chosen == "fp32":
        yield chosen
        return
    with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[chosen]):
        yield chosen


@contextlib.contextmanager
def inference(device: torch.device | str, precision: str = "auto") -> Iterator[str]:
    """``torch.inference_mode`` plus :func:`autocast`: the context every embedding runs in."""
    with torch.inference_mode(), autocast(device, precision) as chosen:
        yield chosen
