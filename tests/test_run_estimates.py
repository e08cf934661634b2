"""eta_c with the data's scale, and the run's tau (docs/theory.md#theory-in-a-run).

The originals are computed here from their definitions in tian2021 (Lemma 1's flow with
``X = x I``, ``X' = sigma^2 X``; ``Wa = tau W``; the EMA ``Wa <- m Wa + (1 - m) W``),
independently of the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nocollapse.diagnostics import (
    critical_eta,
    data_scale,
    smoothed,
    target_online_ratio,
)
from nocollapse.errors import ConfigError
from nocollapse.theory.linear_flow import FlowConfig, integrate_flow

SIGMA2 = 0.5


def _flow_end(x: float, eta: float, p0: float = 0.6) -> np.ndarray:
    """Predictor eigenvalues at the end of tian2021's symmetrised SimSiam flow with X = x I."""
    n1, n2 = 6, 3
    cfg = FlowConfig(X=x * np.eye(n1), Xp=SIGMA2 * x * np.eye(n1), eta=eta, symmetric=True)
    rows = np.linalg.qr(np.random.default_rng(0).standard_normal((n1, n2)))[0].T
    # on the invariant parabola s = x p^2 / alpha_p: W W^T = p0^2 I, F = x W W^T
    dt = 0.1 / max(x, 10 * eta)
    steps = int(60 / eta / dt)  # 60 decay times: a collapsing mode is below 1e-12 by then
    end = integrate_flow(p0 * np.eye(n2), p0 * rows, cfg, dt, steps, record_every=steps)
    return np.linalg.eigvalsh(end.Wp[-1])


@pytest.mark.parametrize("x", [0.25, 1.0, 4.0])
def test_matrix_flow_collapses_exactly_where_critical_eta_says(x: float) -> None:
    eta_c = critical_eta(SIGMA2, tau=1.0, data_scale=x)
    below, above = _flow_end(x, 0.99 * eta_c), _flow_end(x, 1.01 * eta_c)
    assert np.all(np.abs(above) < 1e-9), f"x={x}: 1.01 eta_c must collapse, p={above}"
    # the surviving mode sits at the upper root of x (1+sigma^2) p^2 - x p + eta = 0, the
    # fixed point of dp/dt = x p^2 [1 - (1+sigma^2) p] - eta p (computed here from it);
    # 1% below eta_c the two roots are 0.1 apart and the approach is slow: rtol 1e-4
    upper = max(np.roots([x * (1 + SIGMA2), -x, 0.99 * eta_c]).real)
    np.testing.assert_allclose(below, upper, rtol=1e-4)
    if x > 1:  # the formula without the scale would call this run collapsed
        assert 0.99 * eta_c > critical_eta(SIGMA2)


def test_data_scale_four_settles_where_the_issue_measured() -> None:
    # sigma^2 = 0.5, eta = 0.3: x = 1 collapses (eta > 1/6), x = 4 settles at 0.5805
    assert np.all(np.abs(_flow_end(1.0, 0.3)) < 1e-9)
    np.testing.assert_allclose(_flow_end(4.0, 0.3), (1 + math.sqrt(0.55)) / 3, rtol=1e-6)


def test_critical_eta_scales_linearly_and_refuses_a_non_positive_scale() -> None:
    assert critical_eta(0.5, 1.0, 4.0) == pytest.approx(4 / 6, rel=1e-15)
    assert critical_eta(0.0, 0.5, 2.0) == pytest.approx(2 / 16, rel=1e-15)
    with pytest.raises(ConfigError, match="data_scale"):
        critical_eta(0.5, 1.0, 0.0)


