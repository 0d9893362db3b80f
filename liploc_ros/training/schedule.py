"""The learning-rate schedule of a training run.

Two rules: the authors' ReduceLROnPlateau on the validation loss, stepped once per epoch,
and a per-step linear warm-up plus cosine decay for runs with a fixed budget of epochs
(a short run whose validation loss keeps falling never triggers the plateau rule, so it
would end at its initial rate). Both keep their state as plain numbers, so a checkpoint
stores it as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from liploc_ros.errors import CheckpointError
from liploc_ros.training.config import OptimSection


def cosine_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """The multiplier of the initial rate at optimiser step ``step`` of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class _CosineFactor:
    """Picklable, and with no state of its own: LambdaLR's state is its step count."""

    total: int
    warmup: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        return cosine_factor(step, self.total, self.warmup, self.min_ratio)


class LrSchedule:
    """Steps the underlying torch scheduler at the moments its rule needs."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, optim: OptimSection, *, epochs: int, steps: int
    ) -> None:
        self.name = optim.scheduler
        self.torch: LambdaLR | ReduceLROnPlateau
        if self.name == "cosine":
            total = epochs * steps
            warmup = min(round(optim.warmup_epochs * steps), total)
            factor = _CosineFactor(total, warmup, optim.min_lr_ratio)
            self.torch = LambdaLR(optimizer, factor)
        else:
            self.torch = ReduceLROnPlateau(
                optimizer, mode="min", factor=optim.plateau_factor,
                patience=optim.plateau_patience,
            )  # fmt: skip

    def after_step(self) -> None:
        """Call after every optimiser step."""
        if isinstance(self.torch, LambdaLR):  # the "cosine" rule
            self.torch.step()

    def after_epoch(self, monitored: float) -> None:
        """Call after every epoch with the loss the plateau rule watches."""
        if isinstance(self.torch, ReduceLROnPlateau):  # the "plateau" rule
            self.torch.step(monitored)

    def state_dict(self) -> dict[str, Any]:
        state = self.torch.state_dict()
        state.pop("lr_lambdas", None)  # rebuilt from the config, not saved
        return {**state, "rule": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        rule = state.pop("rule", "plateau")  # states saved before the cosine rule existed
        if rule != self.name:
            raise CheckpointError(
                f"the saved run used the {rule} learning-rate rule, this config asks for "
                f"{self.name} (optim.scheduler)"
            )
        if isinstance(self.torch, LambdaLR):  # the "cosine" rule
            state = {**state, "lr_lambdas": [None] * len(self.torch.lr_lambdas)}
        self.torch.load_state_dict(state)
