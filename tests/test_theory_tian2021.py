"""tian2021 matrix flow and eigenmode theory (docs/theory.md#tian2021)."""

from __future__ import annotations

import numpy as np
import pytest

from nocollapse.errors import ConfigError
from nocollapse.theory.linear_flow import (
    FlowConfig,
    flow_derivatives,
    integrate_flow,
    theorem2_hessian,
)
from nocollapse.theory.result import SimulationParams
from nocollapse.theory.tian2021 import (
    alignment_K,
    commutator_frobenius,
    critical_eta,
    fixed_points,
    integral_of_motion,
    integrate_modes,
    invariant_residual,
    parabola_rhs,
    run_comparison,
)

SIGMA2, ETA = 0.5, 0.1


def _random_start(n1: int, n2: int, seed: int, scale: float = 0.5):
    rng = np.random.default_rng(seed)
    W0 = scale * rng.standard_normal((n2, n1)) / np.sqrt(n1)
    Wp0 = scale * rng.standard_normal((n2, n2)) / np.sqrt(n2)
    return Wp0, W0


def test_fixed_points_are_roots_of_the_third_order_dynamics() -> None:
    p_minus, p_plus = fixed_points(SIGMA2, ETA)
    assert 0 < p_minus < p_plus
    np.testing.assert_allclose(parabola_rhs(np.array([p_minus, p_plus]), sigma2=SIGMA2, eta=ETA),
                               0.0, atol=1e-14)
    # at eta_c the two roots merge; above it none is left
    eta_c = critical_eta(SIGMA2)
    lo, hi = fixed_points(SIGMA2, eta_c)
    assert abs(hi - lo) < 1e-6
    assert np.all(np.isnan(fixed_points(SIGMA2, 1.01 * eta_c)))


def test_default_comparison_converges_to_p_plus_with_one_collapsed_mode() -> None:
    comp = run_comparison(SimulationParams())
    p_minus, p_plus = fixed_points(SIGMA2, ETA)
    final, s_final = comp.simulated[-1], comp.extras["s_simulated"][-1]
    collapsed = comp.collapsed_modes()
    assert collapsed.sum() == 1
    assert comp.simulated[0][collapsed][0] < p_minus < comp.simulated[0][~collapsed].min()
    np.testing.assert_allclose(final[~collapsed], p_plus, atol=1e-3)
    np.testing.assert_allclose(s_final[~collapsed], p_plus**2, atol=1e-3)
    assert np.max(np.abs(comp.simulated - comp.theory)) < 1e-6
    assert comp.extras["commutator_frobenius"].max() < 1e-10  # aligned start stays aligned


def test_ema_comparison_theory_tracks_matrix_flow() -> None:
    comp = run_comparison(SimulationParams(beta=0.5, steps=300))
    assert np.max(np.abs(comp.simulated - comp.theory)) < 1e-5
    assert np.ptp(comp.extras["tau_theory"]) > 1e-3  # the target ratio actually moves


def test_theorem1_invariant_error_is_first_order_in_dt() -> None:
    Wp0, W0 = _random_start(20, 10, seed=1)
    cfg = FlowConfig.isotropic(20, SIGMA2, alpha_p=1.0, eta=ETA, beta=0.5)
    errors = []
    for dt in (2e-2, 1e-2):
        traj = integrate_flow(Wp0, W0, cfg, dt, round(10 / dt), method="euler",
                              record_every=round(10 / dt))
        errors.append(invariant_residual(traj, 1.0, ETA)[-1])
    assert 1.6 < errors[0] / errors[1] < 2.4
    rk4 = integrate_flow(Wp0, W0, cfg, 1e-1, 100, record_every=100)
    assert invariant_residual(rk4, 1.0, ETA)[-1] < errors[1] / 100


