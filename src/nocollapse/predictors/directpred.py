"""DirectPred (tian2021): ``Wp = U diag(p) U^T`` from the eigenpairs ``s, U`` of ``F_hat``.

``p_j = sqrt(s_j / s_max) + eps`` clamped to ``>= 1e-4``; with ``subtract=c``
facebookresearch/luckmatters' ``dyn_eps_inside``: ``p_j = sqrt(clamp(s_j / s_max - c, 1e-4))``
(docs/theory.md#spectral-predictors). Registered in ``registry.py`` with luckmatters'
joint correlation and ``update="after"``.

``solver="newton-schulz"`` builds ``(F_hat / s_max)^(1/2) + eps I`` without an
eigendecomposition (``newton_schulz.py``: power iteration warm-started from the previous
call's top vector, ``ns_steps`` coupled Newton-Schulz steps, matrix products only), within
``newton_schulz.sqrt_error_bound(ns_steps)`` of the exact matrix (about ``1.1e-3`` at the
default 7 steps); ``subtract`` needs the spectrum, so it keeps ``eigh``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nocollapse.errors import ConfigError, check_nonnegative, check_positive_int
from nocollapse.predictors.eigen import SOLVERS, normalised_spectrum_matrix
from nocollapse.predictors.newton_schulz import normalised_sqrt
from nocollapse.predictors.options import Option, OptionValue

DIRECTPRED_SOLVERS = (*SOLVERS, "newton-schulz")

# eps 0.01: the authors' command default (their best table entry, and our directpred
# preset, 0.1).
OPTIONS = {
    "eps": Option(float, "added to sqrt(s_j / s_max)", 0.01, check_nonnegative),
    "subtract": Option(float, "p_j = sqrt(max(s_j / s_max - subtract, 1e-4)) (luckmatters' "
                       "dyn_eps_inside) instead of sqrt(s_j / s_max) + eps", None),
    "solver": Option(str, "eigh32: float32 eigendecomposition, error bounded by a test | eigh: "
                     "float64, exact | newton-schulz: no eigendecomposition (power iteration "
                     "and matrix products), error bounded by ns_steps", "eigh32",
                     choices=DIRECTPRED_SOLVERS),
    "ns_steps": Option(float, "Newton-Schulz steps of solver=newton-schulz (the error bound "
                       "follows from it: docs/learner.md)", 7, check_positive_int),
}


def check_directpred_options(options: Mapping[str, OptionValue]) -> None:
    """Refuse ``subtract`` with the Newton-Schulz solver (it needs the spectrum)."""
    if options.get("solver") == "newton-schulz" and options.get("subtract") is not None:
        raise ConfigError("predictor_options.subtract needs F_hat's spectrum: use solver=eigh32 "
                          "or eigh with it, not newton-schulz")


def uses_warm_start(options: Mapping[str, OptionValue]) -> bool:
    """The Newton-Schulz solver keeps its power iteration's vector between calls."""
    return options.get("solver") == "newton-schulz"


def directpred_matrix(F: torch.Tensor, *, eps: float, subtract: float | None, solver: str,
                      ns_steps: float = 7,
                      warm: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """DirectPred's ``Wp`` from a float64 ``F_hat`` (``(d, d)``); ``warm``: the state the
    Newton-Schulz solver keeps between calls (its power iteration's vector)."""
    if subtract is not None:
        return normalised_spectrum_matrix(
            F, solver, lambda x: (x - subtract).clamp_min(1e-4).sqrt())
    if solver == "newton-schulz":
        root = normalised_sqrt(F.float(), int(ns_steps), warm).double()
        return root + max(eps, 1e-4) * torch.eye(F.shape[0], dtype=root.dtype, device=F.device)
    return normalised_spectrum_matrix(F, solver, lambda x: (x.sqrt() + eps).clamp_min(1e-4))
