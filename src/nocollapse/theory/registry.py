"""``THEORY_MODELS``: the models ``nocollapse simulate --model NAME`` runs, by name.

Each entry holds the model's ``run_comparison(params) -> Comparison`` (its matrix
simulation against its reduced ODE, docs/theory.md), the losses it has a theory for, each
with its :class:`~nocollapse.diagnostics.loss_definitions.LossConvention` (how its
constants map onto the loss table), and a line of help. Add a model with its module and
an entry here (docs/extending.md#a-theory-model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nocollapse.diagnostics.loss_definitions import DEFINITIONS, LossConvention
from nocollapse.theory import bao2023, bao2023_sim, halvagal2023, halvagal2023_sim, tian2021
from nocollapse.theory.result import Comparison, SimulationParams


@dataclass(frozen=True)
class TheoryModel:
    """A theory model: its comparison run, its losses (by the loss table's names), help."""

    run_comparison: Callable[[SimulationParams], Comparison]
    losses: Mapping[str, LossConvention]
    help: str


THEORY_MODELS: dict[str, TheoryModel] = {
    "tian2021": TheoryModel(tian2021.run_comparison, tian2021.LOSS_CONVENTIONS,
                            "linear BYOL/SimSiam with the L2 loss: predictor eigenmodes"),
    "halvagal2023": TheoryModel(halvagal2023.run_comparison, halvagal2023_sim.LOSS_CONVENTIONS,
                                "toy with a closed-form predictor, plain and IsoLoss"),
    "bao2023": TheoryModel(bao2023.run_comparison, bao2023_sim.LOSS_CONVENTIONS,
                           "linear SimSiam with weight decay, L2 and cosine"),
}


def theory_loss_names() -> tuple[str, ...]:
    """Every loss some model has a theory for, in the loss table's order."""
    names = {name for model in THEORY_MODELS.values() for name in model.losses}
    return tuple(name for name in DEFINITIONS if name in names)
