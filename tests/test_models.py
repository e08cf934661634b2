"""Backbones, projector and predictor heads: shapes, stems, BN options, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _numeric import forward_error_bound, gamma
from nocollapse.errors import ConfigError
from nocollapse.models import BACKBONES, MLPPredictor, ProjectorMLP, build_backbone

FEATURE_DIMS = {"small_convnet": 128, "small_convnet_2x2": 512, "small_convnet_4x4": 2048,
                "small_resnet": 128, "resnet18": 512, "resnet50": 2048}


@pytest.mark.parametrize("name", ["small_convnet", "small_resnet", "resnet18"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (1, 8), (3, 32)])
def test_backbone_maps_images_to_its_feature_dim(name, channels, size) -> None:
    torch.manual_seed(0)
    module, feat_dim = build_backbone(name, channels, size)
    assert feat_dim == FEATURE_DIMS[name]
    out = module(torch.randn(2, channels, size, size))
    assert out.shape == (2, feat_dim)
    assert torch.isfinite(out).all()


def test_resnet50_has_2048_features_and_the_small_image_stem() -> None:
    small, dim = build_backbone("resnet50", 3, 32)
    assert dim == 2048 == small.out_dim
    with torch.no_grad():  # an 8x8 input keeps this cheap; the pool makes any size work
        assert small(torch.randn(2, 3, 8, 8)).shape == (2, 2048)
    assert small.stem[0].kernel_size == (3, 3) and small.stem[0].stride == (1, 1)


def test_large_images_get_the_imagenet_stem() -> None:
    large, _ = build_backbone("resnet18", 3, 224)
    assert large.stem[0].kernel_size == (7, 7) and large.stem[0].stride == (2, 2)
    assert any(isinstance(m, nn.MaxPool2d) for m in large.stem)


@pytest.mark.parametrize(("size", "small_stem"), [(32, True), (96, True), (97, False)])
def test_resnet_stem_depends_on_image_size(size, small_stem) -> None:
    module, _ = build_backbone("small_resnet", 3, size)
    x = torch.randn(2, 3, size, size)
    stem_out = module.stem(x)
    # small-image stem: 3x3 stride-1 conv and no max-pool, so resolution is kept
    assert (stem_out.shape[-1] == size) is small_stem
    assert any(isinstance(m, nn.MaxPool2d) for m in module.stem) is not small_stem


@pytest.mark.parametrize(("size", "final"), [(28, 4), (32, 4), (8, 4), (4, 4)])
def test_small_convnet_downsamples_only_while_the_map_is_large(size, final) -> None:
    module, _ = build_backbone("small_convnet", 1, size)
    fmap = module.features(torch.randn(2, 1, size, size))
    assert fmap.shape[-2:] == (final, final)


def test_every_backbone_parameter_receives_a_gradient() -> None:
    module, _ = build_backbone("small_convnet", 1, 28)
    module(torch.randn(4, 1, 28, 28)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.numerical
def test_eval_mode_output_of_an_image_does_not_depend_on_its_batch() -> None:
    torch.manual_seed(0)
    module, _ = build_backbone("small_convnet", 1, 28)
    module.eval()
    x = torch.randn(5, 1, 28, 28)
    # in float64, so that the kernels each batch size picks (they round differently) stay
    # far below the property's scale: both within forward_error_bound of the exact output
    # (was float32 with rtol=1e-4, atol=1e-5: tuned to one CPU)
    module, x = module.double(), x.double()
    with torch.no_grad():
        difference = (module(x)[:1] - module(x[:1])).abs()
        bound = 2 * forward_error_bound(module, x[:1], torch.float64)
        assert float(bound.max()) < 1e-3 * float(module(x[:1]).abs().max())  # still sharp
    assert bool((difference <= bound).all())


@pytest.mark.parametrize(("name", "channels", "size", "match"), [
    ("resnet19", 3, 32, "resnet18"), ("small_convnet", 0, 28, "in_channels"),
    ("small_convnet", 1, -4, "image_size")])
def test_bad_backbone_arguments_are_refused_naming_the_fix(name, channels, size, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_backbone(name, channels, size)


def test_backbone_names_are_the_documented_ones() -> None:
    assert set(BACKBONES) == set(FEATURE_DIMS)


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_projector_layer_count_and_batch_norm_switch(num_layers, batch_norm) -> None:
    proj = ProjectorMLP(24, 32, 16, num_layers=num_layers, batch_norm=batch_norm)
    assert proj(torch.randn(10, 24)).shape == (10, 16)
    assert _count(proj, nn.Linear) == num_layers
    assert _count(proj, nn.BatchNorm1d) == (num_layers - 1 if batch_norm else 0)


@pytest.mark.numerical
def test_projector_last_bn_standardises_the_output() -> None:
    torch.manual_seed(0)
    proj = ProjectorMLP(24, 32, 16, num_layers=3, last_bn=True)
    last = list(proj.modules())[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine
    seen: dict[str, torch.Tensor] = {}
    last.register_forward_hook(lambda _module, args, _out: seen.update(x=args[0].detach()))
    out = proj(3.0 * torch.randn(64, 24) + 5.0)
    # BN's eps makes the variance v / (v + eps) for the batch variance v of its input (not
    # 1: 2e-4 below it here). Rounding: the batch mean's error gamma_64 times the input's
    # mean |x| (kappa = mean |x| / std x of the standardised scale), the variance's
    # gamma_64, a few u more; twice over for the variance.
    x = seen["x"].double()
    v = x.var(0, unbiased=False)
    kappa = float((x.abs().mean(0) / v.sqrt()).max())
    tol = 2 * gamma(64) * (1 + kappa)
    torch.testing.assert_close(out.mean(0), torch.zeros(16), atol=tol, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False).double(), v / (v + last.eps),
                               atol=2 * tol, rtol=0)
    plain = ProjectorMLP(24, 32, 16, num_layers=3, last_bn=False)
    assert isinstance(list(plain.modules())[-1], nn.Linear)


def test_projector_refuses_zero_layers() -> None:
    with pytest.raises(ConfigError, match="num_layers"):
        ProjectorMLP(8, 8, 8, num_layers=0)


def test_mlp_predictor_is_linear_bn_relu_linear_with_a_bottleneck() -> None:
    pred = MLPPredictor(16, 4)
    kinds = [type(m) for m in pred.modules() if not isinstance(m, nn.Sequential)][1:]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    linears = [m for m in pred.modules() if isinstance(m, nn.Linear)]
    assert (linears[0].in_features, linears[0].out_features) == (16, 4)
    assert (linears[1].in_features, linears[1].out_features) == (4, 16)
    assert pred(torch.randn(10, 16)).shape == (10, 16)
    with pytest.raises(ConfigError, match="hidden_dim"):
        MLPPredictor(16, 0)


def test_small_resnet_halves_the_map_in_every_stage() -> None:
    module, _ = build_backbone("small_resnet", 1, 28)
    fmap = module.stages(module.stem(torch.randn(2, 1, 28, 28)))
    assert fmap.shape[-2:] == (4, 4)
    r18, _ = build_backbone("resnet18", 1, 32)
    assert r18.stages(r18.stem(torch.randn(2, 1, 32, 32))).shape[-2:] == (4, 4)


@pytest.mark.numerical
@pytest.mark.parametrize(("name", "pool"), [("small_convnet_2x2", 2), ("small_convnet_4x4", 4)])
def test_pooled_map_variants_keep_the_layout_that_global_pooling_averages_away(name,
                                                                               pool) -> None:
    torch.manual_seed(0)
    module, dim = build_backbone(name, 1, 28)
    assert dim == 128 * pool * pool
    module.eval().double()  # float64: the tolerance below is far from the property's scale
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        fmap = module.features(x)  # (2, 128, 4, 4)
        out = module(x).view(2, 128, pool, pool)
        # averaging the pooled cells gives back the global average of small_convnet
        # the same features (same batch, same kernels up to forward_error_bound), averaged in
        # two orders: gamma_16 of the 4 x 4 map's mean absolute value each
        tol = 2 * float(forward_error_bound(module.features, x, torch.float64).max())
        tol += 2 * gamma(16, torch.float64) * float(fmap.abs().mean((2, 3)).max())
        torch.testing.assert_close(out.mean((2, 3)), fmap.mean((2, 3)), rtol=0, atol=tol)
        # and a mirrored image gives another feature vector (the global average barely moves)
        mirrored = module(x.flip(-1)).view(2, 128, pool, pool)
    assert not torch.allclose(out, mirrored, atol=1e-3)
