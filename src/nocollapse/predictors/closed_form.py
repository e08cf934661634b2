"""The closed-form predictor (halvagal2023): ``Wp = U diag((max(s, 0) / s_max + eps)^alpha) U^T``.

With ``alpha = 0.5, eps = 0`` it is DirectPred's matrix (docs/theory.md#closed-form).
Registered in ``registry.py`` with implicit-var-reg's per-view correlation and
``update="each-view"``.
"""

from __future__ import annotations

import torch

from nocollapse.errors import check_nonnegative
from nocollapse.predictors.eigen import SOLVER_OPTION, normalised_spectrum_matrix
from nocollapse.predictors.options import Option

OPTIONS = {
    "eps": Option(float, "added to s_j / s_max (halvagal2023: 0)", 0.0, check_nonnegative),
    "alpha": Option(float, "the exponent (0.5 = DirectPred)", 0.5, check_nonnegative),
    "solver": SOLVER_OPTION,
}


def closed_form_matrix(F: torch.Tensor, *, eps: float, alpha: float,
                       solver: str) -> torch.Tensor:
    """The closed-form ``Wp`` from a float64 ``F_hat`` (``(d, d)``)."""
    return normalised_spectrum_matrix(F, solver, lambda x: (x + eps).pow(alpha))
