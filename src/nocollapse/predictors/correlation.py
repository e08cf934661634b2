"""The running correlation ``F_hat`` of online projector outputs (DirectPred, DirectCopy).

Updated only through :meth:`CorrelationEstimate.update` on training steps, from the
detached outputs of the views, and averaged across processes so that every rank
of a distributed run builds the same predictor. Two starts (docs/theory.md):

* ``init="first-batch"`` (facebookresearch/luckmatters' DirectPred accumulator): the
  first batch initialises ``F_hat``, later ones are mixed in by the EMA;
* ``init="zeros"`` (fmi-basel/implicit-var-reg): ``F_hat`` starts at zeros and every
  batch is mixed in, the first included.
"""

from __future__ import annotations

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice

INITS = ("first-batch", "zeros")


def check_rho(name: str, value: float) -> None:
    """Refuse an EMA weight outside [0, 1) (the check of every ``rho`` option)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}={value} is outside [0, 1); rho is the weight of the old "
                          "F_hat in its EMA (DirectPred uses 0.3)")


def _all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


class CorrelationEstimate(nn.Module):
    """``F_hat <- rho F_hat + (1 - rho) Z^T Z / B`` (uncentred), started by ``init``.

    Buffers (``F_hat``, ``updates``) live in the state dict, so a checkpoint restores
    the estimate exactly. ``update`` reads no device value back (no host sync).
    """

    F_hat: torch.Tensor
    updates: torch.Tensor

    def __init__(self, dim: int, rho: float = 0.3, init: str = "first-batch"):
        super().__init__()
        check_rho("rho", rho)
        check_choice("correlation init", init, INITS)
        self.rho, self.init = rho, init
        self.register_buffer("F_hat", torch.zeros(dim, dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> torch.Tensor:
        """Fold in a batch ``z`` of shape ``(B, dim)`` (detached here) and return ``F_hat``."""
        z = z.detach().to(self.F_hat.dtype)
        with torch.autocast(z.device.type, enabled=False):  # F_hat in full precision
            batch = _all_reduce_mean(z.T @ z / z.shape[0])
        new = torch.full((), 1.0 - self.rho, dtype=self.F_hat.dtype, device=self.F_hat.device)
        if self.init == "first-batch":  # weight 1 on the first batch, chosen on the device
            new = torch.where(self.updates == 0, 1.0, new)
        self.F_hat.lerp_(batch, new)
        self.updates += 1
        return self.F_hat