def test_commutator_decays_faster_than_theorem3_bound() -> None:
    eta = 0.8 * critical_eta(SIGMA2)  # 1.5 eta > eta_c makes K positive definite
    Wp0, W0 = _random_start(8, 5, seed=2, scale=1.0)
    Wp0 = 0.5 * (Wp0 + Wp0.T)
    cfg = FlowConfig.isotropic(8, SIGMA2, eta=eta, symmetric=True)
    traj = integrate_flow(Wp0, W0, cfg, 0.02, 500, record_every=10)
    F = np.einsum("tij,tkj->tik", traj.W, traj.W)
    lam = np.linalg.eigvalsh(alignment_K(F, traj.Wp, SIGMA2, 1.0, eta))[:, 0]
    l0 = lam.min()
    assert l0 > 0
    comm = commutator_frobenius(F, traj.Wp)
    assert comm[-1] < 0.1 * comm[0]
    assert np.all(comm <= np.exp(-2 * l0 * traj.times) * comm[0] * (1 + 1e-6))


@pytest.mark.parametrize("factor, collapses", [(0.9, False), (1.1, True)])
def test_collapse_iff_eta_above_critical(factor: float, collapses: bool) -> None:
    eta = factor * critical_eta(SIGMA2)
    p0 = np.array([1.0 / (1.0 + SIGMA2)])  # above p*_- whenever p*_- exists
    p, _, _ = integrate_modes(p0, p0**2, np.linspace(0, 400, 5), sigma2=SIGMA2, eta=eta)
    assert (p[-1, 0] < 1e-3) == collapses
    if not collapses:
        assert p[-1, 0] == pytest.approx(fixed_points(SIGMA2, eta)[1], rel=1e-3)


@pytest.mark.parametrize("factor, collapses", [(0.9, True), (1.1, False)])
def test_collapse_iff_start_below_p_minus(factor: float, collapses: bool) -> None:
    p_minus, p_plus = fixed_points(SIGMA2, ETA)
    p0 = np.array([factor * p_minus])
    p, _, _ = integrate_modes(p0, p0**2, np.linspace(0, 300, 5), sigma2=SIGMA2, eta=ETA)
    assert (p[-1, 0] < 1e-3) == collapses
    if not collapses:
        assert p[-1, 0] == pytest.approx(p_plus, rel=1e-4)


def test_integral_of_motion_off_the_parabola() -> None:
    p0, s0 = np.array([0.3, 0.6, 0.05]), np.array([0.5, 0.1, 0.2])
    t = np.linspace(0, 20, 41)
    p, s, _ = integrate_modes(p0, s0, t, sigma2=SIGMA2, eta=ETA, alpha_p=2.0)
    np.testing.assert_allclose(s, integral_of_motion(p, t, p0, s0, 2.0, ETA), atol=1e-8)
    assert np.ptp(s) > 0.05


def test_without_stop_gradient_encoder_vanishes() -> None:
    Wp0, W0 = _random_start(6, 4, seed=3)
    cfg = FlowConfig.isotropic(6, SIGMA2, eta=0.0, stop_grad=False)
    traj = integrate_flow(Wp0, W0, cfg, 0.05, 400, record_every=400)
    assert np.linalg.norm(traj.W[-1]) < 1e-3 * np.linalg.norm(W0)


def test_theorem2_hessian_gives_the_encoder_gradient() -> None:
    Wp, W = _random_start(5, 3, seed=4, scale=1.0)
    rng = np.random.default_rng(5)
    A = rng.standard_normal((5, 5))
    cfg = FlowConfig(X=A @ A.T / 5, Xp=0.3 * np.eye(5), eta=0.05, stop_grad=False)
    _, dW, _ = flow_derivatives(Wp, W, W, cfg)
    expected = -theorem2_hessian(Wp, cfg) @ W.ravel(order="F")
    np.testing.assert_allclose(dW.ravel(order="F"), expected, atol=1e-12)


