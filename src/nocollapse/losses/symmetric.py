"""Combining the two view directions of a Siamese loss."""

from __future__ import annotations

from collections.abc import Callable

import torch


def symmetrised(loss_fn: Callable[..., torch.Tensor], *args: object) -> torch.Tensor:
    """``loss_fn(a1, b1) + loss_fn(a2, b2)``: a sum, as BYOL's code computes it.

    Call as ``symmetrised(loss_fn, a1, b1, a2, b2)`` for two-argument losses, or
    ``symmetrised(loss_fn, first, second)`` with two argument tuples for losses
    that take more (IsoLoss: ``(z1, t2, p1, Wp)``). facebookresearch/simsiam averages
    the two (x 0.5): the learner's ``symmetric_reduction="mean"`` (the SimSiam preset).
    With weight decay the factor is not a learning-rate rescaling: it halves the
    gradient against the decay.
    """
    first: tuple[object, ...]
    second: tuple[object, ...]
    if len(args) == 4:
        first, second = args[:2], args[2:]
    elif len(args) == 2 and isinstance(args[0], tuple) and isinstance(args[1], tuple):
        first, second = args[0], args[1]
    else:
        raise TypeError(
            f"symmetrised got {len(args)} arguments after loss_fn; pass four tensors "
            "(a1, b1, a2, b2) or two argument tuples (first, second)")
    return loss_fn(*first) + loss_fn(*second)
