"""halvagal2023 toy model and eigenmode ODEs (docs/theory.md#halvagal2023)."""

from __future__ import annotations

import numpy as np
import pytest

from _numeric import numeric_grad
from nocollapse.errors import ConfigError
from nocollapse.theory.halvagal2023 import (
    compare_trajectory,
    config_from_params,
    convergence_times,
    gain_spread,
    integrate_modes,
    mode_gains,
    mode_rhs,
    moving_target,
    rate_spread,
    run_comparison,
)
from nocollapse.theory.halvagal2023_sim import (
    ToyConfig,
    base_loss,
    base_loss_grads,
    closed_form_predictor,
    encoder_grad,
    iso_surrogate,
    simulate_toy,
)
from nocollapse.theory.result import SimulationParams

SIGMA2 = 0.01
FIXED = 1.0 / (1.0 + SIGMA2)


def _batch(seed: int = 0, b: int = 7, n: int = 6, m: int = 4):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)) * 0.5
    X1, X2 = rng.standard_normal((b, n)), rng.standard_normal((b, n))
    return W, X1, X2



def _initial_spectrum(seed: int = 0) -> np.ndarray:
    W0 = np.random.default_rng(seed).standard_normal((10, 15)) / 4
    return np.sort(np.linalg.eigvalsh(W0 @ W0.T))[::-1]


@pytest.mark.parametrize("loss", ["l2", "cosine"])
@pytest.mark.parametrize("stop_grad", [True, False])
def test_encoder_grad_matches_finite_differences(loss: str, stop_grad: bool) -> None:
    W, X1, X2 = _batch()
    Wp = closed_form_predictor(W)[0]
    z2_fixed = X2 @ W.T

    def f(V: np.ndarray) -> float:
        z2 = X2 @ V.T if not stop_grad else z2_fixed
        return base_loss(X1 @ V.T @ Wp, z2, loss)

    assert np.allclose(encoder_grad(W, Wp, X1, X2, loss, stop_grad), numeric_grad(f, W),
                       atol=1e-7)


@pytest.mark.parametrize("kind", ["l2", "cosine"])
def test_isoloss_grad_wrt_z_equals_ordinary_grad_wrt_p(kind: str) -> None:
    W, X1, X2 = _batch(1)
    Wp = closed_form_predictor(W)[0]
    z, z2 = X1 @ W.T, X2 @ W.T
    numeric = numeric_grad(lambda v: iso_surrogate(v, z, z2, Wp, kind), z)
    g_p = base_loss_grads(z @ Wp, z2, kind)[0] / z.shape[0]
    assert np.allclose(numeric, g_p, atol=1e-7)
    # The identity drops a factor Wp: the ordinary grad wrt z differs from it.
    assert not np.allclose(g_p @ Wp, g_p, atol=1e-3)


def test_cosine_gradient_is_orthogonal_to_w_but_iso_gradient_is_not() -> None:
    W, X1, X2 = _batch(2, b=50)
    Wp = closed_form_predictor(W)[0]
    g = encoder_grad(W, Wp, X1, X2, "cosine")
    g_iso = encoder_grad(W, Wp, X1, X2, "isoloss-cosine")
    assert abs(np.sum(g * W)) < 1e-12 * np.linalg.norm(g) * np.linalg.norm(W) + 1e-14
    assert abs(np.sum(g_iso * W)) > 1e-3 * np.linalg.norm(g_iso) * np.linalg.norm(W)


def test_mode_rhs_is_vectorised_over_states() -> None:
    rng = np.random.default_rng(3)
    S = rng.uniform(0.1, 2.0, size=(5, 4))
    for loss in ("l2", "isoloss-l2", "cosine", "isoloss-cosine"):
        f = mode_rhs(loss, 0.3)
        cols = np.stack([f(0.0, S[:, k]) for k in range(4)], axis=1)
        assert np.allclose(f(0.0, S), cols)


def test_euclidean_iso_ode_matches_logistic_solution() -> None:
    s0 = np.array([0.05, 0.5, 2.0])
    t = np.linspace(0, 3, 31)
    a = 1 + SIGMA2
    exact = s0 * np.exp(2 * t[:, None]) / (1 + a * s0 * (np.exp(2 * t[:, None]) - 1))
    got = integrate_modes(s0, t, "isoloss-l2", SIGMA2, augment="both")
    assert np.allclose(got, exact, rtol=1e-6)


