"""``PREDICTORS``: every predictor by name, each with its builder and its options schema.

``build_predictor(kind, dim, hidden_dim, **options)`` checks ``options`` against the
entry's schema and calls its builder. :func:`register_predictor` adds a predictor from
outside the package (see docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice
from nocollapse.models import MLPPredictor
from nocollapse.plugins import PluginRegistry
from nocollapse.predictors.options import Option, OptionSchema, OptionValue, check_options
from nocollapse.predictors.spectral import SPECTRAL, SPECTRAL_OPTIONS, SpectralPredictor

# builder(dim, hidden_dim, **options) -> the predictor module
PredictorBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class PredictorEntry:
    """A predictor's builder, its options schema and a line of help.

    ``spectral``: its matrix is built in closed form from ``F_hat`` (the learner
    then needs no separate correlation tracker, and IsoLoss may use it).
    """

    build: PredictorBuilder
    help: str
    options: OptionSchema = field(default_factory=dict)
    spectral: bool = False


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


def _spectral(kind: str) -> PredictorBuilder:
    def build(dim: int, hidden_dim: int, **options: OptionValue) -> nn.Module:
        return SpectralPredictor(dim, kind, **options)  # type: ignore[arg-type]

    return build


PREDICTORS: PluginRegistry[PredictorEntry] = PluginRegistry({
    "none": PredictorEntry(lambda dim, hidden_dim: nn.Identity(),
                           "identity (the no-predictor ablation)"),
    "linear": PredictorEntry(lambda dim, hidden_dim: LinearPredictor(dim),
                             "a d x d matrix trained by SGD"),
    "mlp": PredictorEntry(lambda dim, hidden_dim: MLPPredictor(dim, hidden_dim),
                          "two-layer MLP with pred_hidden_dim hidden units"),
    **{kind: PredictorEntry(_spectral(kind), f"{kind} matrix from F_hat's eigendecomposition",
                            SPECTRAL_OPTIONS, spectral=True) for kind in SPECTRAL},
})


def register_predictor(name: str, build: PredictorBuilder, help: str,
                       options: dict[str, Option] | None = None, spectral: bool = False
                       ) -> PredictorEntry:
    """Add predictor ``name`` (``build(dim, hidden_dim, **options)``); names are unique."""
    if name in PREDICTORS:
        raise ConfigError(f"predictor {name!r} is already registered")
    entry = PredictorEntry(build, help, dict(options or {}), spectral)
    PREDICTORS[name] = entry
    return entry


def predictor_entry(kind: str) -> PredictorEntry:
    """The registry entry of ``kind``; an unknown name is refused with the closest one."""
    return PREDICTORS[check_choice("predictor", kind, tuple(PREDICTORS))]


def build_predictor(kind: str, dim: int, hidden_dim: int = 512,
                    **options: OptionValue) -> nn.Module:
    """The predictor ``kind`` on ``dim``-dimensional projector outputs.

    ``none`` is the identity (the no-predictor ablation); ``mlp`` uses ``hidden_dim``;
    ``options`` must be in the entry's schema (spectral kinds: ``SPECTRAL_OPTIONS``).
    """
    entry = predictor_entry(kind)
    check_options(kind, options, entry.options)
    return entry.build(dim, hidden_dim, **options)
