"""The linear theory read off a real run: tian2021's quantities from embeddings and matrices.

docs/theory.md#theory-in-a-run. tian2021 observes that an SGD-trained linear predictor
``Wp`` and the embedding correlation ``F`` share an eigenbasis, and that in it the
predictor's eigenvalues follow ``p_j ~ s_j^(1/2)`` (DirectPred builds ``Wp`` that way).
:func:`predictor_in_basis` and :func:`power_law_fit` measure it on any ``F``, ``Wp``.
:func:`critical_eta` is the one definition of the weight decay above which every mode
collapses; :func:`augmentation_ratio` estimates its input ``sigma^2`` from a run
(``x`` and ``tau``: :mod:`nocollapse.diagnostics.run_estimates`); :func:`target_ratio` is
the EMA's steady-state ``tau`` of the theory's equation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numpy as np

from nocollapse.diagnostics._arrays import ArrayInput, as_array, as_embeddings
from nocollapse.diagnostics.alignment import _pair, symmetric_part
from nocollapse.errors import ConfigError


@overload
def critical_eta(sigma2: float, tau: float = 1.0, data_scale: float = 1.0) -> float: ...


@overload
def critical_eta(sigma2: np.ndarray, tau: float = 1.0, data_scale: float = 1.0
                 ) -> np.ndarray: ...


def critical_eta(sigma2: float | np.ndarray, tau: float = 1.0,
                 data_scale: float = 1.0) -> float | np.ndarray:
    """``eta_c = x tau^2 / (4 (1 + sigma^2))`` (docs/theory.md#tian2021-threshold).

    With inputs ``X = x I`` and augmentation ``X' = sigma^2 X`` the third-order mode
    dynamics is ``dp/dt = x p^2 [tau - (1+sigma^2) p] - eta p``; above ``eta_c`` it has
    no non-zero fixed point: every mode collapses. ``sigma2`` (float or array,
    broadcast): augmentation variance relative to the data's; ``tau``: target/online
    weight ratio (1 for SimSiam); ``data_scale``: ``x`` (1: the unit-variance inputs of
    the theory's statement; a run's is :func:`~nocollapse.diagnostics.data_scale`).
    Returns a float for a float ``sigma2``.
    """
    if not data_scale > 0:
        raise ConfigError(f"data_scale={data_scale!r} must be > 0 (the inputs' variance)")
    value = data_scale * tau**2 / (4.0 * (1.0 + np.asarray(sigma2, dtype=float)))
    return float(value) if np.ndim(value) == 0 else value


def predictor_in_basis(F: ArrayInput, Wp: ArrayInput) -> tuple[np.ndarray, np.ndarray]:
    """``(s, p)``: eigenvalues ``s_j`` of ``F`` (descending) and ``p_j = u_j^T Wp u_j``.

    ``u_j`` are ``F``'s eigenvectors, so ``p_j`` is the predictor's gain along ``F``'s
    mode ``j``; it equals ``Wp``'s own eigenvalue when the two commute. Only the
    symmetric part of ``Wp`` enters. Both of shape ``(d,)``.
    """
    f, w = _pair(F, Wp)
    s, u = np.linalg.eigh((f + f.T) / 2)
    p = np.einsum("ij,ik,kj->j", u, symmetric_part(w), u)
    return s[::-1].copy(), p[::-1].copy()


@dataclass(frozen=True)
class PowerLaw:
    """``p = prefactor * s^exponent`` fitted in log-log space; ``r2`` of that fit."""

    exponent: float
    prefactor: float
    r2: float
    modes: int  # how many (s_j, p_j) pairs entered the fit


def power_law_fit(s: ArrayInput, p: ArrayInput, floor: float = 1e-3) -> PowerLaw:
    """Least-squares line ``log p = log c + k log s`` over the modes with signal.

    Modes with ``s_j <= floor * max(s)`` (no signal left, where a predictor's gain is
    whatever its weight decay left it) or ``p_j <= 0`` are left out. ``r2`` is the
    coefficient of determination in log space. Raises ConfigError with fewer than
    three usable modes, or when their ``s_j`` are all equal.
    """
    s, p = as_array(s).ravel(), as_array(p).ravel()
    if s.shape != p.shape:
        raise ConfigError(f"s {s.shape} and p {p.shape} must have the same length")
    with np.errstate(invalid="ignore"):
        keep = (s > floor * max(float(np.nanmax(s, initial=0.0)), 0.0)) & (p > 0) & (s > 0)
    if int(np.sum(keep)) < 3:
        raise ConfigError(f"power_law_fit needs >= 3 modes with s > {floor:g} s_max and "
                          f"p > 0; got {int(np.sum(keep))}")
    x, y = np.log(s[keep]), np.log(p[keep])
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.ptp(x) < 1e-9:
        raise ConfigError("power_law_fit needs finite s_j, p_j and s_j that differ: with "
                          "equal eigenvalues there is no exponent to fit")
    k, c = np.polyfit(x, y, 1)
    residual = y - (k * x + c)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 0.0
    return PowerLaw(float(k), float(math.exp(c)), r2, int(np.sum(keep)))


def augmentation_ratio(z1: ArrayInput, z2: ArrayInput) -> float:
    """``sigma^2`` estimated in embedding space: augmentation over data variance.

    With ``z_i = zbar + n_i`` (two independent augmentation draws around the mean view
    ``zbar``): ``E ||z1 - z2||^2 / 2 = tr Cov(n)`` and ``tr Cov((z1 + z2)/2) = tr
    Cov(zbar) + tr Cov(n) / 2``. Returns ``tr Cov(n) / tr Cov(zbar)``, the
    ``sigma^2`` of the linear theory's ``X' = sigma^2 X`` (isotropic case); ``inf``
    when the mean views carry no variance (a collapsed batch).
    """
    a, b = as_embeddings(z1, "z1"), as_embeddings(z2, "z2")
    if a.shape != b.shape:
        raise ConfigError(f"z1 {a.shape} and z2 {b.shape} must have the same shape")
    noise = float(np.mean(np.sum((a - b) ** 2, axis=1))) / 2.0
    mean_view = (a + b) / 2.0
    spread = float(np.sum(np.var(mean_view, axis=0))) - noise / 2.0
    return noise / spread if spread > 0 else math.inf


def target_ratio(momentum: float, growth: float) -> float:
    """``tau``, the target/online weight ratio, at the EMA's steady state.

    tian2021's ``s dtau/dt = beta (1 - tau) s - tau (ds/dt)/2`` with ``beta = 1 -
    momentum`` per step and ``growth = d log s/dt`` per step (of the online embeddings'
    squared scale) is stationary at ``tau = beta / (beta + growth/2)``. ``momentum = 0``
    (SimSiam: the target is the online network) gives 1. ``nan`` when ``beta +
    growth/2 <= 0`` (the online network shrinks faster than the EMA follows). The theory's
    formula, kept for it; a run's ``tau`` is measured directly by
    :func:`~nocollapse.diagnostics.target_online_ratio` (a growth read off a few noisy
    logs made this steady state swing between 0.06 and 1.24 from one epoch to the next).
    """
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"EMA momentum={momentum!r} must lie in [0, 1)")
    beta = 1.0 - momentum
    if momentum == 0.0:
        return 1.0
    denominator = beta + growth / 2.0
    return beta / denominator if denominator > 0 else math.nan