@pytest.mark.parametrize("loss", ["l2", "isoloss-l2"])
@pytest.mark.parametrize(("augment", "fixed"), [("both", FIXED), ("target", 1.0)])
def test_euclidean_fixed_point_paper_vs_authors_code(loss: str, augment: str, fixed: float
                                                     ) -> None:
    # the paper's 1/(1+sigma^2) = 0.990 with noise on both views; the authors' toy code
    # puts it on the target view only, which moves the fixed point to 1
    cfg = ToyConfig(loss=loss, lr=0.05, steps=300, samples=4000, record_every=10,
                    augment=augment)
    comp = compare_trajectory(cfg, simulate_toy(cfg))
    assert comp.params["fixed_point"] == pytest.approx(fixed)
    assert np.allclose(comp.theory[-1], fixed, rtol=1e-3)
    assert np.allclose(comp.simulated[-1], fixed, rtol=3e-3)
    # not already there at the start: the test measures convergence
    assert np.max(np.abs(comp.simulated[0] - fixed)) > 0.5


@pytest.mark.parametrize("loss", ["cosine", "isoloss-cosine"])
def test_cosine_simulation_matches_mean_field_ode_within_half_percent(loss: str) -> None:
    # the authors' toy settings (N=15, M=10, sigma=0.1, lr 0.1, 1500 steps), 2000 samples a step.
    cfg = ToyConfig(loss=loss, samples=2000, record_every=50)
    comp = compare_trajectory(cfg, simulate_toy(cfg))
    assert np.max(comp.final_relative_error()) < 5e-3
    # the modes moved: the initial spectrum is far from the final one
    assert np.max(np.abs(comp.simulated[0] / comp.theory[-1] - 1)) > 0.5
    # cosine fixed point: lambda_m = lbar, i.e. an isotropic spectrum
    assert np.ptp(comp.theory[-1]) < 1e-3 * comp.theory[-1].mean()


def test_cosine_flow_conserves_frobenius_norm_and_cosine_iso_does_not() -> None:
    s0 = _initial_spectrum()
    t = np.linspace(0, 150, 16)
    plain = integrate_modes(s0, t, "cosine", SIGMA2).sum(axis=1)
    iso = integrate_modes(s0, t, "isoloss-cosine", SIGMA2).sum(axis=1)
    assert np.allclose(plain, s0.sum(), rtol=1e-6)
    assert abs(iso[-1] / s0.sum() - 1) > 0.05


def test_without_stop_gradient_the_toy_collapses() -> None:
    cfg = ToyConfig(loss="l2", stop_grad=False, lr=0.05, steps=400, samples=500)
    traj = simulate_toy(cfg)
    assert traj.eigenvalues[-1].max() < 1e-3 * traj.eigenvalues[0].max()


def test_cosine_without_stop_gradient_collapses_dimensionally() -> None:
    # The cosine loss is scale-free, so W cannot shrink: the spectrum loses rank instead.
    cfg = ToyConfig(loss="cosine", stop_grad=False, steps=600, samples=1000)
    traj = simulate_toy(cfg)
    s = traj.eigenvalues[-1]
    assert np.sum(s < 1e-4 * s[0]) >= cfg.m // 2
    assert np.sum(traj.eigenvalues[0] < 1e-2 * traj.eigenvalues[0, 0]) == 0
    assert traj.frob2[-1] == pytest.approx(traj.frob2[0], rel=0.01)


def test_without_predictor_modes_decay_at_rate_two_sigma2() -> None:
    # Wp = I: dW/dt = -sigma^2 W (docs/theory.md#tian2021, no predictor), so s(t) = s0 e^{-2 s2 t}.
    sigma2 = 0.5
    cfg = ToyConfig(loss="l2", predictor=False, sigma2=sigma2, lr=0.04, steps=200,
                    samples=1000, augment="both")
    traj = simulate_toy(cfg)
    decay = traj.frob2[-1] / traj.frob2[0]
    assert decay < 1e-3
    assert np.log(decay) / (-2 * sigma2 * traj.times[-1]) == pytest.approx(1.0, rel=0.05)


def test_convergence_times_of_exponential_relaxation() -> None:
    t = np.linspace(0, 10, 1001)
    s0 = np.array([0.1, 3.0])
    traj = 1 + (s0 - 1) * np.exp(-t[:, None])
    got = convergence_times(t, traj, 1.0, tol=0.01)
    assert np.allclose(got, np.log(np.abs(s0 - 1) / 0.01), atol=0.011)
    gap = convergence_times(t, traj, 1.0, tol=0.01, relative_to="initial_gap")
    assert np.allclose(gap, np.log(100), atol=0.011)


