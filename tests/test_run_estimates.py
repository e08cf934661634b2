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
    data_modes,
    data_scale,
    mode_critical_etas,
    target_online_ratio,
    theory_time,
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
    # the loss's gain multiplies; a rescaled map (W, b) -> c (W, b) reads the same
    assert data_scale(z1, z2, W, gain=4.0) == pytest.approx(4 * data_scale(z1, z2, W))
    for c in (0.1, 10.0):
        assert data_scale(c * z1, c * z2, c * W) == pytest.approx(data_scale(z1, z2, W),
                                                                  rel=1e-12)
    assert math.isnan(data_scale(np.zeros((4, 8)), np.zeros((4, 8)), W))
    with pytest.raises(ConfigError, match="shape"):
        data_scale(z1, z2, W.T)


def test_target_online_ratio_is_exact_for_a_proportional_target() -> None:
    rng = np.random.default_rng(4)
    W = rng.standard_normal((8, 12))
    h = rng.standard_normal((64, 12))
    for tau in (0.0, 0.3, 0.97, 1.0):
        # float64 round-off of a ratio of two sums of 512 products: ~1e-13 relative
        assert target_online_ratio(h @ W.T, h @ (tau * W).T) == pytest.approx(tau, abs=1e-13)
    assert target_online_ratio(h @ W.T, h @ W.T) == 1.0  # SimSiam: the target is the online
    # not clipped: a target larger than the online network reads its ratio
    assert target_online_ratio(h @ W.T, h @ (1.5 * W).T) == pytest.approx(1.5, abs=1e-13)
    # a magnitude ratio: a target of the same size in another direction reads 1, where the
    # least-squares projection <t, z> / ||z||^2 reads the cosine between the two
    Q = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    rotated = h @ (2.0 * Q @ W).T
    assert target_online_ratio(h @ W.T, rotated) == pytest.approx(
        2.0 * np.linalg.norm(Q @ W @ h.T) / np.linalg.norm(W @ h.T), rel=1e-12)
    assert target_online_ratio(h @ W.T, -(h @ W.T)) == 1.0
    assert math.isnan(target_online_ratio(np.zeros((3, 2)), np.ones((3, 2))))


def test_target_online_ratio_lands_on_the_ema_of_a_synthetic_linear_run() -> None:
    # a linear encoder growing by the factor e^g a step plus a random walk, and its EMA
    # target at a fixed momentum m; the theory's tau (Wa = tau W, isotropic X) is the
    # magnitude ratio ||Wa||_F / ||W||_F, computed from the weights themselves
    rng = np.random.default_rng(5)
    m, g = 0.99, 2e-3
    W = rng.standard_normal((8, 12))
    Wa = W.copy()
    for _ in range(3000):
        W = math.exp(g) * W + 1e-3 * rng.standard_normal(W.shape)
        Wa = m * Wa + (1 - m) * W
    truth = float(np.linalg.norm(Wa) / np.linalg.norm(W))
    # the deterministic part alone: Wa = tau W with tau e^g = m tau + (1 - m) e^g
    assert truth == pytest.approx((1 - m) * math.exp(g) / (math.exp(g) - m), rel=1e-3)
    n = 4096
    h = rng.standard_normal((n, 12))
    estimate = target_online_ratio(h @ W.T, h @ Wa.T)
    # sampling error of r^2 = sum h^T A h / sum h^T B h around truth^2, A = Wa^T Wa,
    # B = W^T W: std = sqrt(2 tr((A - truth^2 B)^2) / n) / tr(B) for Gaussian h; r's is half
    A, B = Wa.T @ Wa, W.T @ W
    D = A - truth**2 * B
    std = math.sqrt(2 * np.trace(D @ D) / n) / np.trace(B) / (2 * truth)
    assert abs(estimate - truth) < 6 * std + 1e-12


def test_theory_time_counts_momentum() -> None:
    assert theory_time(0.06, 300, 0.9) == pytest.approx(180.0, rel=1e-15)
    assert theory_time(0.1, 50) == pytest.approx(5.0, rel=1e-15)
    with pytest.raises(ConfigError, match="momentum"):
        theory_time(0.1, 5, 1.0)


