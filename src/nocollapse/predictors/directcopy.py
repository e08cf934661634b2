"""DirectCopy: ``Wp = F_hat / s_max + eps I`` (fmi-basel/implicit-var-reg, the default), or
``F_hat + eps I`` with ``normalize=False`` (facebookresearch/luckmatters' directcopy branch).

docs/theory.md#spectral-predictors. Registered in ``registry.py`` with implicit-var-reg's
per-view correlation and ``update="each-view"``.
"""

from __future__ import annotations

import torch

from nocollapse.errors import check_nonnegative
from nocollapse.predictors.eigen import SOLVER_OPTION, largest_eigenvalue
from nocollapse.predictors.options import Option

OPTIONS = {
    "eps": Option(float, "added to the diagonal", 0.25, check_nonnegative),
    "normalize": Option(bool, "F_hat / s_max + eps I (true, implicit-var-reg) or F_hat + eps I "
                        "(false, luckmatters)", True),
    "solver": SOLVER_OPTION,
}


def directcopy_matrix(F: torch.Tensor, *, eps: float, normalize: bool,
                      solver: str) -> torch.Tensor:
    """DirectCopy's ``Wp`` from a float64 ``F_hat`` (``(d, d)``)."""
    eye = torch.eye(F.shape[0], dtype=torch.float64, device=F.device)
    if not normalize:
        return F + eps * eye
    top = largest_eigenvalue(F, solver).clamp_min(1e-12)
    return F / top + eps * eye
