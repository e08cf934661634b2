"""Backbones, heads and losses: shapes, and the identities the losses must satisfy."""

from __future__ import annotations

import pytest
import torch

from nocollapse.errors import ConfigError
from nocollapse.losses import (
    cosine_loss,
    isoloss_cosine,
    isoloss_l2,
    l2_loss,
    normalized_l2_loss,
    symmetrised,
)
from nocollapse.models import MLPPredictor, ProjectorMLP, build_backbone


@pytest.mark.parametrize(("name", "channels", "size", "dim"), [
    ("small_convnet", 1, 28, 128), ("small_convnet", 1, 8, 128), ("small_convnet", 3, 32, 128),
    ("small_resnet", 3, 32, 128), ("resnet18", 3, 32, 512), ("resnet18", 3, 128, 512),
])
def test_backbones_map_images_to_their_feature_dim(name, channels, size, dim) -> None:
    module, feat_dim = build_backbone(name, channels, size)
    assert feat_dim == dim
    assert module(torch.randn(2, channels, size, size)).shape == (2, dim)


def test_resnet50_feature_dim_and_stems() -> None:
    small, dim = build_backbone("resnet50", 3, 32)
    assert dim == 2048
    large, _ = build_backbone("resnet50", 3, 224)
    assert small.stem[0].kernel_size == (3, 3) and large.stem[0].kernel_size == (7, 7)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in small.stem)


def test_unknown_backbone_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        build_backbone("resnet19", 3, 32)


def test_projector_and_predictor_shapes_and_last_bn() -> None:
    proj = ProjectorMLP(64, 32, 16, num_layers=3, last_bn=True)
    out = proj(torch.randn(10, 64))
    assert out.shape == (10, 16)
    assert torch.allclose(out.mean(0), torch.zeros(16), atol=1e-5)  # BN without affine
    assert MLPPredictor(16, 4)(out).shape == (10, 16)


def test_loss_values_on_known_inputs() -> None:
    z = torch.randn(8, 5)
    assert torch.isclose(cosine_loss(z, z), torch.tensor(-1.0))
    assert torch.isclose(cosine_loss(z, -z), torch.tensor(1.0))
    p = torch.randn(8, 5)
    assert torch.isclose(normalized_l2_loss(p, z), 2 + 2 * cosine_loss(p, z))
    assert torch.isclose(l2_loss(p, z), ((p - z) ** 2).sum(1).mean())


def test_symmetrised_is_a_sum_not_a_mean() -> None:
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.isclose(symmetrised(l2_loss, (a, b), (b, a)), 2 * l2_loss(a, b))


def _symmetric_psd(d: int) -> torch.Tensor:
    m = torch.randn(d, d, dtype=torch.float64)
    return m @ m.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


@pytest.mark.parametrize(("iso", "plain"), [("l2", l2_loss), ("cosine", normalized_l2_loss)])
def test_isoloss_gradient_in_z_equals_plain_gradient_in_p(iso, plain) -> None:
    """papers.md s. 2: grad_z L_iso = grad_p L at p = Wp z (one Wp^T dropped)."""
    torch.manual_seed(0)
    Wp = _symmetric_psd(6)
    z = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(7, 6, dtype=torch.float64)
    p = z @ Wp.T
    surrogate = isoloss_l2(z, zt, p) if iso == "l2" else isoloss_cosine(z, zt, p, Wp)
    (grad_z,) = torch.autograd.grad(surrogate, z)
    p_leaf = (z.detach() @ Wp.T).requires_grad_(True)
    (grad_p,) = torch.autograd.grad(plain(p_leaf, zt), p_leaf)
    torch.testing.assert_close(grad_z, grad_p)
    # and it is not the ordinary gradient through the predictor
    (grad_through,) = torch.autograd.grad(plain(z @ Wp.T, zt), z)
    assert not torch.allclose(grad_z, grad_through)
