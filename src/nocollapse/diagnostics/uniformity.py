"""Uniformity of l2-normalised embeddings (docs/theory.md#wang2022).

Two measures, both "lower is more uniform":

* Wang & Isola: ``log mean_{i<j} exp(-t ||z_i - z_j||^2)``, ``t = 2``; barely sees
  dimensional collapse.
* Wasserstein uniformity (Fang et al., ICLR 2024): the 2-Wasserstein distance
  between the Gaussian fit ``N(mu, Cov)`` of the normalised embeddings and
  ``N(0, I/m)``; sensitive to dimensional collapse.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from nocollapse.diagnostics._arrays import (
    ArrayInput,
    as_embeddings,
    l2_normalize,
    second_moment_eigenvalues,
)
from nocollapse.errors import ConfigError, check_positive


def _subsample(z: np.ndarray, max_samples: int | None) -> np.ndarray:
    # Evenly spaced rows: deterministic, and batches are already shuffled.
    if max_samples is None or z.shape[0] <= max_samples:
        return z
    index = np.linspace(0, z.shape[0] - 1, max_samples).round().astype(int)
    result: np.ndarray = z[index]
    return result


def wang_isola_uniformity(z: ArrayInput, t: float = 2.0, max_samples: int | None = None) -> float:
    """``log mean_{i<j} exp(-t ||z_i - z_j||^2)`` of the l2-normalised rows of ``z``.

    ``z``: ``(B, d)`` with ``B >= 2``. Costs ``O(B^2 d)``: ``max_samples`` keeps at
    most that many evenly spaced rows. Lies in ``[-4 t, 0]``; 0 at complete collapse.
    """
    check_positive("t", t)
    normalized = l2_normalize(_subsample(as_embeddings(z), max_samples))
    n = normalized.shape[0]
    if n < 2:
        raise ConfigError(f"uniformity needs at least 2 embeddings, got B={n}")
    gram = normalized @ normalized.T
    sq_norms = np.diag(gram)
    upper = np.triu_indices(n, k=1)
    sq_dist = np.clip(sq_norms[upper[0]] + sq_norms[upper[1]] - 2 * gram[upper], 0.0, None)
    return float(logsumexp(-t * sq_dist) - np.log(sq_dist.size))


def wasserstein_uniformity(z: ArrayInput) -> float:
    """2-Wasserstein distance between ``N(mu, Cov)`` of the normalised ``z`` and ``N(0, I/m)``.

    Closed form (docs/theory.md#wang2022): ``W2^2 = ||mu||^2 + 1 + tr(Cov) -
    (2/sqrt(m)) tr(Cov^{1/2})``, ``tr Cov^{1/2}`` from ``eigvalsh``. Returns ``W2`` (not squared):
    0 for embeddings uniform on the sphere, ``sqrt(2 - 2 sqrt(k/m))`` when they are
    uniform on the unit sphere of a ``k``-dimensional subspace, ``sqrt(2)`` at complete
    collapse onto one point. ``z``: ``(B, m)``; costs ``O(B m min(B, m) + min(B, m)^3)``.
    """
    normalized = l2_normalize(as_embeddings(z))
    m = normalized.shape[1]
    mu = normalized.mean(axis=0)
    cov_eigenvalues = second_moment_eigenvalues(normalized - mu)
    root_trace = np.sum(np.sqrt(cov_eigenvalues))
    w2_squared = mu @ mu + 1.0 + cov_eigenvalues.sum() - 2.0 / np.sqrt(m) * root_trace
    return float(np.sqrt(max(w2_squared, 0.0)))
