"""tian2021 isotropic eigenmode theory, compared with the matrix flow (docs/theory.md#tian2021).

Isotropic case: ``X = I``, ``X' = sigma2 I``, symmetrised predictor flow, target
``Wa = tau W``. Each common eigenmode of ``F = W W^T`` and ``Wp`` has eigenvalues
``(p_j, s_j)`` and a target ratio ``tau_j``:

    dp/dt    = alpha_p s [tau - (1+sigma2) p] - eta p
    ds/dt    = 2 p s [tau - (1+sigma2) p] - 2 eta s
    dtau/dt  = beta (1 - tau) - tau (ds/dt) / (2 s)          (EMA; SimSiam: tau = 1)

On the invariant parabola ``s = p^2 / alpha_p`` the mode obeys the third-order
dynamics ``dp/dt = p^2 [tau - (1+sigma2) p] - eta p`` with fixed points ``0``,
``p*_-`` (unstable, collapse-basin boundary) and ``p*_+``; every mode collapses when
``eta > eta_c = tau^2 / (4 (1+sigma2))``.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from nocollapse.diagnostics import critical_eta, summarize_linear
from nocollapse.diagnostics.loss_definitions import LossConvention, half_of
from nocollapse.errors import ConfigError, check_nonnegative, check_positive
from nocollapse.theory.linear_flow import FlowConfig, FlowTrajectory, integrate_flow
from nocollapse.theory.result import Comparison, SimulationParams

# the Lemma 1 flow's loss: half the loss table's l2 of p = Wp W x1 and z = Wa x2
LOSS_CONVENTIONS: dict[str, LossConvention] = {"l2": half_of("l2")}
DEFAULTS = {"n1": 20, "n2": 10, "sigma2": 0.5, "eta": 0.1, "alpha_p": 1.0, "steps": 1000,
            "lr": 0.1}
# Scale of the balanced random start (see run_comparison): with seed 0 the smallest
# mode starts below p*_- and collapses, the nine others reach p*_+.
INIT_SCALE = 0.38


def fixed_points(
    sigma2: float | np.ndarray, eta: float | np.ndarray, tau: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(p*_-, p*_+) = [tau ∓ sqrt(tau^2 - 4 eta (1+sigma2))] / (2 (1+sigma2))``.

    Broadcasts over arrays; NaN where ``eta > eta_c`` (no non-zero fixed point).
    """
    a = 1.0 + np.asarray(sigma2, dtype=float)
    disc = tau**2 - 4.0 * np.asarray(eta, dtype=float) * a
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    return (tau - root) / (2 * a), (tau + root) / (2 * a)


def mode_rhs(
    p: np.ndarray,
    s: np.ndarray,
    tau: np.ndarray,
    *,
    sigma2: float | np.ndarray,
    eta: float | np.ndarray,
    alpha_p: float | np.ndarray = 1.0,
    beta: float | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dp/dt, ds/dt, dtau/dt)`` of the decoupled eigenmode ODE; any broadcastable shapes.

    ``beta=None`` is SimSiam (``dtau/dt = 0``). The EMA equation divides by ``s``; a
    collapsed mode (``s = 0``) gets ``dtau/dt = beta (1 - tau)``.
    """
    gap = tau - (1.0 + sigma2) * p
    dp = alpha_p * s * gap - eta * p
    ds = 2.0 * p * s * gap - 2.0 * eta * s
    if beta is None:
        dtau = np.zeros_like(tau * p)
    else:
        ratio = np.divide(ds, 2.0 * s, out=np.zeros_like(ds * 1.0), where=s > 0)
        dtau = beta * (1.0 - tau) - tau * ratio
    return dp, ds, dtau


def parabola_rhs(
    p: np.ndarray, *, sigma2: float | np.ndarray, eta: float | np.ndarray, tau: float = 1.0
) -> np.ndarray:
    """Third-order dynamics on the invariant parabola: ``p^2 [tau - (1+sigma2) p] - eta p``."""
    return p**2 * (tau - (1.0 + sigma2) * p) - eta * p


def direction_rhs(
    wp: np.ndarray, w: np.ndarray, wa: np.ndarray, *, lambda_d: float | np.ndarray,
    lambda_s: float | np.ndarray, alpha_p: float = 1.0, beta: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-isotropic data (Appendix D): one eigendirection of ``Sigma_d = X``, ``Sigma_s = X+X'``.

    ``dw_p/dt = alpha_p (w_a l_d - w_p w l_s) w``, ``dw/dt = w_p (w_a l_d - w_p w l_s)``,
    ``dw_a/dt = beta (w - w_a)`` (``beta=None``: SimSiam, ``w_a = w``). The non-collapsed
    fixed points satisfy ``w_p = l_d / l_s`` (``Wp W = W Sigma_d Sigma_s^-1``).
    """
    target = w if beta is None else wa
    gap = target * lambda_d - wp * w * lambda_s
    dwa = wp * gap if beta is None else beta * (w - wa)
    return alpha_p * gap * w, wp * gap, dwa


