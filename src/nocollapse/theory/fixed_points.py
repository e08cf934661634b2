"""Fixed points of an ODE right-hand side: root finding, Jacobian, stability class.

Shared by the theory models; ``f`` maps a state ``(n,)`` to its time derivative ``(n,)``
(an autonomous right-hand side, e.g. ``lambda y: rhs(0.0, y)`` of a ``solve_ivp`` one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import root

Rhs = Callable[[np.ndarray], np.ndarray]


def jacobian(f: Rhs, y: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian ``J[i, k] = d f_i / d y_k`` at ``y``, shape ``(n, n)``."""
    y = np.asarray(y, dtype=float)
    cols = []
    for k in range(y.size):
        step = np.zeros_like(y)
        step[k] = h * max(1.0, abs(y[k]))
        cols.append((np.asarray(f(y + step)) - np.asarray(f(y - step))) / (2 * step[k]))
    return np.stack(cols, axis=1)


def classify(J: np.ndarray, tol: float = 1e-8) -> str:
    """``"stable"`` (all Re eigenvalues < -tol), ``"unstable"`` (all > tol), ``"saddle"``
    (both signs) or ``"marginal"`` (some within ``tol`` of zero, none of the other sign)."""
    real = np.linalg.eigvals(np.atleast_2d(J)).real
    neg, pos = np.any(real < -tol), np.any(real > tol)
    if neg and pos:
        return "saddle"
    if np.all(real < -tol):
        return "stable"
    if np.all(real > tol):
        return "unstable"
    return "marginal"


@dataclass
class FixedPoint:
    """A root of ``f``: ``y`` ``(n,)``, its Jacobian ``(n, n)`` and stability class."""

    y: np.ndarray
    jacobian: np.ndarray
    kind: str
    residual: float


def find_fixed_point(f: Rhs, guess: np.ndarray, tol: float = 1e-12) -> FixedPoint:
    """Solve ``f(y) = 0`` from ``guess`` (scipy ``root``, hybr) and classify the root.

    Raises ``RuntimeError`` when the solver does not converge (try another guess).
    """
    sol = root(lambda y: np.asarray(f(y), dtype=float), np.asarray(guess, dtype=float),
               method="hybr", tol=tol)
    residual = float(np.max(np.abs(f(sol.x))))
    if not sol.success or residual > 1e-8:
        raise RuntimeError(f"no fixed point found from {guess}: {sol.message}")
    J = jacobian(f, sol.x)
    return FixedPoint(sol.x, J, classify(J), residual)
