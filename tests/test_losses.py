"""Losses: known values, the identities between them, IsoLoss gradients, symmetrisation."""

from __future__ import annotations

import pytest
import torch

from nocollapse.losses import (
    LOSSES,
    Direction,
    cosine_loss,
    isoloss_cosine,
    isoloss_l2,
    l2_loss,
    normalized_l2_loss,
    symmetrised,
)

pytestmark = pytest.mark.numerical  # float tolerances on torch products and gradients


def test_cosine_loss_extremes_and_scale_invariance() -> None:
    torch.manual_seed(0)
    z, p = torch.randn(8, 5), torch.randn(8, 5)
    torch.testing.assert_close(cosine_loss(z, z), torch.tensor(-1.0))
    torch.testing.assert_close(cosine_loss(z, -z), torch.tensor(1.0))
    torch.testing.assert_close(cosine_loss(3.0 * p, 0.5 * z), cosine_loss(p, z))
    assert -1.0 < cosine_loss(p, z).item() < 1.0


def test_normalized_l2_is_two_plus_two_cosine_and_the_distance_of_unit_vectors() -> None:
    torch.manual_seed(1)
    p, z = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    torch.testing.assert_close(normalized_l2_loss(p, z), 2 + 2 * cosine_loss(p, z))
    direct = (p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)).pow(2)
    torch.testing.assert_close(normalized_l2_loss(p, z), direct.sum(1).mean())


def test_l2_is_unnormalised_squared_distance_summed_over_dims() -> None:
    torch.manual_seed(2)
    p, z = torch.randn(8, 5), torch.randn(8, 5)
    torch.testing.assert_close(l2_loss(p, z), ((p - z) ** 2).sum(1).mean())
    # unlike the normalised forms it sees scale
    assert l2_loss(2 * p, 2 * z) > 3.9 * l2_loss(p, z)
    assert l2_loss(z, z) == 0


def _symmetric_psd(d: int) -> torch.Tensor:
    m = torch.randn(d, d, dtype=torch.float64)
    return m @ m.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _iso(kind: str, z, zt, p, Wp):
    return isoloss_l2(z, zt, p) if kind == "l2" else isoloss_cosine(z, zt, p, Wp)


@pytest.mark.parametrize(("kind", "plain"), [("l2", l2_loss), ("cosine", normalized_l2_loss)])
@pytest.mark.parametrize("seed", [0, 1])
def test_isoloss_gradient_in_z_equals_plain_gradient_in_p(kind, plain, seed) -> None:
    """docs/theory.md#isoloss: grad_z L_iso = grad_p L at p = Wp z (one factor Wp^T dropped)."""
    torch.manual_seed(seed)
    Wp = _symmetric_psd(6)
    z = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(7, 6, dtype=torch.float64)
    (grad_z,) = torch.autograd.grad(_iso(kind, z, zt, z @ Wp.T, Wp), z)
    p_leaf = (z.detach() @ Wp.T).requires_grad_(True)
    (grad_p,) = torch.autograd.grad(plain(p_leaf, zt), p_leaf)
    torch.testing.assert_close(grad_z, grad_p)
    # the ordinary gradient through the predictor carries the extra Wp^T
    (grad_through,) = torch.autograd.grad(plain(z @ Wp.T, zt), z)
    torch.testing.assert_close(grad_through, grad_p @ Wp)
    assert not torch.allclose(grad_z, grad_through)


@pytest.mark.parametrize("kind", ["l2", "cosine"])
def test_isoloss_sends_no_gradient_to_target_prediction_or_predictor(kind) -> None:
    torch.manual_seed(3)
    Wp = _symmetric_psd(4).requires_grad_(True)
    z = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(_iso(kind, z, zt, p, Wp), [z, zt, p, Wp], allow_unused=True)
    assert grads[0] is not None and grads[0].abs().sum() > 0
    assert all(g is None or g.abs().sum() == 0 for g in grads[1:])


def test_isoloss_l2_value_is_the_plain_l2_of_the_prediction() -> None:
    torch.manual_seed(6)
    z, zt, p = (torch.randn(5, 4, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(isoloss_l2(z, zt, p), l2_loss(p, zt))


def test_symmetrised_is_a_sum_of_both_directions_in_both_call_forms() -> None:
    torch.manual_seed(4)
    a1, b1, a2, b2 = (torch.randn(4, 3) for _ in range(4))
    expected = l2_loss(a1, b1) + l2_loss(a2, b2)
    torch.testing.assert_close(symmetrised(l2_loss, a1, b1, a2, b2), expected)
    torch.testing.assert_close(symmetrised(l2_loss, (a1, b1), (a2, b2)), expected)
    # a mean would give 1x here, the sum 2x
    torch.testing.assert_close(symmetrised(l2_loss, a1, b1, a1, b1), 2 * l2_loss(a1, b1))


def test_symmetrised_gradient_is_the_sum_of_the_two_gradients() -> None:
    torch.manual_seed(5)
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    t1, t2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    (g_sym,) = torch.autograd.grad(symmetrised(cosine_loss, z, t1, z, t2), z)
    (g1,) = torch.autograd.grad(cosine_loss(z, t1), z)
    (g2,) = torch.autograd.grad(cosine_loss(z, t2), z)
    torch.testing.assert_close(g_sym, g1 + g2)


def test_symmetrised_refuses_a_wrong_argument_count() -> None:
    a = torch.randn(2, 2)
    with pytest.raises(TypeError, match="four tensors"):
        symmetrised(l2_loss, a, a, a)


BUILT_IN = ("l2", "normalized-l2", "cosine", "isoloss-l2", "isoloss-cosine")


def test_the_built_in_losses_are_registered_and_each_entry_works() -> None:
    """A property, not the exact names: a registered or plugin loss may sit beside them."""
    assert set(BUILT_IN) <= set(LOSSES)
    torch.manual_seed(7)
    Wp = _symmetric_psd(4)
    for name in BUILT_IN:
        entry = LOSSES[name]
        z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
        target = torch.randn(6, 4, dtype=torch.float64)
        value = entry.fn(Direction(z, z @ Wp.T, target, Wp if entry.needs_matrix else None))
        assert value.ndim == 0 and torch.isfinite(value), name
        (grad,) = torch.autograd.grad(value, z)
        assert grad.abs().sum() > 0, name  # it trains the online branch
        assert entry.help and entry.gain > 0
        assert entry.base is None or entry.base in LOSSES
