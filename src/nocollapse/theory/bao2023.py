"""bao2023: linear SimSiam with the cosine loss and weight decay (papers.md section 3).

Model: identity backbone, projection ``Phi`` (shape ``(n2, n1)``), predictor ``Psi``
(``(n2, n2)``), inputs ``x ~ N(0, I_n1)``, views ``x_i = x + sigma xi_i``,
``z1 = Phi x1``, ``p = Psi z1``, target ``z2 = Phi x2`` under stop-gradient, weight
decay ``rho`` on both matrices, equal learning rates. Losses (half the squared distance,
as in :mod:`nocollapse.theory.halvagal2023_sim`): ``1/2 ||p - z2||^2`` (``"l2"``) and
``1 - cos(p, z2)`` (``"cosine"``).

Reduced dynamics. The paper's exact sixth-order coefficients are OPEN in papers.md (they
could not be read); nothing here uses them. Implemented is the reduced form papers.md
states (derived there, Monte-Carlo checked to 2.8% at d = h = 256): with ``s_j = p_j^2``
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
the eigenvalues seen in a discrete simulation (papers.md: ~2.7e-3) is not in the flow: it
is where the step's ``lr^2 ||G||^2`` norm growth balances the ``2 lr rho`` decay. The
measured gap is reported by :func:`run_comparison` (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nocollapse.errors import (
    ConfigError,
    TrainingDivergedError,
    check_choice,
    check_nonnegative,
    check_positive,
)
from nocollapse.theory.halvagal2023_sim import base_loss_grads
from nocollapse.theory.result import Comparison, SimulationParams

LOSSES = ("l2", "cosine")


def l2_threshold(sigma2: float) -> float:
    """``rho_c = 1/(4(1+sigma^2))``: L2 weight decay above it collapses (papers.md s. 1, 3)."""
    check_nonnegative("sigma2", sigma2)
    return 1.0 / (4.0 * (1.0 + sigma2))


def reduced_rhs(loss: str, rho: float, sigma2: float) -> Callable[[float, np.ndarray],
                                                                  np.ndarray]:
    """Right-hand side ``f(t, p)`` of the reduced eigenmode dynamics (module docstring).

    ``p`` has shape ``(m,)`` or ``(m, K)``; sums run over axis 0. The cosine form is
    papers.md section 3's reduced (not the paper's sixth-order, which is open) equation.
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
        return (p**2 - (p3 / p4) * p**3) / n_a_n_b - rho * p

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
    shape obeys (papers.md section 3, reduced form), in the clock ``dtau = dt / a(t)^2``,

        dq_j/dtau = (q_j^2 - kappa_q q_j^3) / ((1+sigma^2) sqrt(sum q^4 sum q^2)).

    Under the pure flow ``a(t) = a(0) exp(-rho t)``; here ``a(t)`` is supplied, e.g. the
    simulation's ``||Phi||_F`` (its concentrated norm), as papers.md section 3 holds the
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
        return (q**2 - np.sum(q**3) / q4 * q**3) / (a * np.sqrt(q4 * np.sum(q**2)))

    # solve_ivp wants strictly increasing t_eval; the cap (or a flat norm) repeats values.
    tau_u, back = np.unique(tau, return_inverse=True)
    if tau_u.size == 1:
        return np.tile(q0, (tau.size, 1))
    sol = solve_ivp(rhs, (0.0, tau_u[-1]), q0, t_eval=tau_u, method="LSODA", rtol=1e-8,
                    atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"reduced shape ODE failed: {sol.message}")
    return sol.y.T[back]


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
        return scale[:, None] * integrate_shape(p0, times, scale, sigma2)
    f = reduced_rhs(loss, rho, sigma2)
    sol = solve_ivp(lambda t, u: f(t, np.exp(u)) / np.exp(u), (times[0], times[-1]),
                    np.log(p0), t_eval=times, method="LSODA", rtol=1e-8, atol=1e-10)
    if not sol.success:
        raise RuntimeError(f"reduced ODE failed: {sol.message}")
    return np.exp(sol.y.T)


