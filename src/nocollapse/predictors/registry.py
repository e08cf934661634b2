"""``build_predictor(kind, dim, **options)``: every predictor by name."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice
from nocollapse.models import MLPPredictor
from nocollapse.predictors.spectral import SPECTRAL, SpectralPredictor

PREDICTORS = ("none", "linear", "mlp", *SPECTRAL)
SPECTRAL_OPTIONS = ("rho", "eps", "alpha", "freq", "subtract", "normalize", "correlation",
                    "update", "solver", "background")


class LinearPredictor(nn.Module):
    """A bias-free ``d x d`` linear predictor trained by SGD (tian2021's ``Wp``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def matrix(self) -> torch.Tensor:
        return self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.weight.T


def build_predictor(kind: str, dim: int, hidden_dim: int = 512, **options: Any) -> nn.Module:
    """The predictor ``kind`` on ``dim``-dimensional projector outputs.

    ``none`` is the identity (the no-predictor ablation); ``mlp`` uses ``hidden_dim``;
    spectral kinds accept the ``SPECTRAL_OPTIONS`` of :class:`SpectralPredictor`.
    """
    check_choice("predictor", kind, PREDICTORS)
    if kind in SPECTRAL:
        unknown = set(options) - set(SPECTRAL_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown {kind} option(s) {sorted(unknown)}; valid: "
                              f"{', '.join(SPECTRAL_OPTIONS)}")
        return SpectralPredictor(dim, kind, **options)
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return LinearPredictor(dim)
    return MLPPredictor(dim, hidden_dim)