def test_isoloss_equalises_convergence_rates() -> None:
    s0 = _initial_spectrum()
    t = np.linspace(0, 30, 3001)
    eu = rate_spread(t, integrate_modes(s0, t, "l2", SIGMA2, augment="both"), FIXED, 0.05)
    iso = rate_spread(t, integrate_modes(s0, t, "isoloss-l2", SIGMA2, augment="both"), FIXED,
                      0.05)
    assert eu > 3 * iso


def test_run_comparison_defaults_and_bad_input() -> None:
    cfg = config_from_params(SimulationParams(model="halvagal2023"))
    assert (cfg.n, cfg.m, cfg.sigma2, cfg.steps, cfg.step_size) == (15, 10, 0.01, 1500, 1e-2)
    assert cfg.augment == "target"
    assert config_from_params(SimulationParams(loss="isoloss-cosine")).step_size == 0.1
    assert config_from_params(SimulationParams(augment="both")).augment == "both"
    comp = run_comparison(SimulationParams(model="halvagal2023", steps=20, n1=5, n2=3))
    assert comp.simulated.shape == comp.theory.shape == (21, 3)
    assert comp.extras["frob2_sim"].shape == (21,)
    with pytest.raises(ConfigError, match="sigma2"):
        config_from_params(SimulationParams(sigma2=-1.0))
    with pytest.raises(ConfigError, match="valid choices"):
        config_from_params(SimulationParams(loss="hinge"))
    with pytest.raises(ConfigError, match="eta"):
        config_from_params(SimulationParams(eta=0.1))
    with pytest.raises(ConfigError, match="augment"):
        config_from_params(SimulationParams(augment="online"))


def test_mode_gains_recover_the_eigenvalue_as_learning_rate_multiplier() -> None:
    # Euclidean ODE: d log s/dt = 2 lambda (1 - lambda/lambda*); IsoLoss: 2 (1 - ...).
    s0 = _initial_spectrum()
    t = np.linspace(0, 15, 1501)
    plain = integrate_modes(s0, t, "l2", SIGMA2)
    iso = integrate_modes(s0, t, "isoloss-l2", SIGMA2)
    g_iso = mode_gains(t, iso, 1.0)
    np.testing.assert_allclose(g_iso, 2.0, rtol=0.02)
    # the plain gains are 2 lambda over the run: between 2 s(0) and 2 s*
    g_plain = mode_gains(t, plain, 1.0)
    assert np.all(g_plain > 2 * np.minimum(s0, 1.0) * 0.98)
    assert np.all(g_plain < 2 * np.maximum(s0, 1.0) * 1.02)
    assert gain_spread(t, iso, 1.0) == pytest.approx(1.0, abs=0.02)
    assert gain_spread(t, plain, 1.0) > 5


def test_cosine_gains_against_the_moving_target() -> None:
    # The cosine ODE's modes move towards lbar(t): measured against it the IsoLoss gain
    # is the same for every mode, the plain one carries the factor lambda_m.
    s0 = _initial_spectrum()
    t = np.linspace(0, 20, 201)
    iso = integrate_modes(s0, t, "isoloss-cosine", SIGMA2)
    plain = integrate_modes(s0, t, "cosine", SIGMA2)
    assert gain_spread(t, iso, moving_target(iso)) == pytest.approx(1.0, abs=0.05)
    spread = gain_spread(t, plain, moving_target(plain))
    assert spread > 0.5 * s0.max() / s0.min()
    # a mode starting at its target is left out rather than divided by ~0
    assert np.isnan(gain_spread(t, plain, moving_target(plain), min_gap=10.0))


def test_cosine_gain_spread_plain_vs_iso_in_simulation() -> None:
    # the authors' toy (target-only noise), 200 steps = the GAIN_WINDOW of ODE time
    spreads = {}
    for loss in ("cosine", "isoloss-cosine"):
        cfg = ToyConfig(loss=loss, steps=200, samples=1000, record_every=10)
        traj = simulate_toy(cfg)
        spreads[loss] = gain_spread(traj.times, traj.eigenvalues,
                                    moving_target(traj.eigenvalues))
    assert spreads["isoloss-cosine"] < 0.5 * spreads["cosine"], spreads
