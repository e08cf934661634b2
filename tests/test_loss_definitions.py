"""The loss table: each row's formula equals its implementations, training's and theory's.

Tolerances: float64 throughout; the formula and the implementation compute the same
quantity in a different order (a few dozen roundings of numbers of order 1-10), so they
agree to far better than the relative 1e-10 asked here on every BLAS path.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from nocollapse.diagnostics.loss_definitions import (
    DEFINITIONS,
    THEORY_SCALE,
    LossConvention,
    half_of,
)
from nocollapse.errors import ConfigError
from nocollapse.losses import LOSSES, Direction
from nocollapse.theory import bao2023_sim, linear_sgd
from nocollapse.theory import halvagal2023_sim as toy
from nocollapse.theory.registry import THEORY_MODELS, theory_loss_names

pytestmark = pytest.mark.numerical  # torch and numpy products compared (docstring)

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``z, target`` ``(7, 5)``, a symmetric positive definite ``Wp`` and ``p = z Wp^T``."""
    rng = np.random.default_rng(seed)
    z, target = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    a = rng.standard_normal((5, 5))
    Wp = a @ a.T / 5 + 0.2 * np.eye(5)
    return z, target, Wp, z @ Wp.T


def _training(name: str, z: np.ndarray, target: np.ndarray, Wp: np.ndarray, p: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray]:
    """The training loss's value and its gradients in ``z`` and in ``p`` (independent)."""
    z_leaf = torch.tensor(z, requires_grad=True)
    p_leaf = torch.tensor(p, requires_grad=True)
    value = LOSSES[name].fn(Direction(z_leaf, p_leaf, torch.tensor(target), torch.tensor(Wp)))
    grad_z, grad_p = torch.autograd.grad(value, [z_leaf, p_leaf], allow_unused=True)
    as_array = [np.zeros_like(z) if g is None else g.numpy() for g in (grad_z, grad_p)]
    return float(value.detach()), as_array[0], as_array[1]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
@pytest.mark.parametrize("seed", [0, 1])
def test_each_row_formula_equals_its_training_implementation(name: str, seed: int) -> None:
    row = DEFINITIONS[name]
    z, target, Wp, p = _inputs(seed)
    value, grad_z, grad_p = _training(name, z, target, Wp, p)
    if row.surrogate_of is None:
        np.testing.assert_allclose(value, row.value(p, target), **TOL)
        np.testing.assert_allclose(grad_p, row.grad_p(p, target), **TOL)
    else:  # IsoLoss: its gradient in z is the gradient in p of the loss it stands for
        assert row.surrogate_of in DEFINITIONS
        np.testing.assert_allclose(grad_z, row.grad_p(p, target), **TOL)
        assert not np.any(grad_p)


def test_the_formula_sees_the_constants() -> None:
    """The rows differ by the constants they say: l2 is not half of itself, -cos is not 1 - cos."""
    _, target, _, p = _inputs(2)
    l2, cosine, normalized = (DEFINITIONS[n] for n in ("l2", "cosine", "normalized-l2"))
    np.testing.assert_allclose(l2.value(p, target), np.mean(np.sum((p - target) ** 2, 1)))
    cos = np.sum(p * target, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(target, axis=1))
    np.testing.assert_allclose(cosine.value(p, target), -np.mean(cos), **TOL)
    np.testing.assert_allclose(normalized.value(p, target), 2 - 2 * np.mean(cos), **TOL)
    np.testing.assert_allclose(cosine.grad_p(p, target), normalized.grad_p(p, target) / 2, **TOL)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_training_entries_take_gain_normalised_and_base_from_their_row(name: str) -> None:
    row, entry = DEFINITIONS[name], LOSSES[name]
    assert entry.definition is row
    assert (entry.gain, entry.normalised, entry.base) == (row.gain, row.normalised,
                                                          row.surrogate_of)
    # the theory's reference has scale 1/2, so the gain is twice the scale
    assert entry.gain == row.scale / THEORY_SCALE


# every theory module that names losses, with its conventions
CONVENTIONS = {"halvagal2023_sim": toy.LOSS_CONVENTIONS,
               "bao2023_sim": bao2023_sim.LOSS_CONVENTIONS,
               "linear_sgd": linear_sgd.LOSS_CONVENTIONS,
               **{f"registry:{name}": model.losses for name, model in THEORY_MODELS.items()}}


@pytest.mark.parametrize("module", sorted(CONVENTIONS))
def test_theory_losses_are_table_names_at_the_theorys_scale(module: str) -> None:
    """One step of size lr is ODE time lr in every model: its losses have scale 1/2."""
    for name, convention in CONVENTIONS[module].items():
        assert name in DEFINITIONS and convention.definition in DEFINITIONS
        assert convention.scale == THEORY_SCALE, (module, name)


@pytest.mark.parametrize("kind", ["l2", "cosine"])
@pytest.mark.parametrize("seed", [0, 1])
def test_toy_loss_and_gradients_follow_its_convention(kind: str, seed: int) -> None:
    _, target, _, p = _inputs(seed)
    convention = toy.LOSS_CONVENTIONS[kind]
    np.testing.assert_allclose(toy.base_loss(p, target, kind), convention.value(p, target),
                               **TOL)
    g_p, _ = toy.base_loss_grads(p, target, kind)  # per sample: without the 1/B
    np.testing.assert_allclose(g_p / len(p), convention.grad_p(p, target), **TOL)


@pytest.mark.parametrize("kind", ["l2", "cosine"])
def test_toy_surrogate_is_the_training_surrogate_times_its_factor(kind: str) -> None:
    z, target, Wp, p = _inputs(3)
    name = f"isoloss-{kind}"
    convention = toy.LOSS_CONVENTIONS[name]
    training, _, _ = _training(name, z, target, Wp, p)
    np.testing.assert_allclose(toy.iso_surrogate(z, z, target, Wp, kind),
                               convention.factor * training + convention.constant, **TOL)


@pytest.mark.parametrize("kind", ["l2", "cosine"])
def test_linear_sgd_loss_and_gradients_follow_its_convention(kind: str) -> None:
    _, target, _, p = _inputs(4)
    convention = linear_sgd.LOSS_CONVENTIONS[kind]
    np.testing.assert_allclose(linear_sgd.loss_value(p, target, kind),
                               convention.value(p, target), **TOL)
    np.testing.assert_allclose(linear_sgd.output_grads(p, target, kind)[0],
                               convention.grad_p(p, target), **TOL)


def test_a_convention_names_a_table_row() -> None:
    assert half_of("l2") == LossConvention("l2", factor=0.5)
    with pytest.raises(ConfigError, match="unknown loss definition 'l3'"):
        LossConvention("l3")


def test_simulate_offers_the_losses_some_model_has_a_theory_for() -> None:
    assert theory_loss_names() == ("l2", "cosine", "isoloss-l2", "isoloss-cosine")


def test_the_table_in_the_extending_guide_is_the_code_s() -> None:
    """docs/extending.md#the-loss-table spells every row as DEFINITIONS has it."""
    guide = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
    text = guide.read_text().split("### The loss table", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    found = {}
    for line in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        name, _, distance, scale, offset, gain, base = cells
        found[name.strip("`")] = (distance, float(Fraction(scale)), float(offset),
                                  float(gain), base.strip("`") or None)
    assert found == {name: (row.distance, row.scale, row.offset, row.gain, row.surrogate_of)
                     for name, row in DEFINITIONS.items()}
