"""Label-free quality metrics of a representation, each as its paper defines it.

- :func:`rankme` (Garrido et al. 2023, "RankMe"): ``exp(-sum_k p_k log p_k)`` with
  ``p_k = sigma_k / ||sigma||_1 + eps`` over the **singular values** ``sigma_k`` of the
  ``(N, d)`` embedding matrix (not its covariance eigenvalues), ``eps = 1e-7``.
- :func:`alpha_req` (Agrawal et al. 2022, "alpha-ReQ"): the exponent ``alpha`` of the power
  law ``lambda_i ~ i^(-alpha)`` followed by the eigenvalues of the features' covariance,
  fitted as the authors' code (arnab39/reptrix) fits it: least squares in log-log space
  weighted by ``1/i`` over ranks 11 to 100 (:func:`alpha_req_fit_range`).
- :func:`lidar` (Thilak et al. 2024, "LiDAR"): the smoothed rank (as RankMe, on
  eigenvalues) of the between-sample covariance whitened by the within-sample
  (augmentation) covariance, from ``(n, q, d)`` embeddings: ``n`` samples, ``q``
  augmented views of each. The between-sample covariance of ``q``-view means carries
  ``Sigma_w / q`` of augmentation noise; it is subtracted (``debias``), so a few views
  read what the paper's many views read, and the ridge ``delta`` is relative to the
  mean within-sample variance, so the metric does not move with the embeddings' scale.

All take numpy arrays or torch tensors and compute in float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np

from nocollapse.diagnostics._arrays import ArrayInput, as_array, as_embeddings
from nocollapse.errors import ConfigError

RANKME_EPS = 1e-7  # Garrido et al. 2023, eq. (1)
LIDAR_EPS = 1e-7  # Thilak et al. 2024: the same smoothing of the normalised eigenvalues
# Thilak et al. 2024's ridge on the within-sample covariance (1e-4), here in units of that
# covariance's mean eigenvalue tr(Sigma_w)/d: an absolute ridge made LiDAR follow the
# embeddings' scale (x1, x0.1, x0.01 -> 37.2, 35.2, 24.1 on one case), which weight decay sets
LIDAR_DELTA = 1e-4
# alpha-ReQ's fit range in the authors' code (reptrix get_alpha: eigenvalue indices 10..99)
ALPHA_REQ_RANKS = (11, 100)
# Eigenvalues below this fraction of the largest are numerical zeros (float64 rounding of
# a covariance is ~1e-16 relative): they carry no power law and would dominate the fit.
ALPHA_REQ_FLOOR = 1e-12

__all__ = ["alpha_req", "alpha_req_fit_range", "lidar", "rankme", "singular_values_via_gram",
           "smoothed_rank"]


def smoothed_rank(values: ArrayInput, eps: float) -> float:
    """``exp(-sum p log p)``, ``p = values / sum(values) + eps``; 0 for an all-zero input."""
    v = np.abs(as_array(values).ravel())
    total = float(v.sum())
    if not math.isfinite(total):
        return math.nan
    if total <= 0.0:
        return 0.0
    p = v / total + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def rankme(z: ArrayInput, eps: float = RANKME_EPS) -> float:
    """RankMe of embeddings ``z`` ``(N, d)``: the smoothed rank of their singular values.

    In ``[~1, min(N, d)]``; the embeddings are not centred (the paper's definition).
    """
    matrix = as_embeddings(z, "z")
    if not np.all(np.isfinite(matrix)):
        return math.nan
    return smoothed_rank(singular_values_via_gram(matrix), eps)


def singular_values_via_gram(matrix: np.ndarray) -> np.ndarray:
    """Singular values of ``matrix`` as square roots of its smaller Gram matrix's eigenvalues.

    Several times faster than an SVD for the ``(N, d)`` features of a run (one
    ``min(N, d)``-sized ``eigh``); in float64 each comes out within ~1e-8 of the largest
    singular value, far below what an entropy of their normalised values resolves.
    """
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    values = np.linalg.eigvalsh((gram + gram.T) / 2)[::-1]
    result: np.ndarray = np.sqrt(np.clip(values, 0.0, None))
    return result


def alpha_req_fit_range(n_eigenvalues: int, n_samples: int) -> tuple[int, int]:
    """Ranks ``(first, last)`` (1-based, inclusive) that :func:`alpha_req` fits.

    Ranks 11 to 100, as the authors' code fits them (the head of the spectrum is left
    out, the fit is of its tail), cut at ``min(d, N - 1)``: a covariance of ``N``
    centred samples has at most ``N - 1`` non-zero eigenvalues. Ranks whose eigenvalue is
    below ``ALPHA_REQ_FLOOR`` times the largest are also left out (numerical zeros).
    """
    first, last = ALPHA_REQ_RANKS
    return first, max(0, min(last, n_eigenvalues, n_samples - 1))


def alpha_req(z: ArrayInput) -> float:
    """alpha-ReQ of features ``z`` ``(N, d)``: ``-slope`` of ``log lambda_i`` on ``log i``.

    ``lambda_i`` are the eigenvalues of the (centred) covariance, descending; the line is
    fitted by least squares weighted by ``1/i`` over the ranks of
    :func:`alpha_req_fit_range` (11 to 100), as Agrawal et al.'s code fits it. A white
    spectrum gives 0, a decay ``i^-a`` gives ``a``. ``nan`` with fewer than 3 usable
    ranks in that range (``d`` or ``N`` below 14, or a collapsed batch).
    """
    matrix = as_embeddings(z, "z")
    if matrix.shape[0] < 4 or not np.all(np.isfinite(matrix)):
        return math.nan
    centred = matrix - matrix.mean(axis=0)
    # covariance eigenvalues = squared singular values of the centred matrix / (N - 1)
    eigenvalues = singular_values_via_gram(centred) ** 2 / (matrix.shape[0] - 1)
    first, last = alpha_req_fit_range(len(eigenvalues), matrix.shape[0])
    if last - first < 2 or not eigenvalues[0] > 0:
        return math.nan
    ranks = np.arange(first, last + 1, dtype=float)
    values = eigenvalues[first - 1:last]
    keep = values > ALPHA_REQ_FLOOR * float(eigenvalues[0])
    if int(np.sum(keep)) < 3:
        return math.nan
    # np.polyfit weights multiply the residuals: sqrt(1/i) gives squared residuals 1/i
    slope, _ = np.polyfit(np.log(ranks[keep]), np.log(values[keep]), 1,
                          w=np.sqrt(1.0 / ranks[keep]))
    return float(-slope)


def lidar(views: ArrayInput, delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS,
          *, debias: bool = True) -> float:
    """LiDAR of embeddings ``views`` ``(n, q, d)``: ``n`` samples, ``q >= 2`` views each.

    ``Sigma_b`` = covariance of the ``n`` per-sample means; ``Sigma_w`` = mean covariance
    of the views around their sample's mean, plus ``delta tr(Sigma_w)/d I``; LiDAR is the
    smoothed rank (``eps``) of the eigenvalues of ``Sigma_w^(-1/2) Sigma_b Sigma_w^(-1/2)``.

    ``debias``: a mean of ``q`` views is its sample's mean plus noise of covariance
    ``Sigma_w / q``, so the covariance of the means estimates ``Sigma_b + Sigma_w / q``;
    the (unbiased) within-sample estimate over ``q`` is subtracted and the whitened
    matrix's negative eigenvalues (sampling noise) are read as 0. Without it, LiDAR at
    ``q = 4`` read 39.3 where the population value is 24.6 (``q = 50``: 24.9).
    ``debias=False`` is the paper's plug-in estimate.
    """
    e = as_array(views)
    if e.ndim != 3 or e.shape[0] < 2 or e.shape[1] < 2:
        raise ConfigError(f"lidar needs embeddings of shape (n >= 2 samples, q >= 2 views, d); "
                          f"got {e.shape}")
    if not np.all(np.isfinite(e)):
        return math.nan
    n, q, d = e.shape
    means = e.mean(axis=1)
    centred_means = means - means.mean(axis=0)
    between = centred_means.T @ centred_means / (n - 1)
    spread = (e - means[:, None, :]).reshape(n * q, d)
    noise = spread.T @ spread / (n * (q - 1))
    if debias:
        between = between - noise / q
    ridge = delta * float(np.trace(noise)) / d
    if not ridge > 0:  # the views of each sample are identical: nothing to whiten by
        return 0.0 if not np.any(between) else math.nan
    w_values, w_vectors = np.linalg.eigh(noise + ridge * np.eye(d))
    inverse_root = (w_vectors / np.sqrt(w_values)) @ w_vectors.T
    whitened = inverse_root @ between @ inverse_root
    values = np.linalg.eigvalsh((whitened + whitened.T) / 2)
    return smoothed_rank(np.clip(values, 0.0, None), eps)
