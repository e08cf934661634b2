"""Methods: presets, learner_config, SiameseLearner mechanics, and the collapse ablations."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional

from _numeric import eigh_error, normalised_error, rounding_error, sqrt_function_error
from nocollapse.errors import ConfigError
from nocollapse.methods import PRESETS, SiameseLearner, cosine_tau, learner_config, method_names
from nocollapse.predictors import SpectralPredictor

SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 8}


def _learner(method: str, **overrides: object) -> SiameseLearner:
    torch.manual_seed(0)
    return SiameseLearner(learner_config(method, **{**SMALL, **overrides}), 1, 8)


def _views(gen: torch.Generator, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy views of points drawn around 8 fixed Gaussian cluster centres, as 1x8x8 images."""
    centres = 2 * torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    x = centres[torch.randint(0, 8, (n,), generator=gen)] + 0.5 * torch.randn(n, 64, generator=gen)
    return tuple((x + 0.5 * torch.randn(n, 64, generator=gen)).view(n, 1, 8, 8) for _ in range(2))


def _collapse_level(z: torch.Tensor) -> float:
    """Mean per-dimension std of l2-normalised embeddings times sqrt(d): 0 when collapsed."""
    return float(functional.normalize(z, dim=1).std(0).mean() * z.shape[1] ** 0.5)


@pytest.mark.parametrize("method", sorted(PRESETS))
def test_every_preset_builds_and_steps(method: str) -> None:
    learner = _learner(method)
    x1, x2 = _views(torch.Generator().manual_seed(1), 16)
    out = learner(x1, x2)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.z1.shape == out.p2.shape == (16, 16) and not out.z1.requires_grad
    out.loss.backward()
    assert learner.encode(x1).shape[0] == 16
    assert learner.correlation() is not None and learner.correlation().shape == (16, 16)


def test_preset_switches_follow_the_papers() -> None:
    assert learner_config("byol").target == "ema" and learner_config("byol").predictor == "mlp"
    assert learner_config("simsiam").target == "stopgrad"
    dp = learner_config("directpred")
    assert dp.predictor == "directpred" and dp.predictor_options["rho"] == 0.3
    assert learner_config("directcopy").predictor_options["eps"] == 0.25
    iso = learner_config("isoloss")
    assert iso.predictor == "closed-form" and iso.target == "stopgrad"
    assert iso.loss.startswith("isoloss")


@pytest.mark.numerical
def test_isoloss_preset_is_the_authors_deep_network_predictor() -> None:
    # fmi-basel/implicit-var-reg, scripts/pretrain/*/isoloss*.yaml: dp_alpha 0.5, eps 0, so
    # Wp = U diag((s / s_max)^0.5) U^T of the EMA correlation; written here from that.
    cfg = learner_config("isoloss", **{k: v for k, v in SMALL.items()})
    assert cfg.predictor_options["alpha"] == 0.5
    learner = SiameseLearner(cfg, 1, 8)
    x = torch.randn(2, 16, 1, 8, 8)
    learner(x[0], x[1])
    s, U = torch.linalg.eigh(learner.correlation().double())
    p = [max(float(v), 0.0) / float(s.max()) for v in s]
    expected = U @ torch.diag(torch.tensor(p, dtype=torch.float64).sqrt()) @ U.T
    # the learner solves in float32 (eigh32), this reference in float64: each exact for
    # F_hat plus its eigh_error, which comes out through the square root (eps = 0 adds
    # nothing to lift a zero eigenvalue); plus the float32 rounding of the stored matrix.
    # (Tuned to one CPU before: 1e-5 absolute, 1e-4 relative.)
    top, d = float(s.max()), s.numel()
    delta = eigh_error(top, d) + eigh_error(top, d, torch.float64)
    tol = sqrt_function_error(normalised_error(delta, top)) + rounding_error(expected)
    torch.testing.assert_close(learner.predictor_matrix().double(), expected, atol=tol, rtol=0)


def test_overrides_apply_and_unknown_keys_name_the_closest() -> None:
    cfg = learner_config("directpred", eps=0.01, stop_gradient=False)
    assert cfg.predictor_options["eps"] == 0.01 and cfg.stop_gradient is False
    assert learner_config("directpred").predictor_options["eps"] != 0.01  # preset not mutated
    with pytest.raises(ConfigError, match="stop_gradient"):
        learner_config("byol", stop_gradiant=False)
    with pytest.raises(ConfigError, match="isoloss"):
        learner_config("simsiam", loss="isoloss-l2")  # needs a closed-form matrix
    with pytest.raises(ConfigError, match="nonsense"):
        learner_config("nonsense")


