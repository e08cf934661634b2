"""Predictor spectrum, eigen-alignment of ``F`` and ``Wp`` (docs/theory.md#tian2021-alignment).

``F`` is the ``(d, d)`` embedding correlation (or ``W X W^T`` of a linear network),
``Wp`` the ``(d, d)`` linear predictor. tian2021 Theorem 3: under the symmetrised
flow ``[F, Wp] -> 0``, so the eigenvectors of ``Wp`` align with those of ``F``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from nocollapse.diagnostics._arrays import ArrayInput, as_square
from nocollapse.errors import ConfigError

_TINY = 1e-300


def _pair(F: ArrayInput, Wp: ArrayInput) -> tuple[np.ndarray, np.ndarray]:
    f, w = as_square(F, "F"), as_square(Wp, "Wp")
    if f.shape != w.shape:
        raise ConfigError(f"F {f.shape} and Wp {w.shape} must have the same shape (d, d)")
    return f, w


def symmetric_part(Wp: ArrayInput) -> np.ndarray:
    """``(Wp + Wp^T) / 2``, shape ``(d, d)``."""
    w = as_square(Wp, "Wp")
    result: np.ndarray = (w + w.T) / 2
    return result


def predictor_spectrum(Wp: ArrayInput) -> np.ndarray:
    """Eigenvalues of the symmetric part of ``Wp`` (tian2021's ``p_j``), ``(d,)``, descending."""
    return np.linalg.eigvalsh(symmetric_part(Wp))[::-1]


def asymmetry(Wp: ArrayInput) -> float:
    """``||Wp - Wp^T||_F / ||Wp||_F``: 0 for a symmetric predictor, up to 2 (0 if ``Wp = 0``)."""
    w = as_square(Wp, "Wp")
    norm = np.linalg.norm(w)
    return float(np.linalg.norm(w - w.T) / norm) if norm > _TINY else 0.0


def commutator_norm(F: ArrayInput, Wp: ArrayInput) -> float:
    """``||F Wp - Wp F||_F / (||F||_F ||Wp||_F)``: 0 when ``F`` and ``Wp`` commute (Theorem 3)."""
    f, w = _pair(F, Wp)
    scale = np.linalg.norm(f) * np.linalg.norm(w)
    return float(np.linalg.norm(f @ w - w @ f) / scale) if scale > _TINY else 0.0


def alignment_matrix(F: ArrayInput, Wp: ArrayInput) -> np.ndarray:
    """``|u_i^T v_j|``, shape ``(d, d)``: ``u_i`` eigenvectors of ``F`` (rows, eigenvalues
    descending), ``v_j`` of the symmetric part of ``Wp`` (columns, descending)."""
    f, w = _pair(F, Wp)
    _, u = np.linalg.eigh((f + f.T) / 2)
    _, v = np.linalg.eigh(symmetric_part(w))
    result: np.ndarray = np.abs(u[:, ::-1].T @ v[:, ::-1])
    return result


def eigen_alignment(F: ArrayInput, Wp: ArrayInput) -> float:
    """Diagonal mass of :func:`alignment_matrix` after the best one-to-one matching, / d.

    1 when ``F`` and ``Wp`` share eigenvectors, about ``sqrt(2 / (pi d))`` for random
    bases. The matching (``scipy.optimize.linear_sum_assignment``) makes it
    independent of how the two spectra are ordered. With repeated eigenvalues the
    eigenvectors are not unique and the figure may read below 1 even for commuting
    matrices: use :func:`commutator_norm` there.
    """
    m = alignment_matrix(F, Wp)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return float(m[rows, cols].sum() / m.shape[0])