def integral_of_motion(
    p: np.ndarray, t: np.ndarray, p0: np.ndarray, s0: np.ndarray, alpha_p: float, eta: float
) -> np.ndarray:
    """``s_j(t) = p_j(t)^2/alpha_p + c_j exp(-2 eta t)``, ``c_j = s_j(0) - p_j(0)^2/alpha_p``.

    ``p`` has shape ``(T, m)``, ``t`` ``(T,)``, ``p0, s0`` ``(m,)``; returns ``(T, m)``.
    (docs/theory.md#tian2021: the sign of ``c_j`` is the derived one, not the paper's printed one.)
    """
    c = s0 - p0**2 / alpha_p
    return p**2 / alpha_p + c * np.exp(-2.0 * eta * np.asarray(t))[:, None]


def invariant_residual(traj: FlowTrajectory, alpha_p: float, eta: float) -> np.ndarray:
    """Theorem 1 relative residual along a trajectory, shape ``(T,)``.

    ``|| W W^T - Wp^T Wp / alpha_p - exp(-2 eta t) C ||_F / ||W W^T||_F`` with ``C`` fixed
    by the first snapshot. Zero for the exact flow (any loss depending on ``Wp W`` only).
    """
    gram = np.einsum("tij,tkj->tik", traj.W, traj.W)
    pp = np.einsum("tji,tjk->tik", traj.Wp, traj.Wp) / alpha_p
    C = gram[0] - pp[0]
    decay = np.exp(-2.0 * eta * traj.times)[:, None, None]
    resid = np.linalg.norm(gram - pp - decay * C, axis=(1, 2))
    result: np.ndarray = resid / np.maximum(np.linalg.norm(gram, axis=(1, 2)), 1e-300)
    return result


def commutator_frobenius(F: np.ndarray, Wp: np.ndarray) -> np.ndarray:
    """``||[F, Wp]||_F``, unnormalised, as Theorem 3 bounds it; shapes ``(..., n, n)`` -> ``(...)``.

    :func:`nocollapse.diagnostics.commutator_norm` is the scale-free
    ``||[F, Wp]||_F / (||F||_F ||Wp||_F)`` that training logs as ``commutator``
    (docs/theory.md#vocabulary).
    """
    result: np.ndarray = np.linalg.norm(F @ Wp - Wp @ F, axis=(-2, -1))
    return result


def alignment_K(
    F: np.ndarray, Wp: np.ndarray, sigma2: float, alpha_p: float, eta: float, tau: float = 1.0
) -> np.ndarray:
    """``K = (1+sigma2)[(alpha_p/2) F + Wp^2 - tau/(1+sigma2) Wp] + (3/2) eta I`` (Theorem 3).

    ``||[F,Wp](t)||_F <= exp(-2 l0 t) ||[F,Wp](0)||_F`` when ``lambda_min(K) >= l0 > 0``.
    """
    a = 1.0 + sigma2
    n = F.shape[-1]
    result: np.ndarray = a * (0.5 * alpha_p * F + Wp @ Wp - (tau / a) * Wp) + 1.5 * eta * np.eye(n)
    return result


