"""``predictor=linear`` with ``symmetrize=true``: luckmatters' ``predictor_reg: symmetric``
(an SGD step on ``Wp``, then ``Wp <- (Wp + Wp^T) / 2``), computed here from that definition."""

from __future__ import annotations

import pytest
import torch

from nocollapse.errors import ConfigError
from nocollapse.predictors import build_predictor


def _loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.nn.functional.normalize(predicted, dim=1)
    return -2 * (p * torch.nn.functional.normalize(target, dim=1)).sum(1).mean()


def test_symmetric_linear_predictor_takes_the_symmetrise_after_step_trajectory() -> None:
    torch.manual_seed(0)
    d, batch, steps = 16, 32, 25
    lr, momentum, decay = 0.05, 0.9, 4e-4
    predictor = build_predictor("linear", d, symmetrize=True).double()
    start = predictor.matrix().detach().clone()
    assert torch.equal(start, start.T)
    # the reference: a plain matrix, SGD with momentum and weight decay as torch.optim.SGD
    # defines them, symmetrised after every step
    reference = start.clone().requires_grad_(True)
    buffer = torch.zeros_like(start)
    optimiser = torch.optim.SGD(predictor.parameters(), lr=lr, momentum=momentum,
                                weight_decay=decay)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        z = torch.randn(batch, d, generator=generator, dtype=torch.float64)
        target = z @ torch.randn(d, d, generator=generator, dtype=torch.float64)
        optimiser.zero_grad()
        _loss(predictor(z), target).backward()
        optimiser.step()
        grad = torch.autograd.grad(_loss(z @ reference.T, target), reference)[0]
        with torch.no_grad():
            buffer = momentum * buffer + grad + decay * reference
            updated = reference - lr * buffer
            reference = ((updated + updated.T) / 2).requires_grad_(True)
    moved = (reference - start).norm() / start.norm()
    assert moved > 0.05, "the steps did not move Wp: the comparison would test nothing"
    # float64 round-off over 25 steps of d = 16 sums: far below the move itself
    assert torch.allclose(predictor.matrix(), reference, rtol=0, atol=1e-12 * start.norm())
    plain = build_predictor("linear", d)
    assert not torch.equal(plain.matrix(), plain.matrix().T), "default stays unconstrained"


def test_the_option_is_refused_on_other_kinds_and_with_a_wrong_type() -> None:
    with pytest.raises(ConfigError, match="symmetrize"):
        build_predictor("mlp", 8, symmetrize=True)
    with pytest.raises(ConfigError, match="symmetrize"):
        build_predictor("linear", 8, symmetrize="yes")
