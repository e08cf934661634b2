"""Collapse diagnostics of a batch of embeddings (docs/theory.md#diagnostics).

Every function takes a batch ``z`` of shape ``(B, d)`` (numpy array or torch
tensor) and computes in float64.
"""

from __future__ import annotations

import numpy as np

from nocollapse.diagnostics._arrays import (
    ArrayInput,
    as_array,
    as_embeddings,
    l2_normalize,
    second_moment_eigenvalues,
)
from nocollapse.errors import ConfigError


def embedding_std(z: ArrayInput) -> float:
    """Mean over dimensions of the std (over the batch) of the l2-normalised embeddings.

    ``1/sqrt(d)`` for isotropic embeddings, 0 at complete collapse (docs/theory.md#diagnostics;
    lightly's ``std_of_l2_normalized``). ``z``: ``(B, d)``.
    """
    normalized = l2_normalize(as_embeddings(z))
    return float(np.mean(np.std(normalized, axis=0)))


def collapse_level(z: ArrayInput) -> float:
    """``max(0, 1 - sqrt(d) * embedding_std(z))``: 0 healthy, 1 complete collapse.

    ``z``: ``(B, d)``.
    """
    array = as_embeddings(z)
    return float(max(0.0, 1.0 - np.sqrt(array.shape[1]) * embedding_std(array)))


def correlation(z: ArrayInput, centered: bool = False) -> np.ndarray:
    """The ``(d, d)`` embedding correlation ``z^T z / B`` (uncentred, the ``F`` of tian2021),
    or the covariance when ``centered``. ``z``: ``(B, d)``."""
    array = as_embeddings(z)
    if centered:
        array = array - array.mean(axis=0, keepdims=True)
    result: np.ndarray = array.T @ array / array.shape[0]
    return result


def correlation_eigenvalues(z: ArrayInput, centered: bool = False) -> np.ndarray:
    """Eigenvalues of :func:`correlation`, shape ``(d,)``, descending, clipped at 0.

    Computed from the ``(B, B)`` Gram matrix when ``B < d`` (same non-zero spectrum).
    """
    array = as_embeddings(z)
    if centered:
        array = array - array.mean(axis=0, keepdims=True)
    return second_moment_eigenvalues(array)


def singular_values(z: ArrayInput) -> np.ndarray:
    """Singular values of the batch ``z`` (``(B, d)``), shape ``(min(B, d),)``, descending."""
    return np.linalg.svd(as_embeddings(z), compute_uv=False)


def view_alignment(z1: ArrayInput, z2: ArrayInput) -> float:
    """Mean squared distance between l2-normalised paired embeddings, in ``[0, 4]``.

    Wang & Isola's alignment (``alpha = 2``): 0 when the two views map to the same
    direction. ``z1, z2``: ``(B, d)`` with rows paired.
    """
    a, b = as_embeddings(z1, "z1"), as_embeddings(z2, "z2")
    if a.shape != b.shape:
        raise ConfigError(f"z1 {a.shape} and z2 {b.shape} must have the same shape (paired views)")
    diff = l2_normalize(a) - l2_normalize(b)
    return float(np.mean(np.sum(diff**2, axis=1)))


def embeddings_from_linear(
    W: ArrayInput,
    n_samples: int,
    rng: np.random.Generator | int | None = None,
    X: ArrayInput | None = None,
) -> np.ndarray:
    """Samples ``z = W x`` of a linear network, ``x ~ N(0, X)`` (``X = I`` by default).

    This is how the theory engine's ``W`` (shape ``(n2, n1)``) is diagnosed with the
    same functions as a trained network. Returns ``(n_samples, n2)``.
    """
    W = as_array(W)
    if W.ndim != 2:
        raise ConfigError(f"W has shape {W.shape}; expected a matrix (n2, n1)")
    if n_samples < 2:
        raise ConfigError(f"n_samples={n_samples} must be at least 2")
    rng = np.random.default_rng(rng)
    x = rng.standard_normal((n_samples, W.shape[1]))
    if X is not None:
        cov = as_array(X)
        if cov.shape != (W.shape[1], W.shape[1]):
            raise ConfigError(f"X has shape {cov.shape}; expected ({W.shape[1]}, {W.shape[1]})")
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)
        x = x @ (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    result: np.ndarray = x @ W.T
    return result


def linear_correlation(W: ArrayInput, X: ArrayInput | None = None) -> np.ndarray:
    """Exact ``F = W X W^T`` of a linear network (``W`` ``(n2, n1)``, ``X`` ``(n1, n1)``,
    identity by default): the population version of :func:`correlation`. Returns ``(n2, n2)``."""
    W = as_array(W)
    if W.ndim != 2:
        raise ConfigError(f"W has shape {W.shape}; expected a matrix (n2, n1)")
    if X is None:
        result: np.ndarray = W @ W.T
        return result
    cov = as_array(X)
    if cov.shape != (W.shape[1], W.shape[1]):
        raise ConfigError(f"X has shape {cov.shape}; expected ({W.shape[1]}, {W.shape[1]})")
    result = W @ cov @ W.T
    return result
