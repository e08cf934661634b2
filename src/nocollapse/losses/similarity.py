"""Per-direction losses between a prediction ``p`` and a target ``z`` (both ``(B, d)``).

Targets are detached by the caller (the learner decides where the stop-gradient is).
"""

from __future__ import annotations

import torch
from torch.nn import functional


def cosine_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's ``-mean cos(p, z)``, in ``[-1, 1]``."""
    return -functional.cosine_similarity(p, z, dim=-1).mean()


def normalized_l2_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's ``mean ||p/|p| - z/|z|||^2 = 2 - 2 mean cos(p, z)``, in ``[0, 4]``."""
    return 2.0 + 2.0 * cosine_loss(p, z)


def l2_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """tian2021's unnormalised L2 summed over dims: the loss table's ``l2`` (twice the theory's)."""
    return (p - z).pow(2).sum(dim=-1).mean()
