"""Predictors built from the eigendecomposition of ``F_hat``: DirectPred, DirectCopy, closed-form.

docs/theory.md#spectral-predictors:

* directpred:  ``Wp = U diag(p) U^T``, ``p_j = sqrt(s_j / max s) + eps``
  (or ``sqrt(max(s_j - c, 0))`` with ``subtract=c``), clamped to ``>= 1e-4``;
* directcopy:  ``Wp = F_hat / max s + eps I``;
* closed-form: ``s <- clamp(s, 0)/max(s) + eps``, ``Wp = U diag(s^alpha) U^T``
  (halvagal2023; DirectPred is ``alpha = 0.5, eps = 0``).

With ``freq = 1`` the matrix is rebuilt every training step and is not trained.
With ``freq > 1`` it is an ordinary trainable linear layer between rebuilds (the
DirectPred paper's "freq" option): gradients move it, and every ``freq`` steps it is
overwritten by the formula.
"""

from __future__ import annotations

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice, check_in_range, check_nonnegative
from nocollapse.predictors.correlation import CorrelationEstimate
from nocollapse.predictors.options import Option

SPECTRAL = ("directpred", "directcopy", "closed-form")
# Per-kind default eps (docs/theory.md#spectral-predictors): DirectPred authors' command
# 0.01 (their best table
# entry, and our directpred preset, 0.1); DirectCopy 0.25; closed-form 0 (halvagal2023).
DEFAULT_EPS = {"directpred": 0.01, "directcopy": 0.25, "closed-form": 0.0}


def spectral_matrix(F_hat: torch.Tensor, kind: str, eps: float, alpha: float = 0.5,
                    subtract: float | None = None) -> torch.Tensor:
    """The predictor matrix of ``kind`` from a correlation ``F_hat`` (``(d, d)``), float64 eigh."""
    s, U = torch.linalg.eigh(F_hat.double())
    s = s.clamp_min(0.0)
    top = s.max().clamp_min(1e-12)
    if kind == "directcopy":
        eye = torch.eye(F_hat.shape[0], dtype=torch.float64, device=F_hat.device)
        matrix = F_hat.double() / top + eps * eye
    else:
        if kind == "directpred":
            p = (s - subtract).clamp_min(0).sqrt() if subtract is not None else (s / top).sqrt()
            p = (p + (0.0 if subtract is not None else eps)).clamp_min(1e-4)
        else:  # closed-form
            p = (s / top + eps).pow(alpha)
        matrix = (U * p) @ U.T
    return matrix.to(F_hat.dtype)


class SpectralPredictor(nn.Module):
    """``p = z Wp^T`` with ``Wp`` rebuilt from ``F_hat`` every ``freq`` training steps."""

    def __init__(self, dim: int, kind: str = "directpred", rho: float = 0.3,
                 eps: float | None = None,
                 alpha: float = 0.5, freq: int = 1, subtract: float | None = None):
        super().__init__()
        check_choice("spectral predictor", kind, SPECTRAL)
        eps = DEFAULT_EPS[kind] if eps is None else eps
        if int(freq) != freq or freq < 1:
            raise ConfigError(f"freq={freq}; rebuild the predictor every freq >= 1 (an integer) "
                              "training steps")
        check_nonnegative("eps", eps)
        check_nonnegative("alpha", alpha)
        freq = int(freq)
        self.kind, self.eps, self.alpha, self.freq, self.subtract = kind, eps, alpha, freq, subtract
        self.correlation = CorrelationEstimate(dim, rho)
        self.weight = nn.Parameter(torch.eye(dim), requires_grad=freq > 1)

    @torch.no_grad()
    def update_correlation(self, z: torch.Tensor) -> None:
        """Training step only: fold ``z`` (``(B, dim)``) into ``F_hat``; rebuild ``Wp`` when due.

        Never called by ``forward``, so evaluation passes leave ``F_hat`` untouched.
        """
        F_hat = self.correlation.update(z)
        if (int(self.correlation.updates) - 1) % self.freq == 0:
            self.weight.copy_(spectral_matrix(F_hat, self.kind, self.eps, self.alpha,
                                              self.subtract))


    def matrix(self) -> torch.Tensor:
        """``Wp`` of shape ``(dim, dim)`` (``p = Wp z``)."""
        return self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.freq > 1 else self.weight.detach()
        return z @ weight.T


def _check_rho(name: str, value: float) -> None:
    check_in_range(name, value, 0.0, 0.999999)


def _check_freq(name: str, value: float) -> None:
    if int(value) != value or value < 1:
        raise ConfigError(f"{name}={value}; rebuild the predictor every freq >= 1 (an integer) "
                          "training steps")


# The options every spectral predictor accepts (build_predictor and the learner's
# predictor_options are checked against it): add an option here and in SpectralPredictor.
SPECTRAL_OPTIONS: dict[str, Option] = {
    "rho": Option(float, "weight of the old F_hat in its EMA, in [0, 1)", 0.3, _check_rho),
    "eps": Option(float, "added to the eigenvalues (default per kind: directpred 0.01, "
                  "directcopy 0.25, closed-form 0)", None, check_nonnegative),
    "alpha": Option(float, "closed-form exponent (0.5 = DirectPred)", 0.5, check_nonnegative),
    "freq": Option(float, "rebuild Wp every freq training steps (trainable between rebuilds)",
                   1, _check_freq),
    "subtract": Option(float, "directpred: p_j = sqrt(max(s_j - subtract, 0)) instead of the "
                       "normalised root", None),
}
