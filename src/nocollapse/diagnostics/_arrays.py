"""Conversion of numpy arrays and torch tensors to float64 numpy, without importing torch."""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from nocollapse.errors import ConfigError


@runtime_checkable
class TensorLike(Protocol):
    """A torch tensor, as far as the diagnostics need one (torch is not imported here)."""

    def detach(self) -> TensorLike: ...

    def cpu(self) -> TensorLike: ...

    def double(self) -> TensorLike: ...

    def __array__(self) -> np.ndarray: ...


# What every diagnostic accepts: a numpy array (or nested lists), or a torch tensor.
ArrayInput: TypeAlias = ArrayLike | TensorLike


def as_array(x: ArrayInput) -> np.ndarray:
    """Return ``x`` as a float64 numpy array.

    A torch tensor (anything with ``.detach``) is detached, moved to the CPU and
    converted to double first, so torch is never imported here.
    """
    if isinstance(x, TensorLike):
        x = x.detach().cpu().double()
    return np.asarray(x, dtype=np.float64)


def as_embeddings(z: ArrayInput, name: str = "z") -> np.ndarray:
    """Return a batch of embeddings as a float64 array of shape ``(B, d)``."""
    array = as_array(z)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ConfigError(
            f"{name} has shape {array.shape}; expected a 2-D batch of embeddings (B, d) "
            "with B >= 1 and d >= 1 (flatten the features first)"
        )
    return array


def as_square(m: ArrayInput, name: str) -> np.ndarray:
    """Return a square matrix as a float64 array of shape ``(d, d)``."""
    array = as_array(m)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] < 1:
        raise ConfigError(f"{name} has shape {array.shape}; expected a square matrix (d, d)")
    return array


def as_spectrum(values: ArrayInput, name: str = "values") -> np.ndarray:
    """Return a 1-D array of non-negative values (tiny negative round-off is clipped to 0)."""
    array = as_array(values).ravel()
    if array.size == 0:
        raise ConfigError(f"{name} is empty; expected at least one eigen/singular value")
    scale = float(np.max(np.abs(array)))
    if np.any(array < -1e-8 * max(scale, 1.0)):
        raise ConfigError(
            f"{name} has a negative entry {array.min():.3g}; expected eigenvalues of a "
            "positive semi-definite matrix or singular values (>= 0)"
        )
    result: np.ndarray = np.clip(array, 0.0, None)
    return result


def l2_normalize(z: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``z`` (shape ``(B, d)``) divided by their Euclidean norm (zero rows stay zero)."""
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    result: np.ndarray = z / np.maximum(norms, eps)
    return result


def second_moment_eigenvalues(x: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``x^T x / n`` for ``x`` of shape ``(n, d)``: ``(d,)``, descending, >= 0.

    When ``n < d`` they come from the ``(n, n)`` Gram matrix instead (same non-zero
    eigenvalues, padded with zeros), so the cost is ``O(n d min(n, d) + min(n, d)^3)``.
    """
    n, d = x.shape
    small = x.T @ x if d <= n else x @ x.T
    values = np.clip(np.linalg.eigvalsh(small / n)[::-1], 0.0, None)
    return values if d <= n else np.concatenate([values, np.zeros(d - n)])
