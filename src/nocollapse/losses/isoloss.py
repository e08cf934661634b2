"""IsoLoss (docs/theory.md#isoloss): the eigenvalue factor removed from the gradient.

Each surrogate is built so that its gradient w.r.t. the online projector output
``z`` equals the ordinary loss's gradient w.r.t. ``p`` evaluated at ``p = Wp z``
(one factor ``Wp^T`` dropped), which makes every eigenmode learn at the same rate.
The predictor ``Wp`` is a closed-form (not differentiated) symmetric matrix.
"""

from __future__ import annotations

import torch


def isoloss_l2(z: torch.Tensor, z_target: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Euclidean-Iso ``mean || z - sg(z_t + z - p) ||^2``; ``grad_z = 2 (p - z_t) / B``.

    Matches :func:`nocollapse.losses.l2_loss`, whose gradient w.r.t. ``p`` is the same;
    its value equals ``l2_loss(p, z_t)`` too (``z - anchor = p - z_t``), so it logs
    like the ordinary loss. Shapes: ``z, z_target, p`` all ``(B, d)``; returns a scalar.
    """
    anchor = (z_target + z - p).detach()
    return (z - anchor).pow(2).sum(dim=-1).mean()


def isoloss_cosine(z: torch.Tensor, z_target: torch.Tensor, p: torch.Tensor,
                   Wp: torch.Tensor) -> torch.Tensor:
    """Cosine-Iso (docs/theory.md#halvagal2023), matching ``normalized_l2_loss = 2 - 2 cos``.

    ``L = -2 mean[ <z, sg(z_t)> / sg(|p||z_t|) - 1/2 sg(<p,z_t>/(|p|^3|z_t|)) z^T Wp z ]``.
    ``Wp`` is used through its symmetric part (``z^T Wp z`` only sees that part).
    Shapes: ``z, z_target, p`` ``(B, d)``, ``Wp`` ``(d, d)``; returns a scalar whose
    value is not the cosine loss (only its gradient w.r.t. ``z`` is meaningful).
    """
    zt = z_target.detach()
    p = p.detach()
    p_norm = p.norm(dim=-1).clamp_min(1e-12)
    t_norm = zt.norm(dim=-1).clamp_min(1e-12)
    linear = (z * zt).sum(-1) / (p_norm * t_norm)
    coeff = (p * zt).sum(-1) / (p_norm.pow(3) * t_norm)
    quadratic = (z * (z @ Wp.detach().T)).sum(-1)
    result: torch.Tensor = -2.0 * (linear - 0.5 * coeff * quadratic).mean()
    return result
