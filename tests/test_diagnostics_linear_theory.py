"""tian2021's quantities read off matrices and embeddings (docs/theory.md#theory-in-a-run)."""

from __future__ import annotations

import numpy as np
import pytest

from nocollapse.diagnostics import (
    augmentation_ratio,
    critical_eta,
    power_law_fit,
    predictor_in_basis,
    target_ratio,
)
from nocollapse.errors import ConfigError


def _rotation(d: int, seed: int = 0) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]


def test_directpred_predictor_has_exponent_one_half_in_f_basis() -> None:
    U = _rotation(12)
    s = np.geomspace(1.0, 1e-2, 12)
    F = (U * s) @ U.T
    Wp = (U * np.sqrt(s / s.max())) @ U.T  # DirectPred with eps = 0
    s_got, p = predictor_in_basis(F, Wp)
    np.testing.assert_allclose(s_got, s, rtol=1e-10)
    np.testing.assert_allclose(p, np.sqrt(s), rtol=1e-8)
    fit = power_law_fit(s_got, p)
    assert fit.exponent == pytest.approx(0.5, abs=1e-8)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10) and fit.modes == 12


def test_predictor_in_basis_reads_the_diagonal_not_wp_eigenvalues() -> None:
    # Wp with unrelated eigenvectors: p_j = u_j^T Wp u_j differs from Wp's eigenvalues
    F = (_rotation(6, 1) * np.arange(6, 0, -1.0)) @ _rotation(6, 1).T
    Wp = (_rotation(6, 2) * np.geomspace(1, 0.01, 6)) @ _rotation(6, 2).T
    _, p = predictor_in_basis(F, Wp)
    U = np.linalg.eigh(F)[1][:, ::-1]
    np.testing.assert_allclose(p, np.diag(U.T @ Wp @ U))
    assert not np.allclose(np.sort(p), np.sort(np.linalg.eigvalsh(Wp)))


def test_power_law_fit_leaves_out_modes_without_signal_and_reports_r2() -> None:
    s = np.array([1.0, 0.5, 0.25, 0.1, 1e-6, 0.0])
    p = np.array([1.0, 0.5, 0.25, 0.1, 0.7, 0.3])  # exponent 1 on the modes with signal
    fit = power_law_fit(s, p)
    assert fit.modes == 4 and fit.exponent == pytest.approx(1.0)
    noisy = power_law_fit(s[:4], p[:4] * np.array([1.0, 2.0, 0.5, 1.5]))
    assert noisy.r2 < 0.95
    with pytest.raises(ConfigError, match=">= 3 modes"):
        power_law_fit([1.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="differ"):
        power_law_fit([2.0, 2.0, 2.0, 2.0], [1.0, 0.5, 0.2, 0.1])  # isotropic F


def test_augmentation_ratio_recovers_sigma2() -> None:
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((20000, 8)) * np.linspace(0.5, 2, 8)
    scale = np.sqrt(0.3 * np.sum(np.linspace(0.5, 2, 8) ** 2) / 8)
    z1, z2 = (mean + scale * rng.standard_normal(mean.shape) for _ in range(2))
    assert augmentation_ratio(z1, z2) == pytest.approx(0.3, rel=0.03)
    assert augmentation_ratio(mean, mean) == 0.0


def test_target_ratio_matches_an_ema_chasing_a_growing_weight() -> None:
    # online weight w_t = e^{g t / 2} (its square grows at rate g); target a <- m a + (1-m) w
    momentum, growth = 0.99, 0.004
    w, a = 1.0, 1.0
    for _ in range(5000):
        w *= np.exp(growth / 2)
        a = momentum * a + (1 - momentum) * w
    assert target_ratio(momentum, growth) == pytest.approx(a / w, rel=2e-3)
    assert target_ratio(0.0, 0.5) == 1.0  # SimSiam
    assert target_ratio(0.99, 0.0) == 1.0
    assert np.isnan(target_ratio(0.99, -0.05))
    with pytest.raises(ConfigError):
        target_ratio(1.0, 0.0)


def test_critical_eta_is_the_one_definition() -> None:
    from nocollapse.theory import tian2021

    assert critical_eta(0.5) == pytest.approx(1 / 6)
    assert critical_eta(0.0, tau=0.5) == pytest.approx(1 / 16)
    assert tian2021.critical_eta is critical_eta
    np.testing.assert_allclose(critical_eta(np.array([0.0, 1.0])), [0.25, 0.125])
