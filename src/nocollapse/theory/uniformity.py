"""Uniformity along the theory engine's trajectories (docs/theory.md#wang2022).

wang2022 studies the local dynamics of a uniformity indicator; its own formula is
open (docs/theory.md#open-items), so the established measures from :mod:`nocollapse.diagnostics`
(Wang & Isola, ``t = 2``, and the Wasserstein uniformity) are evaluated here:

* on a sequence of simulated encoders ``W`` (shape ``(T, n2, n1)``), through samples
  ``z = W x``, ``x ~ N(0, X)``;
* as a function of a reduced ODE state, the eigenvalues ``s_j`` of
  ``F = W X W^T``: ``z ~ N(0, diag(s))`` (exact for Gaussian ``x``, since only
  ``F`` matters up to a rotation, which neither measure sees);
* in closed form where one exists: ``k`` equal live modes out of ``m`` make the
  normalised embeddings uniform on a ``k``-sphere.

Every time point uses the **same** standard-normal draws (common random numbers), so
a curve moves only because the state moves, not because of resampling noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln, ive, logsumexp

from nocollapse.diagnostics import (
    embeddings_from_linear,
    wang_isola_uniformity,
    wasserstein_uniformity,
)
from nocollapse.errors import ConfigError, check_positive

KEYS = ("uniformity_wang_isola", "uniformity_wasserstein")


def _measures(z: np.ndarray, t: float) -> tuple[float, float]:
    return wang_isola_uniformity(z, t=t), wasserstein_uniformity(z)


def uniformity_of_linear(
    W: ArrayLike,
    n_samples: int = 512,
    seed: int = 0,
    X: ArrayLike | None = None,
    t: float = 2.0,
) -> dict[str, float]:
    """Both uniformity measures of ``z = W x`` for one encoder ``W`` (``(n2, n1)``)."""
    z = embeddings_from_linear(W, n_samples, np.random.default_rng(seed), X)
    return dict(zip(KEYS, _measures(z, t), strict=True))


def uniformity_along_trajectory(
    Ws: Sequence[ArrayLike] | np.ndarray,
    n_samples: int = 512,
    seed: int = 0,
    X: ArrayLike | None = None,
    t: float = 2.0,
) -> dict[str, np.ndarray]:
    """Both measures at every time point of a simulated trajectory.

    Args:
        Ws: ``(T, n2, n1)`` encoders (e.g. the snapshots of a tian2021 flow).
        n_samples: inputs drawn once and reused at every time point.
        X: optional ``(n1, n1)`` input covariance (identity by default).
    Returns:
        ``{"uniformity_wang_isola": (T,), "uniformity_wasserstein": (T,)}``, ready for
        :class:`nocollapse.theory.result.Comparison` ``extras``.
    """
    stack = [np.asarray(W, dtype=float) for W in Ws]
    if not stack:
        raise ConfigError("the trajectory is empty; pass at least one W of shape (n2, n1)")
    values = np.array(
        [list(uniformity_of_linear(W, n_samples, seed, X, t).values()) for W in stack]
    )
    return {key: values[:, i] for i, key in enumerate(KEYS)}


def uniformity_of_modes(
    s: ArrayLike,
    n_samples: int = 512,
    seed: int = 0,
    t: float = 2.0,
) -> dict[str, np.ndarray]:
    """Both measures as a function of the reduced state: eigenvalues ``s_j >= 0`` of ``F``.

    Args:
        s: ``(m,)`` one state or ``(T, m)`` a trajectory of the reduced ODE
            (tian2021's ``s_j``, halvagal2023's ``s_m``).
    Returns:
        ``{"uniformity_wang_isola": (T,), "uniformity_wasserstein": (T,)}`` (``T = 1``
        for a single state).
    """
    states = np.atleast_2d(np.asarray(s, dtype=float))
    if states.ndim != 2 or states.shape[1] < 1:
        raise ConfigError(f"s has shape {np.shape(s)}; expected (m,) or (T, m) eigenvalues")
    if np.any(states < -1e-12):
        raise ConfigError(f"s has a negative eigenvalue {states.min():.3g}; F is PSD, s >= 0")
    check_positive("n_samples", n_samples)
    g = np.random.default_rng(seed).standard_normal((n_samples, states.shape[1]))
    values = np.array(
        [_measures(g * np.sqrt(np.clip(row, 0, None)), t) for row in states]
    )
    return {key: values[:, i] for i, key in enumerate(KEYS)}


def wasserstein_uniformity_of_k_sphere(k: int, m: int) -> float:
    """Closed form: ``sqrt(2 - 2 sqrt(k/m))`` for embeddings uniform on a ``k``-dim great
    sphere of ``R^m`` (``Cov = I_k / k``, ``mu = 0`` in docs/theory.md#wang2022's formula)."""
    if not 1 <= k <= m:
        raise ConfigError(f"k={k} live modes out of m={m}; valid range: 1 <= k <= m")
    return float(np.sqrt(max(2.0 - 2.0 * np.sqrt(k / m), 0.0)))


def wang_isola_uniformity_of_k_sphere(k: int, t: float = 2.0) -> float:
    """Closed form of ``log E exp(-t ||z - z'||^2)`` for ``z, z'`` uniform on ``S^{k-1}``.

    With ``c = z.z'``, ``||z - z'||^2 = 2 - 2c`` and ``E exp(2 t c) =
    Gamma(k/2) (t)^{1 - k/2} I_{k/2-1}(2 t)`` (derived from the density of ``c``,
    ``∝ (1 - c^2)^{(k-3)/2}``), so the value is
    ``log Gamma(k/2) + (1 - k/2) log t + log ive(k/2 - 1, 2t)``; it is the population
    value the sampled :func:`~nocollapse.diagnostics.wang_isola_uniformity` estimates.
    Independent of the ambient dimension: why Wang-Isola barely sees dimensional
    collapse once ``k`` is moderately large.
    """
    if k < 1:
        raise ConfigError(f"k={k} live modes; valid range: k >= 1")
    check_positive("t", t)
    order = k / 2 - 1
    return float(gammaln(k / 2) - order * np.log(t) + _log_bessel_i(order, 2 * t))


def _log_bessel_i(order: float, x: float) -> float:
    """``log I_order(x) - x``; the power series in log space where ``ive`` underflows."""
    scaled = float(ive(order, x))
    if scaled > 1e-250:
        return float(np.log(scaled))
    j = np.arange(int(4 * x) + 200)
    terms = 2 * j * np.log(x / 2) - gammaln(j + 1) - gammaln(order + j + 1)
    return float(order * np.log(x / 2) + logsumexp(terms) - x)