@dataclass(frozen=True)
class SimSiamConfig:
    """Linear SimSiam settings (defaults: papers.md section 3 numerical check).

    ``samples`` data points per step. ``psi_init="aligned"`` starts ``Psi = (Phi Phi^T)^1/2``
    so that ``s_j = p_j^2`` holds at ``t = 0`` (the reduced form's assumption);
    ``"random"`` draws ``Psi`` like ``Phi``.
    """

    n1: int = 16
    n2: int = 8
    sigma2: float = 0.5
    rho: float = 0.25
    loss: str = "cosine"
    lr: float = 0.05
    steps: int = 4000
    samples: int = 256
    init_scale: float = 1.0
    psi_init: str = "aligned"
    record_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("psi_init", self.psi_init, ("aligned", "random"))
        for name in ("n1", "n2", "steps", "samples", "record_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(
                    f"{name}={value!r} must be a positive integer; valid range: {name} >= 1"
                )
        check_nonnegative("sigma2", self.sigma2)
        check_nonnegative("rho", self.rho)
        check_positive("lr", self.lr)
        check_positive("init_scale", self.init_scale)


def simsiam_grads(Phi: np.ndarray, Psi: np.ndarray, X1: np.ndarray, X2: np.ndarray,
                  loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Analytic gradients of the batch loss (no weight decay), target under stop-gradient.

    Args:
        Phi: ``(n2, n1)``; Psi: ``(n2, n2)``; X1, X2: ``(B, n1)``; loss: ``"l2"|"cosine"``.

    Returns:
        ``(dL/dPhi, dL/dPsi)`` of shapes ``(n2, n1)`` and ``(n2, n2)``.
    """
    z1, z2 = X1 @ Phi.T, X2 @ Phi.T
    g_p = base_loss_grads(z1 @ Psi.T, z2, "euclidean" if loss == "l2" else "cosine")[0]
    b = X1.shape[0]
    return (g_p @ Psi).T @ X1 / b, g_p.T @ z1 / b


@dataclass
class SimSiamTrajectory:
    """Recorded state: ``steps, times (= lr * step)`` shape ``(T,)``; ``eigenvalues`` of
    ``Phi Phi^T`` (descending) and ``p`` (eigenvalues of ``(Psi + Psi^T)/2``, descending),
    shape ``(T, n2)``; ``norm_phi, norm_psi`` Frobenius norms, shape ``(T,)``."""

    steps: np.ndarray
    times: np.ndarray
    eigenvalues: np.ndarray
    p: np.ndarray
    norm_phi: np.ndarray
    norm_psi: np.ndarray


def initial_state(cfg: SimSiamConfig) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """``Phi0 = init_scale randn(n2, n1)/sqrt(n1)`` and ``Psi0`` per ``cfg.psi_init``."""
    rng = np.random.default_rng(cfg.seed)
    Phi = rng.standard_normal((cfg.n2, cfg.n1)) * cfg.init_scale / np.sqrt(cfg.n1)
    if cfg.psi_init == "aligned":
        s, U = np.linalg.eigh(Phi @ Phi.T)
        Psi = (U * np.sqrt(np.clip(s, 0.0, None))) @ U.T
    else:
        Psi = rng.standard_normal((cfg.n2, cfg.n2)) * cfg.init_scale / np.sqrt(cfg.n2)
    return Phi, Psi, rng


def simulate_simsiam(cfg: SimSiamConfig) -> SimSiamTrajectory:
    """Sampled-data gradient descent with weight decay on linear SimSiam (papers.md s. 3)."""
    Phi, Psi, rng = initial_state(cfg)
    sigma = np.sqrt(cfg.sigma2)
    decay = 1.0 - cfg.lr * cfg.rho
    rec: dict[str, list] = {k: [] for k in ("step", "eig", "p", "phi", "psi")}
    for step in range(cfg.steps + 1):
        if step % cfg.record_every == 0 or step == cfg.steps:
            rec["step"].append(step)
            rec["eig"].append(np.sort(np.linalg.eigvalsh(Phi @ Phi.T))[::-1])
            rec["p"].append(np.sort(np.linalg.eigvalsh((Psi + Psi.T) / 2))[::-1])
            rec["phi"].append(np.linalg.norm(Phi))
            rec["psi"].append(np.linalg.norm(Psi))
        if step == cfg.steps:
            break
        x = rng.standard_normal((cfg.samples, cfg.n1))
        X1 = x + sigma * rng.standard_normal(x.shape)
        X2 = x + sigma * rng.standard_normal(x.shape)
        g_phi, g_psi = simsiam_grads(Phi, Psi, X1, X2, cfg.loss)
        Phi = decay * Phi - cfg.lr * g_phi
        Psi = decay * Psi - cfg.lr * g_psi
        if not (np.all(np.isfinite(Phi)) and np.all(np.isfinite(Psi))):
            raise TrainingDivergedError(
                f"linear SimSiam diverged at step {step} (lr={cfg.lr}); lower lr"
            )
    steps = np.asarray(rec["step"])
    return SimSiamTrajectory(steps, cfg.lr * steps, np.asarray(rec["eig"]),
                             np.asarray(rec["p"]), np.asarray(rec["phi"]),
                             np.asarray(rec["psi"]))



def config_from_params(params: SimulationParams, samples: int = 256) -> SimSiamConfig:
    """Map ``nocollapse simulate`` options onto :class:`SimSiamConfig` (``rho = params.eta``)."""
    for name in ("alpha_p", "beta"):
        value = getattr(params, name)
        if value not in (None, 0, 0.0):
            raise ConfigError(
                f"--{name.replace('_', '-')}={value!r} is not part of the bao2023 model "
                "(equal learning rates, SimSiam without EMA); leave it unset or use "
                "--model tian2021"
            )
    if params.iso:
        raise ConfigError("--iso is a halvagal2023 option; use --model halvagal2023")
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


def compare_trajectory(cfg: SimSiamConfig, traj: SimSiamTrajectory) -> Comparison:
    """Pack a simulation with its reduced theory (see :func:`run_comparison`)."""
    p0 = np.sqrt(np.clip(traj.eigenvalues[0], 1e-300, None))
    flow = integrate_reduced(p0, traj.times, cfg.loss, cfg.rho, cfg.sigma2)
    if cfg.loss == "l2":
        theory, how = flow**2, "reduced L2 ODE (tian2021 third order, tau=1), s = p^2"
    else:
        q = integrate_shape(p0, traj.times, traj.norm_phi, cfg.sigma2)
        theory = (traj.norm_phi[:, None] * q) ** 2
        how = ("reduced cosine ODE for the shape p/|p| with the scale |p| = ||Phi||_F taken "
               "from the simulation (pure-flow scale in extras['N_flow'])")
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
        },
        params={
            "loss": cfg.loss, "n1": cfg.n1, "n2": cfg.n2, "sigma2": cfg.sigma2,
            "rho": cfg.rho, "rho_c_l2": l2_threshold(cfg.sigma2), "lr": cfg.lr,
            "steps": cfg.steps, "samples": cfg.samples, "seed": cfg.seed, "theory": how,
        },
        collapse_threshold=1e-6,
    )


def run_comparison(params: SimulationParams) -> Comparison:
    """Linear SimSiam simulation vs the reduced dynamics (papers.md section 3).

    Defaults: n1=16, n2=8, sigma2=0.5, rho = ``params.eta`` = 0.25 (above the L2
    threshold 1/6), lr 0.05, 4000 steps, 256 samples a step, cosine loss. ``times`` is
    ODE time ``lr * step``. L2: theory is the closed third-order ODE.

    Cosine: the pure reduced flow decays every eigenvalue as ``exp(-2 rho t)`` (extras
    ``N_flow``) while the discrete simulation settles on a plateau set by ``lr`` and the
    gradient noise (measured over t in [50, 100]: ``||Phi||_F^2`` = 0.137 / 0.071 / 0.039
    at 64 / 256 / 1024 samples and lr 0.05; 0.095 / 0.137 / 0.201 at lr 0.025 / 0.05 /
    0.1 and 64 samples, i.e. ``||Phi||_F^4 ~ lr / samples``; default ``s_max`` ~1.2e-2).
    So the theory integrates the reduced shape dynamics at the simulation's measured norm.

    Measured discrepancies (cosine): while the norm falls (t <= 5) the largest relative
    error over modes is 0.21-0.37 at n2=8, 0.06-0.09 at n2=16, 0.02 at n2=32, 0.004 at
    n2=128 (the reduced form is a large-width limit; the small modes are the worst). On
    the plateau the theory's shape is isotropic while the simulation's stays spread by
    gradient noise, ``s_min/s_max`` ~0.55 at the defaults, so the smallest mode is off
    by up to ~40%.
    """
    cfg = config_from_params(params)
    return compare_trajectory(cfg, simulate_simsiam(cfg))