def integrate_modes(
    p0: np.ndarray,
    s0: np.ndarray,
    times: np.ndarray,
    *,
    sigma2: float,
    eta: float,
    alpha_p: float = 1.0,
    beta: float | None = None,
    tau0: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate the decoupled eigenmode ODE of ``m`` modes with ``solve_ivp`` (tight tol).

    ``p0, s0``: ``(m,)``; returns ``p, s, tau`` each of shape ``(len(times), m)``.
    """
    p0 = np.asarray(p0, float)
    s0 = np.asarray(s0, float)
    m = p0.size

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        p, s, tau = y[:m], y[m : 2 * m], y[2 * m :]
        return np.concatenate(mode_rhs(p, s, tau, sigma2=sigma2, eta=eta, alpha_p=alpha_p,
                                       beta=beta))

    y0 = np.concatenate([p0, s0, np.full(m, float(tau0))])
    sol = solve_ivp(rhs, (float(times[0]), float(times[-1])), y0, t_eval=times,
                    method="LSODA", rtol=1e-10, atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"eigenmode ODE integration failed: {sol.message}")
    y = sol.y.T
    return y[:, :m], y[:, m : 2 * m], y[:, 2 * m :]


def balanced_start(
    n1: int, n2: int, alpha_p: float, seed: int, scale: float = INIT_SCALE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``W0`` and the aligned, balanced predictor ``Wp0``; returns ``(Wp0, W0, U)``.

    ``W0 = scale * randn(n2, n1) / sqrt(n1)`` (seeded); with ``F0 = W0 W0^T = U diag(s0) U^T``
    the predictor is ``Wp0 = U diag(sqrt(alpha_p s0)) U^T``: aligned (``[F, Wp] = 0``) and on
    the invariant parabola (``c_j = 0``), so each mode follows the third-order dynamics and
    collapses exactly when ``p_j(0) < p*_-``. The Marchenko-Pastur spread of ``s0`` puts
    the smallest modes near ``p*_-`` for ``scale`` around 0.4.
    """
    rng = np.random.default_rng(seed)
    W0 = scale * rng.standard_normal((n2, n1)) / np.sqrt(n1)
    s0, U = np.linalg.eigh(W0 @ W0.T)
    s0, U = s0[::-1], U[:, ::-1]  # descending
    Wp0 = U @ np.diag(np.sqrt(alpha_p * np.clip(s0, 0, None))) @ U.T
    return Wp0, W0, U


def _resolve(params: SimulationParams) -> dict[str, float]:
    values = {}
    for name, default in DEFAULTS.items():
        value = getattr(params, name)
        values[name] = default if value is None else value
    if params.loss is not None and params.loss not in LOSS_CONVENTIONS:
        raise ConfigError(
            f"tian2021 run_comparison supports loss 'l2' only, got {params.loss!r}; "
            "use --model bao2023 for a cosine-loss theory, or theory.linear_sgd.sgd_simulate "
            "(loss='cosine') for the sampled cosine simulation of this model"
        )
    if params.augment is not None:
        raise ConfigError("--augment is a halvagal2023 option (which views carry the noise)")
    for name in ("sigma2", "eta", "alpha_p"):
        check_nonnegative(name, values[name])
    for name in ("steps", "lr", "n1", "n2"):
        check_positive(name, values[name])
    if params.beta is not None:
        check_nonnegative("beta", params.beta)
    if values["n2"] > values["n1"]:
        raise ConfigError(f"n2={values['n2']} must be <= n1={values['n1']}")
    return values


DIAGNOSTICS = ("effective_rank", "collapse_level", "uniformity_wang_isola",
               "uniformity_wasserstein")


def _diagnostics(traj: FlowTrajectory) -> dict[str, np.ndarray]:
    """The shared collapse diagnostics of :func:`summarize_linear` at every snapshot, ``(T,)``."""
    rows = [summarize_linear(W, Wp) for W, Wp in zip(traj.W, traj.Wp, strict=True)]
    return {key: np.array([row[key] for row in rows]) for key in DIAGNOSTICS}


def run_comparison(params: SimulationParams) -> Comparison:
    """Symmetrised matrix flow vs eigenmode ODE from the same start (docs/theory.md#tian2021).

    Defaults (``None`` fields): ``n1=20, n2=10, sigma2=0.5, eta=0.1, alpha_p=1``, SimSiam
    (``beta=None``, ``tau=1``), ``steps=1000`` RK4 steps of ``lr=0.1`` (ODE time 100). The
    start is :func:`balanced_start` (seed ``params.seed``): aligned and on the invariant
    parabola; the reduced ODE starts each mode from the diagonal of the initial ``Wp`` and
    ``F`` in their common eigenbasis ``U``. With seed 0 nine modes reach
    ``p*_+ = 0.54415`` (``s = 0.29610``) and the smallest starts below ``p*_- = 0.12251`` and
    collapses. ``beta`` switches on the EMA target (``Wa(0) = W(0)``, per-mode ``tau_j``).

    ``simulated[:, j]`` is ``u_j^T Wp u_j`` (the eigenvalue while the modes stay aligned,
    which they do from an aligned start), modes ordered by initial ``p`` (descending).
    Extras: ``s_simulated``/``s_theory`` ``(T, m)``, ``commutator_frobenius`` ``||[F,Wp]||_F``,
    ``invariant_residual`` (Theorem 1), ``lambda_min_K`` (Theorem 3), ``norm_W`` and the
    shared diagnostics :data:`DIAGNOSTICS` (``summarize_linear``, 512 fixed inputs). About
    101 snapshots; measured wall time of the default run: 1.5 s (0.08 s without the
    diagnostics) on 2 shared CPU cores.
    """
    v = _resolve(params)
    n1, n2 = int(v["n1"]), int(v["n2"])
    sigma2, eta, alpha_p, beta = v["sigma2"], v["eta"], v["alpha_p"], params.beta
    dt, steps = float(v["lr"]), int(v["steps"])
    cfg = FlowConfig.isotropic(n1, sigma2, alpha_p=alpha_p, eta=eta, beta=beta, symmetric=True)
    Wp0, W0, U = balanced_start(n1, n2, alpha_p, params.seed)
    record = max(1, steps // 100)
    traj = integrate_flow(Wp0, W0, cfg, dt, steps, record_every=record)

    F = np.einsum("tij,tkj->tik", traj.W, traj.W)
    p_sim = np.einsum("ij,tik,kj->tj", U, traj.Wp, U)
    s_sim = np.einsum("ij,tik,kj->tj", U, F, U)
    p_th, s_th, tau_th = integrate_modes(p_sim[0], s_sim[0], traj.times, sigma2=sigma2,
                                         eta=eta, alpha_p=alpha_p, beta=beta)
    K = alignment_K(F, traj.Wp, sigma2, alpha_p, eta)
    extras = {
        "s_simulated": s_sim,
        "s_theory": s_th,
        "commutator_frobenius": commutator_frobenius(F, traj.Wp),
        "invariant_residual": invariant_residual(traj, alpha_p, eta),
        "lambda_min_K": np.linalg.eigvalsh(0.5 * (K + np.swapaxes(K, -1, -2)))[:, 0],
        "norm_W": np.linalg.norm(traj.W, axis=(1, 2)),
    }
    if beta is not None:
        extras["tau_theory"] = tau_th
    extras.update(_diagnostics(traj))
    p_minus, p_plus = fixed_points(sigma2, eta)
    return Comparison(
        model="tian2021",
        quantity="p_j (eigenvalues of Wp)",
        times=traj.times,
        simulated=p_sim,
        theory=p_th,
        extras=extras,
        params={
            "n1": n1, "n2": n2, "sigma2": sigma2, "eta": eta, "alpha_p": alpha_p,
            "beta": beta, "steps": steps, "lr": dt, "seed": params.seed,
            "init_scale": INIT_SCALE, "p_plus": float(p_plus), "p_minus": float(p_minus),
            "s_plus": float(p_plus**2 / alpha_p), "eta_c": float(critical_eta(sigma2)),
        },
    )