# What each spectral preset builds: its kind's options with the defaults filled in, and
# the shared part's settings. Pinned when the spectral kinds became registry entries of
# their own (issue 22); a training step of every preset was then checked bit for bit.
PRESET_PREDICTORS = {
    "directpred": ({"eps": 0.1, "subtract": None, "solver": "eigh32", "ns_steps": 7}, 0.3, 1,
                   False, "after"),
    "directcopy": ({"eps": 0.25, "normalize": True, "solver": "eigh32"}, 0.998, 1, True,
                   "each-view"),
    "isoloss": ({"eps": 0.0, "alpha": 0.5, "solver": "eigh32"}, 0.5, 1, True, "each-view"),
}


@pytest.mark.parametrize("method", sorted(PRESET_PREDICTORS))
def test_spectral_presets_build_the_predictor_they_always_built(method: str) -> None:
    options, rho, freq, per_view, update = PRESET_PREDICTORS[method]
    predictor = _learner(method).predictor
    assert isinstance(predictor, SpectralPredictor)
    assert predictor.options == options and predictor.correlation.rho == rho
    assert (predictor.freq, predictor.per_view, predictor.update) == (freq, per_view, update)
    assert predictor.background is None and predictor.solve_on == "auto"


def test_a_replaced_predictor_starts_from_its_own_defaults() -> None:
    # the isoloss preset's closed-form options (alpha, ...) do not leak into directcopy
    config = learner_config("isoloss", predictor="directcopy", eps=0.5)
    assert config.predictor_options == {"eps": 0.5}
    assert learner_config("directpred", predictor="directpred").predictor_options == {
        "rho": 0.3, "eps": 0.1, "freq": 1}  # the preset's own predictor keeps its options
    assert learner_config("directpred", predictor="linear").predictor_options == {}
    # an option set to None is dropped: the kind's default applies
    dropped = learner_config("directpred", eps=None, predictor_options={"rho": None})
    assert dropped.predictor_options == {"freq": 1}
    assert SiameseLearner(dropped, 1, 8).predictor.options["eps"] == 0.01
    # an option the kind does not have is refused by name, not ignored
    with pytest.raises(ConfigError, match=r"'predictor_options\.alpha'"):
        learner_config("directcopy", alpha=3.0)
    with pytest.raises(ConfigError, match=r"unknown linear option 'predictor_options\.eps'"):
        learner_config("directpred", predictor="linear", eps=0.1)
    with pytest.raises(ConfigError, match="'mlp' takes no options; got eps"):
        learner_config("directpred", predictor="mlp", eps=0.1)


def test_a_preset_registered_later_is_a_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PRESETS, "simsiam-linear", {"predictor": "linear", "loss": "cosine"})
    assert "simsiam-linear" in method_names()
    assert learner_config("simsiam-linear").predictor == "linear"


