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
from nocollapse.predictors.options import Option, OptionValue, check_options, with_defaults
from nocollapse.predictors.spectral import spectral_entry


class LinearPredictor(nn.Module):
    """A bias-free ``d x d`` linear predictor trained by SGD (tian2021's ``Wp``).

    ``symmetrize``: ``Wp = (A + A^T) / 2`` of a parameter ``A`` that starts symmetric (the
    symmetrised Kaiming draw). Its gradient is the symmetric part of ``Wp``'s, so under SGD
    with momentum and weight decay ``A`` stays symmetric and takes the same steps as
    facebookresearch/luckmatters' ``predictor_reg: symmetric`` (an SGD step on ``Wp``, then
    ``Wp <- (Wp + Wp^T) / 2``), the setting of tian2021's predictor-spectrum claim. (Under
    an adaptive optimiser the two differ: its step is not linear in the gradient.)
    """

    def __init__(self, dim: int, symmetric: bool = False):
        super().__init__()
        self.symmetric = symmetric
        self.weight = nn.Parameter(torch.empty(dim, dim))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if symmetric:
            with torch.no_grad():
                self.weight.copy_((self.weight + self.weight.T) / 2)

    def matrix(self) -> torch.Tensor:
        return (self.weight + self.weight.T) / 2 if self.symmetric else self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.matrix().T


LINEAR_OPTIONS = {
    "symmetrize": Option(bool, "Wp kept symmetric, as luckmatters' predictor_reg=symmetric "
                        "(the same SGD steps as symmetrising after each step)", False),
}


PREDICTORS: PluginRegistry[PredictorEntry] = PluginRegistry({
    "none": PredictorEntry(lambda dim, hidden_dim: nn.Identity(),
                           "identity (the no-predictor ablation)"),
    "linear": PredictorEntry(lambda dim, hidden_dim, symmetrize: LinearPredictor(dim, symmetrize),
                             "a d x d matrix trained by SGD", LINEAR_OPTIONS),
    "mlp": PredictorEntry(lambda dim, hidden_dim: MLPPredictor(dim, hidden_dim),
                          "two-layer MLP with pred_hidden_dim hidden units"),
    # the spectral kinds: each its module (matrix function and options) and its original
    # way of feeding F_hat (luckmatters: joint, after; implicit-var-reg: per-view, each-view)
    "directpred": spectral_entry(directpred.directpred_matrix, "DirectPred: sqrt of F_hat's "
                                 "normalised eigenvalues, plus eps", directpred.OPTIONS,
                                 correlation="joint", update="after",
                                 warm_start=directpred.uses_warm_start,
                                 check=directpred.check_directpred_options),
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
