"""bao2023 linear SimSiam with cosine loss and weight decay (docs/theory.md#bao2023)."""

from __future__ import annotations

import numpy as np
import pytest

from _numeric import numeric_grad
from nocollapse.errors import ConfigError
from nocollapse.theory.bao2023 import (
    SimSiamConfig,
    compare_trajectory,
    config_from_params,
    integrate_reduced,
    l2_threshold,
    noise_floor,
    predicted_scale,
    reduced_rhs,
    run_comparison,
    shape_time,
    simsiam_grads,
    simulate_simsiam,
)
from nocollapse.theory.halvagal2023_sim import base_loss
from nocollapse.theory.result import SimulationParams

SIGMA2, RHO = 0.5, 0.25



def _problem(seed: int = 0, b: int = 9, n1: int = 5, n2: int = 3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n2, n1)), rng.standard_normal((n2, n2)),
            rng.standard_normal((b, n1)), rng.standard_normal((b, n1)))


@pytest.mark.parametrize("loss", ["l2", "cosine"])
def test_simsiam_grads_match_finite_differences(loss: str) -> None:
    Phi, Psi, X1, X2 = _problem()
    z2 = X2 @ Phi.T  # stop-gradient: the target is a constant
    kind = loss
    g_phi, g_psi = simsiam_grads(Phi, Psi, X1, X2, loss)
    num_phi = numeric_grad(lambda P: base_loss(X1 @ P.T @ Psi.T, z2, kind), Phi)
    num_psi = numeric_grad(lambda Q: base_loss(X1 @ Phi.T @ Q.T, z2, kind), Psi)
    assert np.allclose(g_phi, num_phi, atol=1e-7)
    assert np.allclose(g_psi, num_psi, atol=1e-7)


def test_cosine_gradients_are_orthogonal_to_both_matrices() -> None:
    # Hence under gradient flow ||Phi||, ||Psi|| decay exactly as exp(-rho t).
    Phi, Psi, X1, X2 = _problem(1, b=40)
    g_phi, g_psi = simsiam_grads(Phi, Psi, X1, X2, "cosine")
    assert abs(np.sum(g_phi * Phi)) < 1e-12 * np.linalg.norm(g_phi) * np.linalg.norm(Phi)
    assert abs(np.sum(g_psi * Psi)) < 1e-12 * np.linalg.norm(g_psi) * np.linalg.norm(Psi)
    l2_phi = simsiam_grads(Phi, Psi, X1, X2, "l2")[0]
    assert abs(np.sum(l2_phi * Phi)) > 1e-3 * np.linalg.norm(l2_phi) * np.linalg.norm(Phi)


@pytest.mark.parametrize("side", [0.9, 1.1])
def test_reduced_l2_collapses_iff_rho_above_threshold(side: float) -> None:
    rho_c = l2_threshold(SIGMA2)
    assert rho_c == pytest.approx(1 / 6)
    rho, a = side * rho_c, 1 + SIGMA2
    p0 = np.array([0.3, 0.6, 1.0, 2.0])
    p = integrate_reduced(p0, np.linspace(0, 400, 41), "l2", rho, SIGMA2)[-1]
    if side > 1:
        assert np.all(p < 1e-6)
    else:
        p_plus = (1 + np.sqrt(1 - 4 * rho * a)) / (2 * a)  # tian2021 p*_+, tau = 1
        assert np.allclose(p, p_plus, rtol=1e-4)


def test_reduced_cosine_first_term_keeps_the_norm_and_equalises_the_modes() -> None:
    p = np.array([0.05, 0.3, 0.7, 1.2])
    f0 = reduced_rhs("cosine", 0.0, SIGMA2)(0.0, p)
    assert abs(np.dot(p, f0)) < 1e-12
    # modes below 1/kappa grow, above shrink
    kappa = np.sum(p**3) / np.sum(p**4)
    assert np.all(np.sign(f0) == np.sign(1 / kappa - p))
    t = np.linspace(0, 20, 21)
    traj = integrate_reduced(p, t, "cosine", RHO, SIGMA2)
    assert np.allclose(np.linalg.norm(traj, axis=1), np.linalg.norm(p) * np.exp(-RHO * t))
    assert np.ptp(traj[-1]) < 1e-3 * traj[-1].max()


def test_scale_shape_split_solves_the_stated_reduced_cosine_equation() -> None:
    from scipy.integrate import solve_ivp

    p0 = np.array([0.1, 0.4, 0.9, 1.5])
    t = np.linspace(0, 3, 7)
    direct = solve_ivp(reduced_rhs("cosine", RHO, SIGMA2), (0, 3), p0, t_eval=t,
                       rtol=1e-10, atol=1e-12).y.T
    assert np.allclose(integrate_reduced(p0, t, "cosine", RHO, SIGMA2), direct, rtol=1e-6)


def test_shape_time_is_exact_for_exponential_decay() -> None:
    t = np.linspace(0, 4, 5)
    a = 2.0 * np.exp(-0.3 * t)
    exact = (np.exp(0.6 * t) - 1) / (0.6 * 4.0)
    assert np.allclose(shape_time(t, a), exact, rtol=1e-12)
    assert np.allclose(shape_time(t, np.full(5, 2.0)), t / 4.0)


def test_l2_simulation_collapses_above_threshold() -> None:
    cfg = SimSiamConfig(loss="l2", rho=RHO, steps=1000, record_every=100)
    traj = simulate_simsiam(cfg)
    assert l2_threshold(cfg.sigma2) < RHO
    assert traj.eigenvalues[-1].max() < 1e-6 * traj.eigenvalues[0].max()