def test_without_predictor_encoder_decays_at_sigma2_plus_eta() -> None:
    _, W0 = _random_start(6, 4, seed=6)
    cfg = FlowConfig.isotropic(6, SIGMA2, eta=ETA, predictor=False)
    traj = integrate_flow(np.eye(4), W0, cfg, 0.01, 500, record_every=500)
    ratio = np.linalg.norm(traj.W[-1]) / np.linalg.norm(W0)
    assert ratio == pytest.approx(np.exp(-(SIGMA2 + ETA) * 5.0), rel=1e-6)


@pytest.mark.parametrize(
    "params, word",
    [
        (SimulationParams(eta=-0.1), "eta"),
        (SimulationParams(sigma2=-1.0), "sigma2"),
        (SimulationParams(steps=0), "steps"),
        (SimulationParams(loss="cosine"), "cosine"),
        (SimulationParams(n1=3, n2=5), "n2"),
    ],
)
def test_bad_parameters_are_refused(params: SimulationParams, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        run_comparison(params)


def test_fixed_points_of_the_mode_ode_and_their_stability() -> None:
    from nocollapse.theory.fixed_points import find_fixed_point
    from nocollapse.theory.tian2021 import mode_rhs

    def f(y: np.ndarray) -> np.ndarray:
        dp, ds, _ = mode_rhs(y[0], y[1], 1.0, sigma2=SIGMA2, eta=ETA)
        return np.array([dp, ds])

    p_minus, p_plus = fixed_points(SIGMA2, ETA)
    plus = find_fixed_point(f, [0.5, 0.3])
    minus = find_fixed_point(f, [0.13, 0.014])
    np.testing.assert_allclose(plus.y, [p_plus, p_plus**2], atol=1e-9)
    np.testing.assert_allclose(minus.y, [p_minus, p_minus**2], atol=1e-9)
    assert plus.kind == "stable" and minus.kind == "saddle"
    assert find_fixed_point(f, [0.01, 0.0]).kind == "stable"  # the collapsed state
    one_d = find_fixed_point(lambda p: parabola_rhs(p, sigma2=SIGMA2, eta=ETA), [0.1])
    assert one_d.kind == "unstable" and one_d.y[0] == pytest.approx(p_minus)


def test_non_isotropic_directions_converge_to_the_variance_ratio() -> None:
    from nocollapse.theory.tian2021 import direction_rhs

    lam_d, lam_s = np.array([1.0, 0.6, 0.3]), np.array([1.5, 0.8, 0.9])
    cfg = FlowConfig(X=np.diag(lam_d), Xp=np.diag(lam_s - lam_d), beta=0.5)
    w0 = np.array([0.8, 0.7, 0.9])
    state = (np.diag(w0), np.diag(w0), np.diag(w0))  # tied w = w_p, aligned with the data
    traj = integrate_flow(state[0], state[1], cfg, 0.05, 2000, record_every=2000)
    np.testing.assert_allclose(np.diag(traj.Wp[-1]), lam_d / lam_s, atol=1e-4)
    Wp, W = traj.Wp[-1], traj.W[-1]
    np.testing.assert_allclose(Wp @ W, W @ cfg.X @ np.linalg.inv(cfg.S), atol=1e-4)
    # the matrix flow's diagonal follows the per-direction ODE exactly
    wp, w, wa = w0.copy(), w0.copy(), w0.copy()
    for _ in range(200):  # Euler, same as a 200-step Euler matrix run
        dwp, dw, dwa = direction_rhs(wp, w, wa, lambda_d=lam_d, lambda_s=lam_s, beta=0.5)
        wp, w, wa = wp + 0.05 * dwp, w + 0.05 * dw, wa + 0.05 * dwa
    euler = integrate_flow(state[0], state[1], cfg, 0.05, 200, method="euler",
                           record_every=200)
    np.testing.assert_allclose(np.diag(euler.W[-1]), w, atol=1e-12)
    np.testing.assert_allclose(np.diag(euler.Wp[-1]), wp, atol=1e-12)
