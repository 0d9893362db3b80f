"""``--device``, ``--precision`` and ``--backend``: how a command runs its encoders.

Every command that runs an encoder declares them here, once, with the same spellings, help
and defaults (a test walks every subcommand's parser for them). No torch import: ``--help``
stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["DEFAULTS", "add_encoder_arguments", "encoder_options"]

#: the defaults, as the nodes' parameters and the library take them
DEFAULTS = {"device": "auto", "precision": "auto", "backend": "auto"}
_HELP = {
    "device": "auto (CUDA when there is one), cpu, cuda or cuda:N",
    "precision": "auto (the fastest verified here; with backend torch: fp16 on CUDA, bf16 on a "
    "CPU with bf16 units, else fp32), fp32, fp16, bf16 or int8 (openvino / onnxruntime, from "
    "`liploc export --precision int8`)",
    "backend": "auto (the fastest verified configuration for this model on this machine, "
    "measured once and cached), torch, openvino or onnxruntime (pip extras "
    "liploc_ros[openvino] / [onnx])",
}


def add_encoder_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    defaults: bool = True,
    node: bool = False,
) -> None:
    """The three flags on ``parser``. ``defaults=False``: left out, they stay None (a config
    file's value then applies); ``node``: they set the node parameters of the same names."""
    for name, default in DEFAULTS.items():
        where = f" (parameter {name})" if node else ""
        shown = f"; default {default}" if defaults or node else ""
        parser.add_argument(
            f"--{name}",
            default=default if defaults else None,
            help=f"{_HELP[name]}{shown}{where}",
        )


def encoder_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given (not None), as keyword arguments of ``load_embedder``."""
    return {name: value for name in DEFAULTS if (value := getattr(args, name, None)) is not None}