def test_cosine_simulation_norms_fall_then_modes_settle_at_positive_values() -> None:
    cfg = SimSiamConfig(loss="cosine", rho=RHO, steps=2000, record_every=5)
    traj = simulate_simsiam(cfg)
    t, s = traj.times, traj.eigenvalues
    late = t >= t[-1] / 2
    # not collapsed: every mode alive and stationary over the second half
    assert np.all(s[late, -1] > 0.3 * s[late, 0])
    first, second = s[late][: late.sum() // 2, 0], s[late][late.sum() // 2:, 0]
    assert second.mean() == pytest.approx(first.mean(), rel=0.1)
    # the norm fell a lot, at the flow rate exp(-rho t) while far above its plateau
    assert traj.norm_phi[late].mean() < 0.2 * traj.norm_phi[0]
    k = np.searchsorted(t, 2.0)
    assert traj.norm_phi[k] / traj.norm_phi[0] == pytest.approx(np.exp(-RHO * t[k]), rel=0.02)
    # the norms finish falling before the smallest mode stops decaying (log-scale progress)
    def progress(x: np.ndarray) -> np.ndarray:
        lx = np.log(x)
        return (lx[0] - lx) / (lx[0] - lx[late].mean())

    # the derived norm trajectory (flow decay, then the step-noise floor); measured <= 7%
    floor = noise_floor(cfg.lr, cfg.rho, cfg.sigma2, cfg.n1, cfg.n2, cfg.samples)[0]
    u = predicted_scale(t, traj.norm_phi[0] ** 2, floor, cfg.rho)
    assert np.allclose(traj.norm_phi**2, u, rtol=0.12)

    for q in (0.5, 0.9):
        t_norm = t[np.argmax(progress(traj.norm_phi) >= q)]
        t_norm_psi = t[np.argmax(progress(traj.norm_psi) >= q)]
        t_mode = t[np.argmax(progress(s[:, -1]) >= q)]
        assert max(t_norm, t_norm_psi) < t_mode


def test_cosine_plateau_is_set_by_the_discrete_step_not_the_flow() -> None:
    # The flow shrinks ||Phi|| forever; a plateau balancing lr^2 ||G||^2 (G ~ noise/sqrt(B))
    # against 2 lr rho ||Phi||^2 has ||Phi||^4 ~ lr / B. Measured ratios over t in [50, 100]
    # (4x batch): 0.52-0.55; (2x lr): 1.44-1.47.
    def plateau(lr: float, samples: int) -> float:
        cfg = SimSiamConfig(lr=lr, samples=samples, steps=int(60 / lr), record_every=10)
        traj = simulate_simsiam(cfg)
        return float(np.mean(traj.norm_phi[traj.times >= 30] ** 2))

    base = plateau(0.05, 64)
    assert plateau(0.05, 256) / base == pytest.approx(0.5, abs=0.1)
    assert plateau(0.1, 64) / base == pytest.approx(np.sqrt(2), abs=0.2)
    # the derived estimate; measured sim/prediction 0.99-1.18 over 9 settings
    predicted = noise_floor(0.05, RHO, SIGMA2, 16, 8, 64)[0]
    assert base / predicted == pytest.approx(1.0, abs=0.2)


def test_reduced_cosine_tracks_the_matrix_simulation_better_as_width_grows() -> None:
    # Measured (t <= 5, 3 seeds, 256 samples): max relative error 0.21-0.37 at n2=8 and
    # 0.06-0.09 at n2=16 (0.02 at n2=32); the reduced form is a large-width limit.
    errors = []
    for n1, n2 in ((16, 8), (32, 16)):
        cfg = SimSiamConfig(n1=n1, n2=n2, steps=100, record_every=20)
        comp = compare_trajectory(cfg, simulate_simsiam(cfg))
        errors.append(np.max(np.abs(comp.simulated / comp.theory - 1)))
    assert errors[1] < 0.12
    assert errors[0] > 2 * errors[1]


def test_reduced_l2_tracks_the_matrix_simulation() -> None:
    # Measured (t <= 5, 3 seeds): max relative error 0.03-0.06.
    cfg = SimSiamConfig(loss="l2", steps=100, record_every=20)
    comp = compare_trajectory(cfg, simulate_simsiam(cfg))
    assert np.max(np.abs(comp.simulated / comp.theory - 1)) < 0.1


def test_run_comparison_defaults_and_bad_input() -> None:
    cfg = config_from_params(SimulationParams(model="bao2023"))
    assert (cfg.n1, cfg.n2, cfg.sigma2, cfg.rho, cfg.lr, cfg.steps, cfg.loss) == (
        16, 8, 0.5, 0.25, 0.05, 4000, "cosine")
    comp = run_comparison(SimulationParams(model="bao2023", steps=40, loss="l2"))
    assert comp.simulated.shape == comp.theory.shape == (41, 8)
    assert {"N_Phi", "N_Psi", "N_flow"} <= set(comp.extras)
    assert comp.extras["N_Phi"].shape == (41,)
    with pytest.raises(ConfigError, match="eta"):
        config_from_params(SimulationParams(eta=-0.1))
    with pytest.raises(ConfigError, match="augment"):
        config_from_params(SimulationParams(augment="both"))
    with pytest.raises(ConfigError, match="valid choices"):
        config_from_params(SimulationParams(loss="isoloss-cosine"))
    with pytest.raises(ConfigError, match="valid choices"):
        config_from_params(SimulationParams(loss="hinge"))