def _linear_views(W: np.ndarray, x: float, n: int, seed: int,
                  X_shape: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Two augmented views of n inputs of covariance x I (or X_shape) through W."""
    rng = np.random.default_rng(seed)
    d_in = W.shape[1]
    root = np.sqrt(x) * np.eye(d_in) if X_shape is None else np.linalg.cholesky(X_shape)
    mean = rng.standard_normal((n, d_in)) @ root.T
    views = [mean + 0.5 * rng.standard_normal((n, d_in)) @ root.T for _ in range(2)]
    return mean, views[0] @ W.T, views[1] @ W.T


def test_data_scale_recovers_the_input_variance_of_a_linear_map() -> None:
    rng = np.random.default_rng(1)
    W, bias = rng.standard_normal((8, 16)), rng.standard_normal(8)
    n = 20000
    _, z1, z2 = _linear_views(W, 3.0, n, seed=2)
    # sampling error of a mean of n products: a few units of 1/sqrt(n) relative
    assert data_scale(z1 + bias, z2 + bias, W, bias) == pytest.approx(3.0, rel=6 / math.sqrt(n))
    # anisotropic X: the variance along W's rows, tr(W X W^T) / ||W||_F^2, by definition
    A = rng.standard_normal((16, 16))
    X = A @ A.T / 16 + 0.1 * np.eye(16)
    _, z1, z2 = _linear_views(W, 1.0, n, seed=3, X_shape=X)
    expected = np.trace(W @ X @ W.T) / np.sum(W**2)
    assert data_scale(z1, z2, W) == pytest.approx(expected, rel=8 / math.sqrt(n))
    # the loss's gain multiplies; a normalised loss divides by rms|p| rms|z_t|
    assert data_scale(z1, z2, W, gain=4.0) == pytest.approx(4 * data_scale(z1, z2, W))
    p, t = 2.0 * z1, 3.0 * z2
    rms = math.sqrt(np.mean(np.sum(p**2, 1)) * np.mean(np.sum(t**2, 1)))
    assert data_scale(z1, z2, W, prediction=p, target=t) == pytest.approx(
        data_scale(z1, z2, W) / rms, rel=1e-12)
    assert math.isnan(data_scale(np.zeros((4, 8)), np.zeros((4, 8)), W))
    with pytest.raises(ConfigError, match="shape"):
        data_scale(z1, z2, W.T)
    with pytest.raises(ConfigError, match="both"):
        data_scale(z1, z2, W, prediction=p)


def test_target_online_ratio_is_exact_for_a_proportional_target() -> None:
    rng = np.random.default_rng(4)
    W = rng.standard_normal((8, 12))
    h = rng.standard_normal((64, 12))
    for tau in (0.0, 0.3, 0.97, 1.0):
        # float64 round-off of a ratio of two sums of 512 products: ~1e-13 relative
        assert target_online_ratio(h @ W.T, h @ (tau * W).T) == pytest.approx(tau, abs=1e-13)
    assert target_online_ratio(h @ W.T, h @ W.T) == 1.0  # SimSiam: the target is the online
    assert target_online_ratio(h @ W.T, h @ (1.5 * W).T) == 1.0  # shrinking online: range
    assert target_online_ratio(h @ W.T, -(h @ W.T)) == 0.0
    assert math.isnan(target_online_ratio(np.zeros((3, 2)), np.ones((3, 2))))


def test_target_online_ratio_lands_on_the_ema_of_a_synthetic_linear_run() -> None:
    # a linear encoder growing by the factor e^g a step plus a random walk, and its EMA
    # target at a fixed momentum m; the theory's tau (Wa = tau W, isotropic X) is the
    # Frobenius projection <Wa, W> / ||W||^2, computed from the weights themselves
    rng = np.random.default_rng(5)
    m, g = 0.99, 2e-3
    W = rng.standard_normal((8, 12))
    Wa = W.copy()
    for _ in range(3000):
        W = math.exp(g) * W + 1e-3 * rng.standard_normal(W.shape)
        Wa = m * Wa + (1 - m) * W
    truth = float(np.sum(Wa * W) / np.sum(W * W))
    # the deterministic part alone: Wa = tau W with tau e^g = m tau + (1 - m) e^g
    assert truth == pytest.approx((1 - m) * math.exp(g) / (math.exp(g) - m), rel=1e-3)
    n = 4096
    h = rng.standard_normal((n, 12))
    estimate = target_online_ratio(h @ W.T, h @ Wa.T)
    # sampling error of sum h^T A h / sum h^T B h around its mean, A = sym(Wa^T W),
    # B = W^T W: std = sqrt(2 tr(((A - truth B))^2) / n) / tr(B) for Gaussian h
    A = (Wa.T @ W + W.T @ Wa) / 2
    B = W.T @ W
    std = math.sqrt(2 * np.trace((A - truth * B) @ (A - truth * B)) / n) / np.trace(B)
    assert abs(estimate - truth) < 6 * std + 1e-12
    assert 0.0 <= estimate <= 1.0


def test_smoothed_is_the_median_of_the_last_window() -> None:
    assert smoothed([5.0, 1.0, 2.0, 3.0], window=3) == 2.0
    assert smoothed([0.0625, 1.0, 0.9, 0.95, float("nan")], window=10) == pytest.approx(0.925)
    assert math.isnan(smoothed([]))
    with pytest.raises(ConfigError):
        smoothed([1.0], window=0)


def test_learner_output_layer_is_the_map_that_produces_the_embeddings() -> None:
    import torch

    from nocollapse.methods import SiameseLearner, learner_config

    torch.manual_seed(0)
    for method in ("simsiam", "byol"):  # last BatchNorm folded in / a plain last Linear
        learner = SiameseLearner(learner_config(method, proj_hidden_dim=64, proj_dim=16,
                                                pred_hidden_dim=16), 1, 16)
        learner.train()
        for _ in range(3):  # move the BatchNorms' running statistics off their start
            learner(torch.randn(32, 1, 16, 16), torch.randn(32, 1, 16, 16))
        learner.eval()  # running statistics: the folded map is then exact
        x = torch.randn(16, 1, 16, 16)
        with torch.no_grad():
            layers = list(learner.projector.net)
            last = max(i for i, m in enumerate(layers) if isinstance(m, torch.nn.Linear))
            h = torch.nn.Sequential(*layers[:last])(learner.backbone(x))
            z = learner.projector(learner.backbone(x))
        W, b = learner.output_layer()
        expected = h @ W.T + (0 if b is None else b)
        # float32 products of length 64: round-off ~ 64 * 6e-8 relative to |z|
        torch.testing.assert_close(expected, z, rtol=1e-4, atol=1e-4 * float(z.abs().max()))
    gain, normalised = learner.loss_gain()
    assert (gain, normalised) == (4.0, True)  # BYOL: 2 - 2 cos, both directions summed