def _sampled_views(X: np.ndarray, Xp: np.ndarray, mean: np.ndarray, n: int, q: int,
                   seed: int) -> np.ndarray:
    """(n, q, d) views x + noise as the theory engine draws them (theory.linear_sgd), with
    the mean view's second moment X (mean + N(0, X - mean mean^T)) and noise N(0, X')."""
    rng = np.random.default_rng(seed)
    d = X.shape[0]
    centred = np.linalg.cholesky(X - np.outer(mean, mean)).T
    aug = np.linalg.cholesky(Xp).T
    base = mean + rng.standard_normal((n, 1, d)) @ centred
    return base + rng.standard_normal((n, q, d)) @ aug


@pytest.mark.numerical
def test_data_modes_recover_the_spectrum_on_one_uncentred_footing() -> None:
    rng = np.random.default_rng(6)
    d = 5
    U = np.linalg.qr(rng.standard_normal((d, d)))[0]
    x = np.array([3.0, 1.5, 0.8, 0.4, 0.2])
    sigma2 = np.array([0.2, 0.5, 1.0, 0.5, 2.0])
    X, Xp = U @ np.diag(x) @ U.T, U @ np.diag(sigma2 * x) @ U.T
    mean = 1.2 * U[:, 1]  # a mean along mode 2: part of the uncentred X, 1.44 of its 1.5
    n = 40000
    modes = data_modes(_sampled_views(X, Xp, mean, n, 4, seed=7))
    # relative sampling error of a second moment of n Gaussian draws ~ sqrt(2 / n) = 0.7%;
    # sigma_j^2 is a ratio of two such moments, and the modes' basis is estimated too
    assert modes.x == pytest.approx(x, rel=0.04)
    assert modes.sigma2 == pytest.approx(sigma2, rel=0.06)
    # a centred estimate would miss the mean: mode 2 would read 1.5 - 1.44 = 0.06
    assert abs(abs(modes.basis[:, 1] @ U[:, 1]) - 1.0) < 1e-2
    with pytest.raises(ConfigError, match="views"):
        data_modes(np.zeros((10, 1, 3)))


@pytest.mark.numerical
def test_per_mode_thresholds_from_sampled_data_decide_the_linear_flow() -> None:
    """tian2021's linear model (Lemma 1 flow, symmetrised predictor, SimSiam: tau = 1) on
    X with modes 2, 1, 0.5, 0.25 and X' = 0.5 X: eta_c,j = x_j / 6. With the thresholds
    measured from sampled views (not given), a weight decay 10% under eta_c,j keeps modes
    1..j and 10% over it loses mode j (after 2 eta t >= 25, far past the transient). The
    map's weights never enter the estimate: a rescaled W0 (x0.5, x2) changes nothing."""
    rng = np.random.default_rng(8)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    x = np.array([2.0, 1.0, 0.5, 0.25])
    X = U @ np.diag(x) @ U.T
    modes = data_modes(_sampled_views(X, 0.5 * X, np.zeros(4), 40000, 4, seed=9))
    eta_c = mode_critical_etas(modes)
    assert eta_c == pytest.approx(x / 6, rel=0.05)  # sampling error as above
    assert mode_critical_etas(modes, tau=0.5, gain=2.0) == pytest.approx(eta_c / 2, rel=1e-12)
    for j in (0, 2):
        for fraction, learned in ((0.9, j + 1), (1.1, j)):
            cfg = FlowConfig(X=X, Xp=0.5 * X, eta=fraction * float(eta_c[j]), symmetric=True)
            for scale in (0.5, 2.0):
                W0 = scale * np.linalg.qr(rng.standard_normal((4, 4)))[0]
                W = integrate_flow(0.9 * np.eye(4), W0, cfg, dt=0.05, steps=6000,
                                   record_every=6000).W[-1]
                kept = np.linalg.norm(W @ U, axis=0)  # W along each data mode
                assert np.all(kept[:learned] > 0.3) and np.all(kept[learned:] < 0.05), (
                    j, fraction, scale, kept)
