"""The random-init encoder's figures on the run's batch shape, measured at step 0.

The early warning compares the effective rank against the run's highest so far; a run
that collapses before its first log (a learning rate far too high) has no healthy peak
of its own. Before the first step the loop hands the monitor the views of its first
batch through a copy of the untrained learner (:func:`measure_reference`): the copy
keeps the run's BatchNorm statistics, predictor state and random streams untouched, so
the run trains exactly as without it (docs/diagnose.md#detection).
"""

from __future__ import annotations

import copy

import torch

from nocollapse.methods import Learner
from nocollapse.monitor import CollapseMonitor

REFERENCE_SEED_OFFSET = 7_919  # the reference views' own stream: the run's is not drawn from


@torch.no_grad()
def measure_reference(monitor: CollapseMonitor, learner: Learner, batch: torch.Tensor,
                      augment: torch.nn.Module, seed: int) -> dict[str, float]:
    """The untrained learner's ``effective_rank`` and ``rankme`` on two views of ``batch``."""
    generator = torch.Generator(device=batch.device).manual_seed(seed + REFERENCE_SEED_OFFSET)
    view1, view2 = augment(batch, generator), augment(batch, generator)
    twin = copy.deepcopy(learner)
    assert isinstance(twin, torch.nn.Module)  # a Learner is a Module (the loop checks it)
    twin.train()
    output = twin(view1, view2)
    return monitor.set_reference(output.z1, output.z2)
