"""Timing one full training step of a SiameseLearner (shared by the step benchmarks)."""

from __future__ import annotations

from typing import Any

import torch
from benchutil import median_seconds

from nocollapse.methods import SiameseLearner, learner_config


def make_step(method: str, channels: int, size: int, batch: int, **overrides: Any):
    """A closure running forward, backward, SGD step and target update on fixed inputs."""
    learner = SiameseLearner(learner_config(method, **overrides), channels, size)
    optimizer = torch.optim.SGD(learner.parameter_groups(5e-4), lr=0.01, momentum=0.9)
    x1, x2 = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        learner(x1, x2).loss.backward()
        optimizer.step()
        learner.update_target(0.5)

    return step, learner


def step_seconds(method: str, channels: int, size: int, batch: int, repeats: int = 5,
                 warmup: int = 2, **overrides: Any) -> float:
    step, _ = make_step(method, channels, size, batch, **overrides)
    return median_seconds(step, repeats=repeats, warmup=warmup)


def step_flops(method: str, channels: int, size: int, batch: int, **overrides: Any) -> int:
    """FLOPs of one step (forward + backward) counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    step, _ = make_step(method, channels, size, batch, **overrides)
    step()  # warm-up, so lazy initialisation is not counted
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()
