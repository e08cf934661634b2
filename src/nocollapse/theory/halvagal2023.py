"""halvagal2023: eigenmode dynamics with a closed-form predictor, and IsoLoss.

papers.md section 2. The toy model and its sampled-data simulation live in
:mod:`nocollapse.theory.halvagal2023_sim`; this module holds the eigenmode ODEs
(exact for the Euclidean losses, mean-field for the cosine losses), per-mode
convergence times, and :func:`run_comparison` for ``nocollapse simulate``.

Eigenmode ODEs (papers.md section 2, "Eigenmode ODEs"), ``lambda_m = s_m^alpha``:

    Euclidean:       ds_m/dt = 2 s_m lambda_m [1 - (1+sigma^2) lambda_m]
    Euclidean-Iso:   ds_m/dt = 2 s_m          [1 - (1+sigma^2) lambda_m]
    Cosine:          ds_m/dt = 2 s_m lambda_m / (N_p N_z) [1 - lambda_m / lbar]
    Cosine-Iso:      ds_m/dt = 2 s_m          / (N_p N_z) [1 - lambda_m / lbar]
    lbar = sum_k lambda_k^2 s_k / sum_k lambda_k s_k
    N_p^2 = (1+sigma^2) sum_k lambda_k^2 s_k ;  N_z^2 = (1+sigma^2) sum_k s_k
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nocollapse.errors import check_choice, check_nonnegative, check_positive
from nocollapse.theory.halvagal2023_sim import (
    LOSSES,
    ToyConfig,
    ToyTrajectory,
    simulate_toy,
)
from nocollapse.theory.result import Comparison, SimulationParams, refuse_options

__all__ = [
    "LOSSES",
    "ToyConfig",
    "convergence_times",
    "integrate_modes",
    "mode_rhs",
    "rate_spread",
    "run_comparison",
    "simulate_toy",
]


def mode_rhs(loss: str, sigma2: float, alpha: float = 1.0) -> Callable[[float, np.ndarray],
                                                                         np.ndarray]:
    """The right-hand side ``f(t, s)`` of the halvagal2023 eigenmode ODE for ``loss``.

    papers.md section 2, "Eigenmode ODEs" (module docstring). ``s`` has shape ``(M,)``
    or ``(M, K)`` (``K`` independent states, as ``solve_ivp(vectorized=True)`` passes);
    the sums of ``lbar, N_p, N_z`` run over axis 0. Returns ``ds/dt`` of the same shape.
    """
    check_choice("loss", loss, LOSSES)
    check_nonnegative("sigma2", sigma2)
    check_positive("alpha", alpha)
    a = 1.0 + sigma2

    def rhs(t: float, s: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(s, dtype=float), 0.0, None)
        lam = s**alpha
        if loss.startswith("euclidean"):
            gain = lam if loss == "euclidean" else 1.0
            return 2.0 * s * gain * (1.0 - a * lam)
        sum_l2s = np.sum(lam**2 * s, axis=0)
        lbar = sum_l2s / np.sum(lam * s, axis=0)
        n_p_n_z = a * np.sqrt(sum_l2s * np.sum(s, axis=0))
        gain = lam if loss == "cosine" else 1.0
        return 2.0 * s * gain / n_p_n_z * (1.0 - lam / lbar)

    return rhs


def integrate_modes(s0: np.ndarray, times: np.ndarray, loss: str, sigma2: float,
                    alpha: float = 1.0, rtol: float = 1e-8) -> np.ndarray:
    """Integrate :func:`mode_rhs` from ``s0`` (shape ``(M,)``) over ``times`` (shape ``(T,)``).

    Returns shape ``(T, M)``, the modes in the order of ``s0``. Modes never cross (each
    obeys a scalar ODE driven by shared sums), so sorted input stays sorted.
    """
    from scipy.integrate import solve_ivp

    times = np.asarray(times, dtype=float)
    s0 = np.asarray(s0, dtype=float)
    sol = solve_ivp(mode_rhs(loss, sigma2, alpha), (times[0], times[-1]), s0, t_eval=times,
                    method="LSODA", rtol=rtol, atol=1e-12 * max(1.0, float(np.max(s0))))
    if not sol.success:
        raise RuntimeError(f"eigenmode ODE failed: {sol.message}")
    return sol.y.T


def convergence_times(times: np.ndarray, traj: np.ndarray, target: np.ndarray | float | None
                      = None, tol: float = 0.01, relative_to: str = "fixed_point") -> np.ndarray:
    """Per mode, the first time after which it stays within ``tol`` of its fixed point.

    Args:
        times: shape ``(T,)``.
        traj: shape ``(T, M)``.
        target: the fixed point per mode (shape ``(M,)`` or scalar); ``None`` takes the
            last row of ``traj`` (the value the run settled at).
        tol: the tolerance as a fraction.
        relative_to: ``"fixed_point"`` (``|s - s*| <= tol |s*|``, as papers.md states the
            claim) or ``"initial_gap"`` (``|s - s*| <= tol |s(0) - s*|``: time to cover a
            fraction ``1 - tol`` of the way, which is the same for every mode of a linear
            system and so measures a rate).

    Returns:
        shape ``(M,)``; ``nan`` for a mode that never settles within ``tol``.
    """
    check_choice("relative_to", relative_to, ("fixed_point", "initial_gap"))
    check_positive("tol", tol)
    traj = np.asarray(traj, dtype=float)
    fixed = traj[-1] if target is None else np.broadcast_to(np.asarray(target, float),
                                                            traj.shape[1:])
    scale = np.abs(fixed) if relative_to == "fixed_point" else np.abs(traj[0] - fixed)
    inside = np.abs(traj - fixed) <= tol * scale
    # A mode has converged at the first index after its last excursion outside.
    stays = np.flip(np.logical_and.accumulate(np.flip(inside, axis=0), axis=0), axis=0)
    first = np.argmax(stays, axis=0)
    out = np.asarray(times, dtype=float)[first]
    return np.where(stays[-1], out, np.nan)


def rate_spread(times: np.ndarray, traj: np.ndarray, target: np.ndarray | float | None = None,
                tol: float = 0.01, relative_to: str = "initial_gap") -> float:
    """Slowest over fastest convergence time among modes that had to move.

    Modes already within ``tol`` at ``t=0`` (convergence time 0) are left out, since
    their ratio is meaningless. Returns ``nan`` when no mode moved or some mode never
    settled. Used to measure "IsoLoss equalises the rates" (papers.md section 2).
    """
    t = convergence_times(times, traj, target, tol, relative_to)
    moved = t[t > 0]
    if np.any(np.isnan(t)) or moved.size == 0:
        return float("nan")
    return float(np.max(moved) / np.min(moved))


def _loss_name(params: SimulationParams) -> str:
    loss = "l2" if params.loss is None else params.loss
    check_choice("loss", loss, ("l2", "cosine"))
    return ("euclidean" if loss == "l2" else "cosine") + ("_iso" if params.iso else "")


def _check_unsupported(params: SimulationParams) -> None:
    refuse_options(params, ("eta", "alpha_p", "beta"), "halvagal2023 toy",
                   "no weight decay, closed-form predictor, no EMA")


def config_from_params(params: SimulationParams, samples: int = 4000) -> ToyConfig:
    """Map ``nocollapse simulate`` options onto a :class:`ToyConfig` (papers.md defaults)."""
    _check_unsupported(params)
    steps = 1500 if params.steps is None else params.steps
    return ToyConfig(
        n=15 if params.n1 is None else params.n1,
        m=10 if params.n2 is None else params.n2,
        sigma2=0.01 if params.sigma2 is None else params.sigma2,
        loss=_loss_name(params), lr=params.lr, steps=steps, samples=samples,
        record_every=max(1, steps // 150), seed=params.seed,
    )


def compare_trajectory(cfg: ToyConfig, traj: ToyTrajectory) -> Comparison:
    """Integrate the eigenmode ODE from the simulation's initial spectrum and pack both."""
    theory = integrate_modes(traj.eigenvalues[0], traj.times, cfg.loss, cfg.sigma2, cfg.alpha)
    fixed = 1.0 / (1.0 + cfg.sigma2) if cfg.loss.startswith("euclidean") else None
    t_sim = convergence_times(traj.times, traj.eigenvalues, fixed, 0.01)
    t_th = convergence_times(traj.times, theory, fixed, 0.01)
    spread = {
        f"rate_spread_{who}": rate_spread(traj.times, arr, fixed, 0.05)
        for who, arr in (("sim", traj.eigenvalues), ("theory", theory))
    }
    return Comparison(
        model="halvagal2023",
        quantity="s_m (eigenvalues of W W^T)",
        times=traj.times,
        simulated=traj.eigenvalues,
        theory=theory,
        extras={"frob2_sim": traj.frob2, "frob2_theory": theory.sum(axis=1),
                "step": traj.steps.astype(float)},
        params={
            "loss": cfg.loss, "n": cfg.n, "m": cfg.m, "sigma2": cfg.sigma2,
            "lr": cfg.step_size, "steps": cfg.steps, "samples": cfg.samples,
            "alpha": cfg.alpha, "seed": cfg.seed,
            "convergence_time_sim": t_sim.tolist(), "convergence_time_theory": t_th.tolist(),
            **spread,
        },
    )


def run_comparison(params: SimulationParams) -> Comparison:
    """Toy simulation vs eigenmode ODE (papers.md section 2, toy reproduction).

    ``params.loss`` ``"l2"`` (default) / ``"cosine"`` select the Euclidean / cosine loss,
    ``params.iso`` the IsoLoss variant; ``sigma2`` (0.01), ``steps`` (1500), ``lr``
    (1e-2 Euclidean, 0.1 cosine), ``n1 = N`` (15), ``n2 = M`` (10) and ``seed`` as in
    papers.md. 4000 samples a step (papers.md used 2e4): measured largest final relative
    error sim vs ODE, seed 0, 4000 / 2e4 samples: cosine 0.19% / 0.12%, cosine-Iso
    0.26% / 0.19%, Euclidean and Euclidean-Iso 0.09% (4000). ``times`` is ODE time
    ``lr * step``; extras hold ``||W||_F^2`` of both; ``params`` holds per-mode
    convergence times (1% of the fixed point) and the slowest/fastest rate ratio
    (:func:`rate_spread`, 5% of the gap; seed 0: Euclidean 12.8, Euclidean-Iso 2.5).
    """
    cfg = config_from_params(params)
    return compare_trajectory(cfg, simulate_toy(cfg))