def test_cosine_tau_schedule_endpoints_and_monotone() -> None:
    assert cosine_tau(0.0, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_tau(1.0, 0.996, 1.0) == pytest.approx(1.0)
    assert cosine_tau(0.5, 0.9, 1.0) == pytest.approx(0.95)
    taus = [cosine_tau(t / 10, 0.9, 1.0) for t in range(11)]
    assert all(a <= b for a, b in itertools.pairwise(taus))


def test_update_target_is_ema_of_online_weights() -> None:
    learner = _learner("byol", base_tau=0.9, final_tau=1.0)
    online = dict(learner.backbone.named_parameters())
    with torch.no_grad():
        for p in online.values():
            p.add_(1.0)
    before = {k: v.clone() for k, v in learner.target_net[0].named_parameters()}
    tau = learner.update_target(0.0)
    assert tau == pytest.approx(0.9)
    for name, target in learner.target_net[0].named_parameters():
        torch.testing.assert_close(target, 0.9 * before[name] + 0.1 * online[name])
    assert _learner("simsiam").update_target(0.3) == 0.0


def test_correlation_updates_only_on_training_forward() -> None:
    learner = _learner("directpred")
    x1, x2 = _views(torch.Generator().manual_seed(2), 16)
    learner(x1, x2)
    F_hat, Wp = learner.correlation().clone(), learner.predictor_matrix().clone()
    learner.eval()
    with torch.no_grad():
        learner(x2 * 3, x1 * 3)
    assert torch.equal(learner.correlation(), F_hat)
    assert torch.equal(learner.predictor_matrix(), Wp)
    learner.train()
    learner(x2 * 3, x1 * 3)
    assert not torch.equal(learner.correlation(), F_hat)


def test_predictor_matrix_none_for_mlp_and_symmetric_for_spectral() -> None:
    assert _learner("simsiam").predictor_matrix() is None
    learner = _learner("isoloss")
    learner(*_views(torch.Generator().manual_seed(3), 16))
    Wp = learner.predictor_matrix()
    torch.testing.assert_close(Wp, Wp.T)
    assert isinstance(learner.predictor, SpectralPredictor)


def test_symmetric_loss_combines_the_two_directions() -> None:
    # BYOL sums the directions, SimSiam averages them (tests/test_symmetric_reduction.py)
    x1, x2 = _views(torch.Generator().manual_seed(4), 16)
    for method, reduction, factor in (("simsiam", "mean", 0.5), ("simsiam", "sum", 1.0)):
        both = _learner(method, symmetric_reduction=reduction).eval()
        one = _learner(method, symmetric=False).eval()
        with torch.no_grad():
            total = both(x1, x2).loss
            forward, backward = one(x1, x2).loss, one(x2, x1).loss
        torch.testing.assert_close(total, factor * (forward + backward))


def test_parameter_groups_split_decay_and_predictor_lr() -> None:
    learner = _learner("byol")
    groups = learner.parameter_groups(weight_decay=0.01, predictor_lr_scale=10.0)
    grouped = [p for g in groups for p in g["params"]]
    trainable = [p for p in learner.parameters() if p.requires_grad]
    assert len(grouped) == len({id(p) for p in grouped}) == len(trainable)
    for g in groups:
        if any(p.ndim <= 1 for p in g["params"]):
            assert g["weight_decay"] == 0.0  # no decay on BN and biases
    pred_ids = {id(p) for p in learner.predictor.parameters()}
    for g in groups:
        is_pred = {id(p) in pred_ids for p in g["params"]}
        assert len(is_pred) == 1
        assert g.get("lr_scale", 1.0) == (10.0 if is_pred.pop() else 1.0)


def _train(method: str, steps: int = 60, **overrides: object) -> tuple[float, float]:
    """(collapse level at init, after ``steps`` SGD steps) on Gaussian-cluster images."""
    torch.manual_seed(0)
    cfg = learner_config(method, proj_hidden_dim=64, proj_dim=32, proj_last_bn=False,
                         **overrides)
    learner = SiameseLearner(cfg, 1, 8)
    optim = torch.optim.SGD(learner.parameter_groups(0.05), lr=0.1, momentum=0.9)
    gen, probe = torch.Generator().manual_seed(1), _views(torch.Generator().manual_seed(5), 256)
    with torch.no_grad():
        start = _collapse_level(learner(*probe).z1)
    for step in range(steps):
        out = learner(*_views(gen))
        optim.zero_grad()
        out.loss.backward()
        optim.step()
        learner.update_target(step / steps)
    with torch.no_grad():
        return start, _collapse_level(learner(*probe).z1)


@pytest.fixture(scope="module")
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: threads only add contention on a shared machine
    yield
    torch.set_num_threads(old)


@pytest.mark.usefixtures("_threads")
def test_ablations_collapse_and_simsiam_does_not() -> None:
    # Measured (seed 0, 60 steps): init 0.79; SimSiam 0.77; no predictor 0.05; no
    # stop-gradient 0.03 (DirectPred preset: 0.87). Deterministic on CPU; wide margins.
    start, simsiam = _train("simsiam", pred_hidden_dim=16)
    _, no_predictor = _train("simsiam", predictor="none")
    _, no_stopgrad = _train("simsiam", pred_hidden_dim=16, stop_gradient=False)
    assert simsiam > 0.8 * start, (start, simsiam)
    assert no_predictor < 0.3 * start, (start, no_predictor)
    assert no_stopgrad < 0.3 * start, (start, no_stopgrad)
    assert math.isfinite(simsiam)


def test_isoloss_refuses_an_ablation_that_would_change_nothing() -> None:
    with pytest.raises(ConfigError, match="normalized-l2"):
        learner_config("isoloss", stop_gradient=False)
    assert learner_config("isoloss", stop_gradient=False, loss="normalized-l2").loss == (
        "normalized-l2")
    # the advice is each surrogate's own base loss, from the loss table
    with pytest.raises(ConfigError, match=r"use loss=l2 \(the surrogate's base loss\)"):
        learner_config("isoloss", stop_gradient=False, loss="isoloss-l2")


class _NoWidthNet(torch.nn.Module):
    """A user backbone without ``out_dim``: conv, then global pooling to 12 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 12, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean(dim=(2, 3))


def test_a_module_backbone_is_used_with_its_width_found_and_stats_untouched() -> None:
    net = _NoWidthNet()
    learner = SiameseLearner(learner_config("byol", **SMALL), 1, 8, backbone=net)
    assert learner.backbone is net and learner.projector.net[0].in_features == 12
    assert int(net.bn.num_batches_tracked) == 0 and net.training  # the probe left no trace
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x1, x2 = torch.randn(2, 16, 1, 8, 8)
    learner(x1, x2).loss.backward()
    assert net.conv.weight.grad is not None
    assert learner.target_net is not None and learner.target_net[0] is not net  # its own copy


def test_a_module_backbone_with_out_dim_is_trusted_and_a_map_output_refused() -> None:
    net = _NoWidthNet()
    net.out_dim = 12
    SiameseLearner(learner_config("simsiam", **SMALL), 1, 8, backbone=net)
    with pytest.raises(ConfigError, match=r"\(B, width\)"):
        SiameseLearner(learner_config("simsiam", **SMALL), 1, 8,
                       backbone=torch.nn.Conv2d(1, 4, 3))
