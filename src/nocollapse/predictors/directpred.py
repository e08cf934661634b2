"""DirectPred (tian2021): ``Wp = U diag(p) U^T`` from the eigenpairs ``s, U`` of ``F_hat``.

``p_j = sqrt(s_j / s_max) + eps`` clamped to ``>= 1e-4``; with ``subtract=c``
facebookresearch/luckmatters' ``dyn_eps_inside``: ``p_j = sqrt(clamp(s_j / s_max - c, 1e-4))``
(docs/theory.md#spectral-predictors). Registered in ``registry.py`` with luckmatters'
joint correlation and ``update="after"``.
"""

from __future__ import annotations

import torch

from nocollapse.errors import check_nonnegative
from nocollapse.predictors.eigen import SOLVER_OPTION, normalised_spectrum_matrix
from nocollapse.predictors.options import Option

# eps 0.01: the authors' command default (their best table entry, and our directpred
# preset, 0.1).
OPTIONS = {
    "eps": Option(float, "added to sqrt(s_j / s_max)", 0.01, check_nonnegative),
    "subtract": Option(float, "p_j = sqrt(max(s_j / s_max - subtract, 1e-4)) (luckmatters' "
                       "dyn_eps_inside) instead of sqrt(s_j / s_max) + eps", None),
    "solver": SOLVER_OPTION,
}


def directpred_matrix(F: torch.Tensor, *, eps: float, subtract: float | None,
                      solver: str) -> torch.Tensor:
    """DirectPred's ``Wp`` from a float64 ``F_hat`` (``(d, d)``)."""
    if subtract is not None:
        return normalised_spectrum_matrix(
            F, solver, lambda x: (x - subtract).clamp_min(1e-4).sqrt())
    return normalised_spectrum_matrix(F, solver, lambda x: (x.sqrt() + eps).clamp_min(1e-4))
