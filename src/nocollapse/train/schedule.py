"""Learning-rate schedule: linear warm-up, then cosine (or constant) decay, set per step."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from nocollapse.errors import check_nonnegative


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float = 0.0, cosine: bool = True) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``.

    Warm-up: ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``,
    so the first step already moves and the last warm-up step reaches ``base_lr``.
    Then cosine from ``base_lr`` at ``warmup_steps`` to ``final_lr`` at ``total_steps``
    (constant ``base_lr`` when ``cosine`` is False). Steps past the end stay at the end.
    """
    check_nonnegative("step", step)
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if not cosine:
        return base_lr
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Sets each parameter group's lr at every step; groups keep their own ``lr_scale``.

    A group's lr is ``schedule(step) * group.get("lr_scale", 1)``, which is how the
    predictor gets ``lr * predictor_lr_scale``. State is the step only, so a resumed
    run recomputes exactly the same rates.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                 base_lr: float, final_lr: float = 0.0, cosine: bool = True):
        self.optimizer = optimizer
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.base_lr = float(base_lr)
        self.final_lr = float(final_lr)
        self.cosine = bool(cosine)
        self.step_count = 0
        self.set(0)

    def lr_at(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps, self.base_lr,
                             self.final_lr, self.cosine)

    def set(self, step: int) -> float:
        """Apply the rate of ``step`` to every group and return the unscaled rate."""
        self.step_count = int(step)
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def state_dict(self) -> dict[str, object]:
        return {"step": self.step_count, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "base_lr": self.base_lr,
                "final_lr": self.final_lr, "cosine": self.cosine}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        step = state["step"]
        if not isinstance(step, int | float):
            raise TypeError(f"the schedule's step {step!r} is not a number")
        self.set(int(step))
