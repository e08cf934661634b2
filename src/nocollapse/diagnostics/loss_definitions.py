"""One table of loss definitions: what each loss name means, for training and for theory.

Every loss between predictions ``p`` and targets ``z`` (both ``(B, d)``) is written as

    L = scale * mean_b D(p_b, z_b) + offset

with one of two squared distances:

    euclidean:  D = ||p - z||^2
    angular:    D = ||p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z)

``scale`` is the constant in front of the distance (it sets the gradient); ``offset``
is the constant added, which carries the sign convention of the cosine forms
(``-cos = 1/2 D - 1``, ``1 - cos = 1/2 D``: the same gradient). An IsoLoss surrogate
names the loss it stands for (``surrogate_of``) and takes that loss's distance, scale
and offset: its gradient with respect to ``z`` is that loss's gradient with respect to
``p`` at ``p = Wp z`` (docs/theory.md#isoloss); its value need not be that loss's.

The theory's reference (docs/theory.md#theory-in-a-run) is ``scale = 1/2``:
``1/2 ||p - z||^2`` and ``1 - cos``, whose gradient step of size ``lr`` advances the
eigenmode ODEs by time ``lr``. A definition's :attr:`LossDefinition.gain` is its gradient
over that reference's. A theory model names its losses by this table's names and says
how its constants map with a :class:`LossConvention` (docs/extending.md#the-loss-table).
This module is numpy only: theory and training (``nocollapse.losses``) both read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nocollapse.errors import check_choice

Distance = Literal["euclidean", "angular"]
THEORY_SCALE = 0.5  # the theory's 1/2 ||p - z||^2 and 1 - cos = 1/2 ||p^ - z^||^2


@dataclass(frozen=True)
class LossDefinition:
    """A loss: ``scale * mean D + offset`` (module docstring); ``formula`` says it in words."""

    name: str
    formula: str
    distance: Distance
    scale: float
    offset: float = 0.0
    surrogate_of: str | None = None

    @property
    def gain(self) -> float:
        """Its gradient with respect to ``p`` over the theory's (``scale = 1/2``)."""
        return self.scale / THEORY_SCALE

    @property
    def normalised(self) -> bool:
        """Whether its gradient carries ``1 / (|p| |z|)`` (the angular distance)."""
        return self.distance == "angular"

    def value(self, p: np.ndarray, z: np.ndarray) -> float:
        """``scale * mean D(p, z) + offset`` in float64; ``p, z`` of shape ``(B, d)``.

        For a surrogate: the value of the loss it stands for.
        """
        if self.distance == "euclidean":
            d2 = np.sum((p - z) ** 2, axis=1)
        else:
            d2 = np.sum((_unit(p) - _unit(z)) ** 2, axis=1)
        return float(self.scale * np.mean(d2) + self.offset)

    def grad_p(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``dL/dp`` of :meth:`value` (the batch mean's ``1/B`` included), shape ``(B, d)``.

        Angular: ``dD/dp = -2 (z^ - cos(p, z) p^) / |p|``, orthogonal to ``p``.
        """
        batch = p.shape[0]
        if self.distance == "euclidean":
            result: np.ndarray = self.scale * 2.0 * (p - z) / batch
            return result
        p_hat, z_hat = _unit(p), _unit(z)
        cos = np.sum(p_hat * z_hat, axis=1, keepdims=True)
        norm = np.linalg.norm(p, axis=1, keepdims=True)
        result = self.scale * -2.0 * (z_hat - cos * p_hat) / norm / batch
        return result


def _unit(a: np.ndarray) -> np.ndarray:
    result: np.ndarray = a / np.linalg.norm(a, axis=1, keepdims=True)
    return result


def _surrogate(name: str, formula: str, of: LossDefinition) -> LossDefinition:
    return LossDefinition(name, formula, of.distance, of.scale, of.offset, surrogate_of=of.name)


_L2 = LossDefinition("l2", "mean ||p - z||^2", "euclidean", 1.0)
_NORMALIZED_L2 = LossDefinition(
    "normalized-l2", "mean ||p/|p| - z/|z| ||^2 = 2 - 2 mean cos(p, z)", "angular", 1.0)
# the table: every loss name training uses (nocollapse.losses.LOSSES) and theory refers to
DEFINITIONS: dict[str, LossDefinition] = {
    "l2": _L2,
    "normalized-l2": _NORMALIZED_L2,
    "cosine": LossDefinition("cosine", "-mean cos(p, z)", "angular", 0.5, offset=-1.0),
    "isoloss-l2": _surrogate("isoloss-l2", "mean ||z - sg(z_t + z - p)||^2", _L2),
    "isoloss-cosine": _surrogate(
        "isoloss-cosine",
        "-2 mean[<z, sg z_t> / sg(|p| |z_t|) - 1/2 sg(<p, z_t> / (|p|^3 |z_t|)) z^T Wp z]",
        _NORMALIZED_L2),
}


@dataclass(frozen=True)
class LossConvention:
    """How a model's loss maps onto the table: ``factor * DEFINITIONS[definition] + constant``.

    ``factor`` scales the gradient, ``constant`` only the value; a theory model whose
    step of size ``lr`` is ODE time ``lr`` has ``factor * scale = 1/2``
    (:data:`THEORY_SCALE`).
    """

    definition: str
    factor: float = 1.0
    constant: float = 0.0

    def __post_init__(self) -> None:
        check_choice("loss definition", self.definition, tuple(DEFINITIONS))

    @property
    def entry(self) -> LossDefinition:
        """The table's definition this convention scales."""
        return DEFINITIONS[self.definition]

    @property
    def scale(self) -> float:
        """The constant in front of the distance: ``factor`` times the definition's."""
        return self.factor * self.entry.scale

    def value(self, p: np.ndarray, z: np.ndarray) -> float:
        """The model's loss on ``p, z`` ``(B, d)``, from the table's formula."""
        return self.factor * self.entry.value(p, z) + self.constant

    def grad_p(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Its gradient with respect to ``p`` (batch mean included), ``(B, d)``."""
        return self.factor * self.entry.grad_p(p, z)


def half_of(definition: str) -> LossConvention:
    """The theory's halving of a training loss: ``1/2 ||p - z||^2`` for ``l2``."""
    return LossConvention(definition, factor=0.5)
