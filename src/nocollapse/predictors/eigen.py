"""Eigendecompositions of ``F_hat`` that the spectral kinds share, and their ``solver`` option.

A spectral kind's matrix function (``directpred.py``, ``closed_form.py``, ...) builds on
:func:`normalised_spectrum_matrix` (``U diag(f(s / s_max)) U^T``) or
:func:`largest_eigenvalue`; a kind that uses either declares :data:`SOLVER_OPTION` in its
schema. A diverged run's ``F_hat`` (NaN/inf) gives a NaN matrix, so the loss stays NaN
and the training loop stops with its own message instead of the solver's traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nocollapse.predictors.options import Option

# eigh: float64 eigendecomposition (exact); eigh32 (default): float32, 1.7-2.8x faster on
# CPU, its error on Wp bounded in tests/test_predictors.py (docs/benchmarks.md, section 2).
SOLVERS = ("eigh", "eigh32")
SOLVER_OPTION = Option(str, "eigh32: float32 eigendecomposition, faster, error bounded by a "
                       "test | eigh: float64, exact", "eigh32", choices=SOLVERS)


def eigh(F: torch.Tensor, solver: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of the symmetric ``F`` in float64, solved as ``solver``."""
    if solver == "eigh32":
        try:
            s, U = torch.linalg.eigh(F.float())
            return s.double(), U.double()
        except torch.linalg.LinAlgError:  # no float32 convergence: the exact path
            pass
    try:
        result: tuple[torch.Tensor, torch.Tensor] = torch.linalg.eigh(F.double())
        return result
    except torch.linalg.LinAlgError as error:
        nan = _nan_if_diverged(F, error)
        return nan[0], nan


def largest_eigenvalue(F: torch.Tensor, solver: str) -> torch.Tensor:
    """The largest eigenvalue of the symmetric ``F`` (float64 scalar)."""
    dtype = torch.float64 if solver == "eigh" else torch.float32
    try:
        result: torch.Tensor = torch.linalg.eigvalsh(F.to(dtype))[-1].double()
        return result
    except torch.linalg.LinAlgError as error:
        return _nan_if_diverged(F, error)[0, 0]


def normalised_spectrum_matrix(F: torch.Tensor, solver: str,
                               f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``U diag(f(x)) U^T`` with ``s, U`` the eigenpairs of ``F`` and ``x = max(s, 0) / s_max``."""
    s, U = eigh(F, solver)
    s = s.clamp_min(0.0)
    top = s.max().clamp_min(1e-12)
    return (U * f(s / top)) @ U.T


def _nan_if_diverged(F: torch.Tensor, error: Exception) -> torch.Tensor:
    """The solver failed with ``error``: raise it again for a finite ``F``; for a diverged
    ``F`` a NaN ``(d, d)`` float64 matrix."""
    if bool(torch.isfinite(F).all()):
        raise error
    return torch.full_like(F, math.nan, dtype=torch.float64)
