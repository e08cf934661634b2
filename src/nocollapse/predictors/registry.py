"""``PREDICTORS``: every predictor by name, each with its builder and its options schema.

``build_predictor(kind, dim, hidden_dim, **options)`` checks ``options`` against the
entry (:func:`check_predictor_options`), fills in the schema's defaults and calls its
builder. :func:`register_predictor` adds a predictor from outside the package, and
:func:`~nocollapse.predictors.spectral.spectral_entry` makes a spectral kind an entry
(docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice
from nocollapse.models import MLPPredictor
from nocollapse.plugins import PluginRegistry
from nocollapse.predictors import closed_form, directcopy, directpred
from nocollapse.predictors.entry import PredictorEntry
from nocollapse.predictors.options import OptionValue, check_options, with_defaults
from nocollapse.predictors.spectral import spectral_entry


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


PREDICTORS: PluginRegistry[PredictorEntry] = PluginRegistry({
    "none": PredictorEntry(lambda dim, hidden_dim: nn.Identity(),
                           "identity (the no-predictor ablation)"),
    "linear": PredictorEntry(lambda dim, hidden_dim: LinearPredictor(dim),
                             "a d x d matrix trained by SGD"),
    "mlp": PredictorEntry(lambda dim, hidden_dim: MLPPredictor(dim, hidden_dim),
                          "two-layer MLP with pred_hidden_dim hidden units"),
    # the spectral kinds: each its module (matrix function and options) and its original
    # way of feeding F_hat (luckmatters: joint, after; implicit-var-reg: per-view, each-view)
    "directpred": spectral_entry(directpred.directpred_matrix, "DirectPred: sqrt of F_hat's "
                                 "normalised eigenvalues, plus eps", directpred.OPTIONS,
                                 correlation="joint", update="after"),
    "directcopy": spectral_entry(directcopy.directcopy_matrix, "DirectCopy: F_hat / s_max + "
                                 "eps I", directcopy.OPTIONS,
                                 correlation="per-view", update="each-view"),
    "closed-form": spectral_entry(closed_form.closed_form_matrix, "halvagal2023: F_hat's "
                                  "normalised eigenvalues plus eps, to the power alpha",
                                  closed_form.OPTIONS, correlation="per-view",
                                  update="each-view"),
})


def register_predictor(name: str, entry: PredictorEntry) -> PredictorEntry:
    """Add ``entry`` as predictor ``name``; names are unique."""
    if name in PREDICTORS:
        raise ConfigError(f"predictor {name!r} is already registered")
    PREDICTORS[name] = entry
    return entry


def predictor_entry(kind: str) -> PredictorEntry:
    """The registry entry of ``kind``; an unknown name is refused with the closest one."""
    return PREDICTORS[check_choice("predictor", kind, tuple(PREDICTORS))]


def check_predictor_options(kind: str, options: Mapping[str, OptionValue],
                            prefix: str = "") -> None:
    """Refuse options predictor ``kind`` lacks (by name), values out of range and
    combinations its entry refuses: the one check of a predictor's options."""
    entry = predictor_entry(kind)
    if options and not entry.options:
        takers = ", ".join(name for name, e in PREDICTORS.items() if e.options)
        raise ConfigError(f"predictor {kind!r} takes no options; got "
                          f"{', '.join(sorted(options))} (they apply to {takers})")
    check_options(kind, options, entry.options, prefix)
    if entry.check_together is not None:
        entry.check_together(options)


def build_predictor(kind: str, dim: int, hidden_dim: int = 512,
                    **options: OptionValue) -> nn.Module:
    """The predictor ``kind`` on ``dim``-dimensional projector outputs.

    ``none`` is the identity (the no-predictor ablation); ``mlp`` uses ``hidden_dim``;
    ``options`` must be in the entry's schema; the ones not given take its defaults.
    """
    check_predictor_options(kind, options)
    entry = PREDICTORS[kind]
    return entry.build(dim, hidden_dim, **with_defaults(options, entry.options))
