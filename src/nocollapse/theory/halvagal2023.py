"""halvagal2023: eigenmode dynamics with a closed-form predictor, and IsoLoss.

docs/theory.md#halvagal2023. The toy model and its sampled-data simulation live in
:mod:`nocollapse.theory.halvagal2023_sim`; this module holds the eigenmode ODEs
(exact for the Euclidean losses, mean-field for the cosine losses), per-mode
convergence times, and :func:`run_comparison` for ``nocollapse simulate``.

Eigenmode ODEs (docs/theory.md#halvagal2023-eigenmodes), ``lambda_m = s_m^alpha``, with
both views augmented (``augment="both"``; with ``"target"`` the online factor
``1 + sigma^2`` becomes 1, see :func:`mode_rhs`):

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
    AUGMENT,
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
    "fixed_point",
    "gain_measures",
    "gain_spread",
    "integrate_modes",
    "mode_gains",
    "mode_rhs",
    "moving_target",
    "rate_spread",
    "run_comparison",
    "simulate_toy",
]


def mode_rhs(loss: str, sigma2: float, alpha: float = 1.0, augment: str = "target"
             ) -> Callable[[float, np.ndarray], np.ndarray]:
    """The right-hand side ``f(t, s)`` of the halvagal2023 eigenmode ODE for ``loss``.

    docs/theory.md#halvagal2023-eigenmodes (module docstring). ``augment="both"`` puts
    the noise on both views (the paper's statement, ``1 + sigma^2`` from the online
    view); ``"target"`` only on the target view, as the authors' toy notebook does
    (the online view's factor becomes 1). ``s`` has shape ``(M,)`` or ``(M, K)``
    (``K`` independent states, as ``solve_ivp(vectorized=True)`` passes); the sums of
    ``lbar, N_p, N_z`` run over axis 0. Returns ``ds/dt`` of the same shape.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("augment", augment, AUGMENT)
    check_nonnegative("sigma2", sigma2)
    check_positive("alpha", alpha)
    a = 1.0 + sigma2 if augment == "both" else 1.0  # E[x1 x1^T] of the online view
    a_target = 1.0 + sigma2  # E[x2 x2^T] of the target view

    def rhs(t: float, s: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(s, dtype=float), 0.0, None)
        lam = s**alpha
        if loss.endswith("l2"):
            gain = lam if loss == "l2" else 1.0
            return 2.0 * s * gain * (1.0 - a * lam)
        sum_l2s = np.sum(lam**2 * s, axis=0)
        lbar = sum_l2s / np.sum(lam * s, axis=0)
        n_p_n_z = np.sqrt(a * a_target * sum_l2s * np.sum(s, axis=0))
        gain = lam if loss == "cosine" else 1.0
        result: np.ndarray = 2.0 * s * gain / n_p_n_z * (1.0 - lam / lbar)
        return result

    return rhs


def integrate_modes(s0: np.ndarray, times: np.ndarray, loss: str, sigma2: float,
                    alpha: float = 1.0, rtol: float = 1e-8, augment: str = "target"
                    ) -> np.ndarray:
    """Integrate :func:`mode_rhs` from ``s0`` (shape ``(M,)``) over ``times`` (shape ``(T,)``).

    Returns shape ``(T, M)``, the modes in the order of ``s0``. Modes never cross (each
    obeys a scalar ODE driven by shared sums), so sorted input stays sorted.
    """
    from scipy.integrate import solve_ivp

    times = np.asarray(times, dtype=float)
    s0 = np.asarray(s0, dtype=float)
    sol = solve_ivp(mode_rhs(loss, sigma2, alpha, augment), (times[0], times[-1]), s0, t_eval=times,
                    method="LSODA", rtol=rtol, atol=1e-12 * max(1.0, float(np.max(s0))))
    if not sol.success:
        raise RuntimeError(f"eigenmode ODE failed: {sol.message}")
    result: np.ndarray = sol.y.T
    return result


def convergence_times(times: np.ndarray, traj: np.ndarray, target: np.ndarray | float | None
                      = None, tol: float = 0.01, relative_to: str = "fixed_point") -> np.ndarray:
    """Per mode, the first time after which it stays within ``tol`` of its fixed point.

    Args:
        times: shape ``(T,)``.
        traj: shape ``(T, M)``.
        target: the fixed point per mode (shape ``(M,)`` or scalar); ``None`` takes the
            last row of ``traj`` (the value the run settled at).
        tol: the tolerance as a fraction.
        relative_to: ``"fixed_point"`` (``|s - s*| <= tol |s*|``, as the paper states the
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
    settled. Used to measure "IsoLoss equalises the rates" (docs/theory.md#halvagal2023).
    """
    t = convergence_times(times, traj, target, tol, relative_to)
    moved = t[t > 0]
    if np.any(np.isnan(t)) or moved.size == 0:
        return float("nan")
    return float(np.max(moved) / np.min(moved))


def moving_target(traj: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``lbar(t) = sum_k lambda_k^2 s_k / sum_k lambda_k s_k`` per row of ``traj`` ``(T, M)``.

    The common value every ``lambda_m`` of the cosine losses moves towards
    (docs/theory.md#halvagal2023-eigenmodes); it drifts while the modes move.
    """
    s = np.clip(np.asarray(traj, dtype=float), 0.0, None)
    lam = s**alpha
    result: np.ndarray = np.sum(lam**2 * s, axis=1) / np.maximum(np.sum(lam * s, axis=1), 1e-300)
    return result


def mode_gains(times: np.ndarray, traj: np.ndarray, target: np.ndarray | float,
               alpha: float = 1.0, window: float | None = None) -> np.ndarray:
    """Per mode, the gain ``g_m`` in ``d log s_m/dt = g_m (1 - lambda_m / target(t))``.

    The eigenmode ODEs all have this form (docs/theory.md#halvagal2023-gain): the gain
    is ``2 lambda_m`` (Euclidean) or ``2 lambda_m / (N_p N_z)`` (cosine) with the
    eigenvalue as a learning-rate multiplier, and mode-independent with IsoLoss. Fitted
    by least squares through the origin over the steps with ``t - t_0 <= window``:
    ``g_m = sum_k dlog s_m(k) x_m(k) / sum_k x_m(k)^2 dt_k``, ``x`` the mean of
    ``1 - lambda/target`` at both ends of interval ``k``, so steps where a mode sits at
    its target weigh nothing.

    Args:
        times: ``(T,)``; traj: ``(T, M)``, the eigenvalues ``s_m``.
        target: ``lambda*`` per row ``(T,)`` (a moving target, see :func:`moving_target`)
            or a scalar (a fixed point).
        window: ODE time from ``times[0]`` to use; ``None``: the whole trajectory.

    Returns:
        ``(M,)``; ``nan`` for a mode that was never away from its target.
    """
    times = np.asarray(times, dtype=float)
    traj = np.clip(np.asarray(traj, dtype=float), 1e-300, None)
    end = len(times) if window is None else int(np.searchsorted(times, times[0] + window,
                                                                  side="right"))
    end = max(end, 2)
    ref = np.broadcast_to(np.asarray(target, dtype=float), (len(times),))[:end, None]
    gap = 1.0 - traj[:end] ** alpha / ref
    x = (gap[1:] + gap[:-1]) / 2  # trapezoid: the mean gap over each interval
    dt = np.diff(times[:end])[:, None]
    dlog = np.diff(np.log(traj[:end]), axis=0)
    weight = np.sum(x * x * dt, axis=0)
    return np.where(weight > 0, np.sum(dlog * x, axis=0) / np.where(weight > 0, weight, 1.0),
                    np.nan)


def gain_spread(times: np.ndarray, traj: np.ndarray, target: np.ndarray | float,
                alpha: float = 1.0, window: float | None = None, min_gap: float = 0.05
                ) -> float:
    """Largest over smallest :func:`mode_gains` among the modes that had to move.

    A mode that starts within ``min_gap`` of its target (``|1 - lambda_m/target| <
    min_gap`` at ``t_0``) is left out: its gain is the ratio of two small, noisy numbers.
    ``nan`` when a kept gain is not positive (a mode moved away from its target over the
    window) or fewer than two modes are kept. IsoLoss's claim: the spread is 1 in the
    ODE, and smaller than the plain loss's in simulation.
    """
    gains = mode_gains(times, traj, target, alpha, window)
    lam0 = np.clip(np.asarray(traj, dtype=float)[0], 0.0, None) ** alpha
    first = float(np.broadcast_to(np.asarray(target, dtype=float), (len(times),))[0])
    kept = gains[np.abs(1.0 - lam0 / first) >= min_gap]
    if kept.size < 2 or not np.all(kept > 0):
        return float("nan")
    return float(np.max(kept) / np.min(kept))


def _loss_name(params: SimulationParams) -> str:
    loss = "l2" if params.loss is None else params.loss
    check_choice("loss", loss, LOSSES)
    return loss


def _check_unsupported(params: SimulationParams) -> None:
    refuse_options(params, ("eta", "alpha_p", "beta"), "halvagal2023 toy",
                   "no weight decay, closed-form predictor, no EMA")


def config_from_params(params: SimulationParams, samples: int = 4000) -> ToyConfig:
    """Map ``nocollapse simulate`` options onto a :class:`ToyConfig` (the toy's defaults)."""
    _check_unsupported(params)
    steps = 1500 if params.steps is None else params.steps
    return ToyConfig(
        n=15 if params.n1 is None else params.n1,
        m=10 if params.n2 is None else params.n2,
        sigma2=0.01 if params.sigma2 is None else params.sigma2,
        loss=_loss_name(params), lr=params.lr, steps=steps, samples=samples,
        record_every=max(1, steps // 150), seed=params.seed,
        augment="target" if params.augment is None else params.augment,
    )


def fixed_point(cfg: ToyConfig) -> float | None:
    """The Euclidean losses' common fixed point ``s* = (1/(1+sigma_1^2))^(1/alpha)``.

    ``sigma_1^2`` is the online view's noise: ``sigma^2`` with ``augment="both"`` (the
    paper's ``1/(1+sigma^2)``), 0 with ``augment="target"`` (the authors' code: 1).
    ``None`` for the cosine losses, whose fixed point is any isotropic state.
    """
    if not cfg.loss.endswith("l2"):
        return None
    online = cfg.sigma2 if cfg.augment == "both" else 0.0
    return float((1.0 / (1.0 + online)) ** (1.0 / cfg.alpha))


GAIN_WINDOW = 20.0  # ODE time over which the cosine losses' gains are fitted (200 steps)


def gain_measures(cfg: ToyConfig, times: np.ndarray, traj: np.ndarray) -> dict[str, float]:
    """The gain spreads of one trajectory (docs/theory.md#halvagal2023-gain).

    ``gain_spread``: against the target each mode moves to, the fixed point (Euclidean,
    whole run) or the moving ``lbar(t)`` (cosine, first ``GAIN_WINDOW``);
    ``gain_spread_final``: cosine only, against the final mean ``lambda`` held fixed.
    """
    fixed = fixed_point(cfg)
    if fixed is not None:
        return {"gain_spread": gain_spread(times, traj, fixed**cfg.alpha, cfg.alpha)}
    final = float(np.mean(np.clip(traj[-1], 0.0, None) ** cfg.alpha))
    return {
        "gain_spread": gain_spread(times, traj, moving_target(traj, cfg.alpha), cfg.alpha,
                                   GAIN_WINDOW),
        "gain_spread_final": gain_spread(times, traj, final, cfg.alpha, GAIN_WINDOW),
    }


def compare_trajectory(cfg: ToyConfig, traj: ToyTrajectory) -> Comparison:
    """Integrate the eigenmode ODE from the simulation's initial spectrum and pack both."""
    theory = integrate_modes(traj.eigenvalues[0], traj.times, cfg.loss, cfg.sigma2, cfg.alpha,
                             augment=cfg.augment)
    fixed = fixed_point(cfg)
    t_sim = convergence_times(traj.times, traj.eigenvalues, fixed, 0.01)
    t_th = convergence_times(traj.times, theory, fixed, 0.01)
    measures: dict[str, float] = {}
    for who, arr in (("sim", traj.eigenvalues), ("theory", theory)):
        measures[f"rate_spread_{who}"] = rate_spread(traj.times, arr, fixed, 0.05)
        for key, value in gain_measures(cfg, traj.times, arr).items():
            measures[f"{key}_{who}"] = value
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
            "alpha": cfg.alpha, "seed": cfg.seed, "augment": cfg.augment,
            "fixed_point": fixed,
            "convergence_time_sim": t_sim.tolist(), "convergence_time_theory": t_th.tolist(),
            **measures,
        },
    )


def run_comparison(params: SimulationParams) -> Comparison:
    """Toy simulation vs eigenmode ODE (docs/theory.md#halvagal2023-toy).

    ``params.loss``: ``l2`` (default), ``isoloss-l2``, ``cosine`` or ``isoloss-cosine``
    (the training names); ``sigma2`` (0.01), ``steps`` (1500), ``lr`` (1e-2 Euclidean,
    0.1 cosine), ``n1 = N`` (15), ``n2 = M`` (10), ``augment`` (``target``, the authors'
    code) and ``seed`` as in the authors' toy. 4000 samples a step (the authors used
    2e4). ``times`` is ODE time ``lr * step``; extras hold ``||W||_F^2`` of both;
    ``params`` holds per-mode convergence times (1% of the fixed point), the
    slowest/fastest rate ratio (:func:`rate_spread`, 5% of the gap) and the gain
    spreads of :func:`gain_measures`, for simulation and ODE alike.
    """
    cfg = config_from_params(params)
    return compare_trajectory(cfg, simulate_toy(cfg))
