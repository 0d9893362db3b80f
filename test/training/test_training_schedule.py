"""The learning-rate rules: the authors' plateau rule and the warm-up plus cosine decay."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from liploc_ros.errors import CheckpointError, ConfigError
from liploc_ros.training.config import OptimSection
from liploc_ros.training.schedule import LrSchedule, cosine_factor


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_cosine_factor_warms_up_then_decays_to_the_floor():
    total, warmup = 100, 10
    factors = [cosine_factor(s, total, warmup, 0.1) for s in range(total + 1)]
    assert factors[0] == pytest.approx(0.1)  # first warm-up step: 1/10
    assert factors[9] == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(factors[:10]))
    decay = factors[10:]
    assert all(a >= b for a, b in pairwise(decay))
    assert factors[55] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert factors[100] == pytest.approx(0.1)
    assert cosine_factor(250, total, warmup, 0.1) == pytest.approx(0.1)  # past the end


def test_cosine_schedule_steps_per_optimiser_step():
    opt = _optimizer(0.1)
    schedule = LrSchedule(opt, OptimSection(scheduler="cosine"), epochs=2, steps=5)
    seen = []
    for _ in range(2):
        for _ in range(5):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.after_step()
        schedule.after_epoch(1.0)  # ignored by the cosine rule
    want = [0.1 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)]
    assert seen == pytest.approx(want)


def test_plateau_schedule_ignores_steps_and_cuts_on_a_stalled_loss():
    opt = _optimizer(0.1)
    schedule = LrSchedule(
        opt, OptimSection(plateau_patience=0, plateau_factor=0.5), epochs=3, steps=4
    )
    for _ in range(4):
        schedule.after_step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    schedule.after_epoch(1.0)
    schedule.after_epoch(1.0)  # no improvement, patience 0: halve
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_state_round_trips_as_json_and_names_its_rule():
    import json

    cosine = OptimSection(scheduler="cosine", warmup_epochs=1.0)
    opt = _optimizer()
    schedule = LrSchedule(opt, cosine, epochs=3, steps=4)
    for _ in range(6):
        opt.step()
        schedule.after_step()
    state = json.loads(json.dumps(schedule.state_dict()))
    opt2 = _optimizer()
    again = LrSchedule(opt2, cosine, epochs=3, steps=4)
    again.load_state_dict(state)
    opt2.step()
    again.after_step()
    opt.step()
    schedule.after_step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    plateau = LrSchedule(_optimizer(), OptimSection(), epochs=3, steps=4)
    with pytest.raises(CheckpointError, match="cosine learning-rate rule"):
        plateau.load_state_dict(state)


def test_schedule_options_are_validated():
    with pytest.raises(ConfigError, match="warmup_epochs"):
        OptimSection(warmup_epochs=-1)
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        OptimSection(min_lr_ratio=1.5)
