"""Scalar summaries of a spectrum: effective rank, participation ratio, count above a threshold.

Each takes a 1-D array of non-negative eigenvalues or singular values (numpy or torch).
"""

from __future__ import annotations

import numpy as np

from nocollapse.diagnostics._arrays import ArrayInput, as_spectrum
from nocollapse.errors import check_in_range

_TINY = 1e-300


def effective_rank(values: ArrayInput) -> float:
    """``exp(H(p))`` with ``p = values / sum(values)`` (Roy & Vetterli 2007), in ``[1, n]``.

    RankMe (Garrido et al. 2023) is this on singular values plus its smoothing epsilon:
    :func:`nocollapse.diagnostics.label_free.rankme`.
    An all-zero spectrum (complete collapse) has effective rank 0.
    """
    s = as_spectrum(values)
    total = s.sum()
    if total <= _TINY:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def participation_ratio(values: ArrayInput) -> float:
    """``(sum s)^2 / sum s^2`` of eigenvalues ``s``; 0 if all zero (docs/theory.md#diagnostics)."""
    s = as_spectrum(values)
    squares = float(np.sum(s**2))
    return float(s.sum() ** 2 / squares) if squares > _TINY else 0.0


def dims_above(values: ArrayInput, relative_threshold: float = 1e-2) -> int:
    """Number of values above ``relative_threshold * max(values)``; 0 if all are zero."""
    check_in_range("relative_threshold", relative_threshold, 0.0, 1.0)
    s = as_spectrum(values)
    top = float(s.max())
    if top <= _TINY:
        return 0
    return int(np.sum(s > relative_threshold * top))
