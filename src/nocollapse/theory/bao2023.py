"""bao2023: linear SimSiam with the cosine loss and weight decay (docs/theory.md#bao2023).

Model: identity backbone, projection ``Phi`` (shape ``(n2, n1)``), predictor ``Psi``
(``(n2, n2)``), inputs ``x ~ N(0, I_n1)``, views ``x_i = x + sigma xi_i``,
``z1 = Phi x1``, ``p = Psi z1``, target ``z2 = Phi x2`` under stop-gradient, weight
decay ``rho`` on both matrices, equal learning rates. Losses ``"l2"`` and ``"cosine"``
with the constants of :data:`nocollapse.theory.bao2023_sim.LOSS_CONVENTIONS` (the theory's
scale 1/2 of the loss table's distances).

Reduced dynamics (docs/theory.md#bao2023). The paper's exact sixth-order coefficients
are open (docs/theory.md#open-items); nothing here uses them. Implemented is the reduced
form derived for this library (Monte-Carlo checked to 2.8% at d = h = 256): with ``s_j = p_j^2``
and the concentrated norms ``N_a^2 = (1+sigma^2) sum p_j^4``, ``N_b^2 = (1+sigma^2) sum p_j^2``

    cosine:  dp_j/dt = (p_j^2 - kappa p_j^3) / (N_a N_b) - rho p_j,
             kappa = sum_k p_k^3 / sum_k p_k^4
    l2:      dp_j/dt = p_j^2 [1 - (1+sigma^2) p_j] - rho p_j     (tian2021, tau = 1)

L2 collapses for every start when ``rho > rho_c = 1/(4(1+sigma^2))``.

What the reduced cosine flow implies (exact consequences of the form above, and also of
the full matrix flow, because the per-sample cosine gradient is orthogonal to ``p``):
``sum_j p_j (p_j^2 - kappa p_j^3) = 0``, so ``||Phi||_F^2`` and ``||Psi||_F^2`` decay as
``exp(-2 rho t)`` while the *shape* ``p / |p|`` converges to equal non-zero modes, faster
and faster as the norms shrink (the first term scales as 1/norm). The positive plateau of
the eigenvalues seen in a discrete simulation (~2.7e-3 at the defaults) is not in the flow: it
is where the step's ``lr^2 ||G||^2`` norm growth (``G`` dominated by sampling noise)
balances the ``2 lr rho`` decay. :func:`noise_floor` and :func:`predicted_scale` estimate
it (derived here, not from the paper; accuracy measured against the simulation), and
:func:`run_comparison` combines that scale with the reduced shape dynamics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nocollapse.errors import ConfigError, check_choice, check_nonnegative, check_positive
from nocollapse.theory.bao2023_sim import (
    LOSSES,
    SimSiamConfig,
    SimSiamTrajectory,
    initial_state,
    simsiam_grads,
    simulate_simsiam,
)
from nocollapse.theory.result import Comparison, SimulationParams, refuse_options

__all__ = [
    "LOSSES",
    "SimSiamConfig",
    "SimSiamTrajectory",
    "compare_trajectory",
    "config_from_params",
    "initial_state",
    "integrate_reduced",
    "integrate_shape",
    "l2_threshold",
    "noise_floor",
    "predicted_scale",
    "reduced_rhs",
    "run_comparison",
    "shape_time",
    "simsiam_grads",
    "simulate_simsiam",
]


def l2_threshold(sigma2: float) -> float:
    """``rho_c = 1/(4(1+sigma^2))``: L2 weight decay above it collapses (docs/theory.md#bao2023)."""
    check_nonnegative("sigma2", sigma2)
    return 1.0 / (4.0 * (1.0 + sigma2))


def reduced_rhs(loss: str, rho: float, sigma2: float) -> Callable[[float, np.ndarray],
                                                                  np.ndarray]:
    """Right-hand side ``f(t, p)`` of the reduced eigenmode dynamics (module docstring).

    ``p`` has shape ``(m,)`` or ``(m, K)``; sums run over axis 0. The cosine form is
    docs/theory.md#bao2023's reduced (not the paper's sixth-order, which is open) equation.
    """
    check_choice("loss", loss, LOSSES)
    check_nonnegative("rho", rho)
    check_nonnegative("sigma2", sigma2)
    a = 1.0 + sigma2

    def rhs(t: float, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if loss == "l2":
            return p**2 * (1.0 - a * p) - rho * p
        p3, p4 = np.sum(p**3, axis=0), np.sum(p**4, axis=0)
        n_a_n_b = a * np.sqrt(p4 * np.sum(p**2, axis=0))
        result: np.ndarray = (p**2 - (p3 / p4) * p**3) / n_a_n_b - rho * p
        return result

    return rhs


def shape_time(times: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``tau(t) = int_0^t ds / a(s)^2`` for ``a`` log-linear between samples.

    Log-linear interpolation is exact for the pure flow ``a = a0 exp(-rho t)``, so a
    coarse record of a decaying norm still gives the right shape clock.

    Args:
        times, scale: shape ``(T,)``, ``scale > 0``.

    Returns:
        shape ``(T,)``, starting at 0.
    """
    times, scale = np.asarray(times, dtype=float), np.asarray(scale, dtype=float)
    h = np.diff(times)
    a0 = scale[:-1]
    k = np.log(scale[1:] / a0) / np.where(h > 0, h, 1.0)
    x = 2.0 * k * h
    # int_0^h exp(-2 k u) du / a0^2 = h (1 - e^-x)/x / a0^2, with (1 - e^-x)/x -> 1 at x = 0
    small = np.abs(x) < 1e-8
    factor = np.where(small, 1.0 - x / 2.0, -np.expm1(-x) / np.where(small, 1.0, x))
    return np.concatenate([[0.0], np.cumsum(h * factor / a0**2)])


def integrate_shape(q0: np.ndarray, times: np.ndarray, scale: np.ndarray,
                    sigma2: float, tau_max: float = 1e12) -> np.ndarray:
    """The reduced cosine dynamics with the overall scale given (norms held as measured).

    Writing ``p = a q`` with ``sum_j q_j^2 = 1``, the weight-decay term of
    :func:`reduced_rhs` only moves ``a`` (the other term is orthogonal to ``p``); the
    shape obeys (docs/theory.md#bao2023, reduced form), in the clock ``dtau = dt / a(t)^2``,

        dq_j/dtau = (q_j^2 - kappa_q q_j^3) / ((1+sigma^2) sqrt(sum q^4 sum q^2)).

    Under the pure flow ``a(t) = a(0) exp(-rho t)``; here ``a(t)`` is supplied, e.g. the
    simulation's ``||Phi||_F`` (its concentrated norm), as docs/theory.md#bao2023 holds the
    norms given when it derives the eigenmode dynamics. ``tau`` is capped at ``tau_max``
    (by then every mode above ``~1/tau_max`` has settled).

    Args:
        q0: shape ``(m,)``, positive (normalised on entry).
        times: shape ``(T,)``; scale: shape ``(T,)``, ``a`` at those times (log-linear
            in between, see :func:`shape_time`).

    Returns:
        shape ``(T, m)``, ``q(t)`` with unit norm.
    """
    from scipy.integrate import solve_ivp

    tau = np.minimum(shape_time(times, scale), tau_max)
    q0 = np.asarray(q0, dtype=float) / np.linalg.norm(q0)
    a = 1.0 + check_nonnegative("sigma2", sigma2)

    def rhs(t: float, q: np.ndarray) -> np.ndarray:
        q4 = np.sum(q**4)
        result: np.ndarray = (q**2 - np.sum(q**3) / q4 * q**3) / (a * np.sqrt(q4 * np.sum(q**2)))
        return result

    # solve_ivp wants strictly increasing t_eval; the cap (or a flat norm) repeats values.
    tau_u, back = np.unique(tau, return_inverse=True)
    if tau_u.size == 1:
        return np.tile(q0, (tau.size, 1))
    sol = solve_ivp(rhs, (0.0, tau_u[-1]), q0, t_eval=tau_u, method="LSODA", rtol=1e-8,
                    atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"reduced shape ODE failed: {sol.message}")
    result: np.ndarray = sol.y.T[back]
    return result


def integrate_reduced(p0: np.ndarray, times: np.ndarray, loss: str, rho: float,
                      sigma2: float) -> np.ndarray:
    """Integrate :func:`reduced_rhs` from ``p0`` (``(m,)``, positive) -> shape ``(T, m)``.

    L2 is integrated in ``log p`` (modes decay over many decades). Cosine uses the exact
    split of the flow into scale ``|p|(t) = |p0| exp(-rho t)`` and shape
    (:func:`integrate_shape`), because the shape's clock ``1/|p|^2`` makes the direct
    form stiffer and stiffer as the norm falls.
    """
    from scipy.integrate import solve_ivp

    check_choice("loss", loss, LOSSES)
    times = np.asarray(times, dtype=float)
    p0 = np.asarray(p0, dtype=float)
    if loss == "cosine":
        check_nonnegative("rho", rho)
        scale = np.linalg.norm(p0) * np.exp(-rho * (times - times[0]))
        result: np.ndarray = scale[:, None] * integrate_shape(p0, times, scale, sigma2)
        return result
    f = reduced_rhs(loss, rho, sigma2)
    sol = solve_ivp(lambda t, u: f(t, np.exp(u)) / np.exp(u), (times[0], times[-1]),
                    np.log(p0), t_eval=times, method="LSODA", rtol=1e-8, atol=1e-10)
    if not sol.success:
        raise RuntimeError(f"reduced ODE failed: {sol.message}")
    result = np.exp(sol.y.T)
    return result


def noise_floor(lr: float, rho: float, sigma2: float, n1: int, n2: int,
                samples: int) -> tuple[float, float]:
    """Plateau ``(||Phi||_F^2, ||Psi||_F^2)`` of discrete cosine SimSiam with weight decay.

    Derived here (not from the paper), from one step ``Phi <- (1 - lr rho) Phi - lr G`` with
    ``<G, Phi> = 0`` exactly: ``||Phi'||^2 = (1 - lr rho)^2 ||Phi||^2 + lr^2 ||G||^2``. Near
    an isotropic state (``Phi Phi^T = s I``, ``Psi = p I``) the batch gradient is its
    sampling noise, ``E||G_Phi||^2 ~ (1 - c^2) n1 / (B s (n2 - 2))`` (inverse chi-square
    mean of ``1/|z1|^2``) and ``E||G_Psi||^2 ~ (1 - c^2) / (B p^2)``, with
    ``c = 1/(1+sigma^2)`` the large-width cosine between the views. Balancing at first
    order in ``lr``:

        ||Phi||^2 = sqrt(lr (1-c^2) n1 n2 / (2 rho B (n2-2))),
        ||Psi||^2 = sqrt(lr (1-c^2) n2 / (2 rho B)).

    Measured (t in [50, 100], 9 settings of lr, B, n1, n2, rho, sigma2 around the
    defaults): simulated / predicted = 0.99-1.18 for ``||Phi||^2`` and 1.05-1.41 for
    ``||Psi||^2`` (the mean gradient, ignored here, matters more at large B).
    Requires ``n2 > 2`` (``E[1/|z1|^2]`` diverges otherwise).
    """
    for name, value in (("lr", lr), ("rho", rho), ("samples", samples)):
        check_positive(name, value)
    if n2 <= 2:
        raise ConfigError(f"n2={n2!r}: the noise-floor estimate needs n2 > 2")
    k = 1.0 - 1.0 / (1.0 + check_nonnegative("sigma2", sigma2)) ** 2
    phi2 = np.sqrt(lr * k * n1 * n2 / (2.0 * rho * samples * (n2 - 2)))
    psi2 = np.sqrt(lr * k * n2 / (2.0 * rho * samples))
    return float(phi2), float(psi2)


def predicted_scale(times: np.ndarray, u0: float, floor: float, rho: float) -> np.ndarray:
    """``||Phi||_F^2 (t)`` under weight decay plus the step noise (derived here).

    ``du/dt = -2 rho u + 2 rho F^2 / u`` (the noise term written through its plateau
    ``F`` from :func:`noise_floor`) integrates to
    ``u(t) = sqrt(F^2 + (u0^2 - F^2) exp(-4 rho t))``: the flow's ``exp(-2 rho t)`` decay
    far above the floor, ``F`` below. Measured: within 7% of the simulated ``||Phi||_F^2``
    at every recorded time of the default run. Returns shape ``(T,)``.
    """
    times = np.asarray(times, dtype=float)
    result: np.ndarray = np.sqrt(floor**2 + (u0**2 - floor**2)
                                 * np.exp(-4.0 * rho * (times - times[0])))
    return result


def config_from_params(params: SimulationParams, samples: int = 256) -> SimSiamConfig:
    """Map ``nocollapse simulate`` options onto :class:`SimSiamConfig` (``rho = params.eta``)."""
    refuse_options(params, ("alpha_p", "beta"), "bao2023",
                   "equal learning rates, SimSiam without EMA")
    if params.augment is not None:
        raise ConfigError("--augment is a halvagal2023 option (which views carry the noise)")
    if params.eta is not None:
        check_nonnegative("eta (the weight decay rho)", params.eta)
    steps = 4000 if params.steps is None else params.steps
    return SimSiamConfig(
        n1=16 if params.n1 is None else params.n1,
        n2=8 if params.n2 is None else params.n2,
        sigma2=0.5 if params.sigma2 is None else params.sigma2,
        rho=0.25 if params.eta is None else params.eta,
        loss="cosine" if params.loss is None else params.loss,
        lr=0.05 if params.lr is None else params.lr,
        steps=steps, samples=samples, record_every=max(1, steps // 200), seed=params.seed,
    )


def _cosine_theory(cfg: SimSiamConfig, traj: SimSiamTrajectory,
                   p0: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Reduced shape dynamics at the predicted scale (the measured one when n2 <= 2)."""
    if cfg.n2 > 2:
        floor = noise_floor(cfg.lr, cfg.rho, cfg.sigma2, cfg.n1, cfg.n2, cfg.samples)[0]
        scale = np.sqrt(predicted_scale(traj.times, float(np.sum(p0**2)), floor, cfg.rho))
        how = "the predicted scale ||Phi||_F (noise_floor, predicted_scale)"
    else:
        scale = traj.norm_phi
        how = "the simulation's ||Phi||_F (no noise-floor estimate for n2 <= 2)"
    q = integrate_shape(p0, traj.times, scale, cfg.sigma2)
    how = f"reduced cosine ODE for the shape p/|p| at {how}; pure-flow scale in N_flow"
    return (scale[:, None] * q) ** 2, scale, how


def compare_trajectory(cfg: SimSiamConfig, traj: SimSiamTrajectory) -> Comparison:
    """Pack a simulation with its reduced theory (see :func:`run_comparison`)."""
    p0 = np.sqrt(np.clip(traj.eigenvalues[0], 1e-300, None))
    extra: dict[str, np.ndarray] = {}
    flow = integrate_reduced(p0, traj.times, cfg.loss, cfg.rho, cfg.sigma2)
    if cfg.loss == "l2":
        theory, how = flow**2, "reduced L2 ODE (tian2021 third order, tau=1), s = p^2"
    else:
        theory, extra["N_Phi_theory"], how = _cosine_theory(cfg, traj, p0)
    sim = traj.eigenvalues
    return Comparison(
        model="bao2023",
        quantity="s_j (eigenvalues of Phi Phi^T)",
        times=traj.times,
        simulated=sim,
        theory=theory,
        extras={
            "N_Phi": traj.norm_phi, "N_Psi": traj.norm_psi,
            "N_flow": np.sqrt(np.sum(flow**2, axis=1)),
            "shape_min_sim": sim[:, -1] / sim[:, 0],
            "shape_min_theory": theory[:, -1] / theory[:, 0],
            "step": traj.steps.astype(float),
            **extra,
        },
        params={
            "loss": cfg.loss, "n1": cfg.n1, "n2": cfg.n2, "sigma2": cfg.sigma2,
            "rho": cfg.rho, "rho_c_l2": l2_threshold(cfg.sigma2), "lr": cfg.lr,
            "steps": cfg.steps, "samples": cfg.samples, "seed": cfg.seed, "theory": how,
        },
        collapse_threshold=1e-6,
    )


def run_comparison(params: SimulationParams) -> Comparison:
    """Linear SimSiam simulation vs the reduced dynamics (docs/theory.md#bao2023).

    Defaults: n1=16, n2=8, sigma2=0.5, rho = ``params.eta`` = 0.25 (above the L2
    threshold 1/6), lr 0.05, 4000 steps, 256 samples a step, cosine loss. ``times`` is
    ODE time ``lr * step``. L2: theory is the closed third-order ODE.

    Cosine: the pure reduced flow decays every eigenvalue as ``exp(-2 rho t)`` (extras
    ``N_flow``) while the discrete simulation settles on a plateau set by ``lr`` and the
    gradient noise (measured over t in [50, 100]: ``||Phi||_F^2`` = 0.137 / 0.071 / 0.039
    at 64 / 256 / 1024 samples and lr 0.05; 0.095 / 0.137 / 0.201 at lr 0.025 / 0.05 /
    0.1 and 64 samples, i.e. ``||Phi||_F^4 ~ lr / samples``). The theory is therefore the
    reduced shape dynamics at the scale of :func:`predicted_scale` (extras
    ``N_Phi_theory``; within 8% of the simulated ``||Phi||_F^2`` over the default run).

    Measured discrepancies (cosine): while the norm falls (t <= 5) the largest relative
    error over modes is 0.20-0.37 at n2=8, 0.06-0.08 at n2=16, 0.02 at n2=32, 0.004 at
    n2=128 (the reduced form is a large-width limit; the small modes are the worst). On
    the plateau the theory's shape is isotropic while the simulation's stays spread by
    gradient noise (``s_min/s_max`` ~0.55 at the defaults): final relative errors per
    mode 0.01-0.51, largest for the top mode.
    """
    cfg = config_from_params(params)
    return compare_trajectory(cfg, simulate_simsiam(cfg))
