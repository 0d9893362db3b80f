"""Compute device and numeric precision, chosen once and checked up front.

A request that cannot be honoured (``cuda`` on a machine without a GPU, fp16 on a CPU) is an
error at start-up instead of a silent fallback, so that a node never runs ten times slower
than its operator believes. ``auto`` is the only spec that adapts to the machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from liploc_ros.errors import DeviceError

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")

_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
    twice as fast) and fp32 on CPU, where fp16 is slow. bf16 on CPU is honoured only when
    asked for explicitly.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"fp16 needs a CUDA device, not {device}; use fp32 (or bf16 on CPU)")
    if (
        precision == "bf16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported(including_emulation=False)
    ):
        raise DeviceError(f"bf16 is not supported by {torch.cuda.get_device_name(device)}")
    return precision


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
