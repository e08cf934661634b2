"""Combining the two view directions of a Siamese loss."""

from __future__ import annotations

from collections.abc import Callable

import torch


def symmetrised(loss_fn: Callable[..., torch.Tensor], first: tuple, second: tuple
                ) -> torch.Tensor:
    """``loss_fn(*first) + loss_fn(*second)``: a sum, as SimSiam and BYOL define it.

    Averaging the two directions (as some libraries do) halves every gradient,
    which silently halves the learning rate.
    """
    return loss_fn(*first) + loss_fn(*second)
