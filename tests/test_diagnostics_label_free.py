"""Label-free metrics (RankMe, alpha-ReQ, LiDAR) against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nocollapse import diagnostics as dg
from nocollapse.diagnostics.label_free import (
    LIDAR_DELTA,
    RANKME_EPS,
    alpha_req_fit_range,
    smoothed_rank,
)

# float64 throughout: the SVD/eigh of these well-conditioned (cond < 1e3) matrices agree to
# ~1e-13 relative (eps 2.2e-16 times the condition number and the size), so 1e-9 has room.
REL = 1e-9


def _torch_rankme(z: np.ndarray, eps: float = RANKME_EPS) -> float:
    """RankMe written from the paper with torch: svdvals, l1-normalise, + eps, exp entropy."""
    s = torch.linalg.svdvals(torch.from_numpy(z))
    p = s / s.abs().sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def test_rankme_matches_a_torch_computation_and_uses_singular_values() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 24)) * np.linspace(0.1, 3.0, 24)
    assert dg.rankme(z) == pytest.approx(_torch_rankme(z), rel=REL)
    # singular values, not covariance eigenvalues: the two give different numbers here
    eigen = np.linalg.eigvalsh(z.T @ z)
    assert abs(dg.rankme(z) - smoothed_rank(eigen, RANKME_EPS)) > 1.0
    # torch input, same answer
    assert dg.rankme(torch.from_numpy(z)) == pytest.approx(dg.rankme(z), rel=REL)


def test_rankme_of_equal_singular_values_is_their_count() -> None:
    q = np.linalg.qr(np.random.default_rng(1).standard_normal((50, 7)))[0]  # 7 equal sv
    # eps = 1e-7 on 7 values moves exp(H) by ~7 * eps * |log eps| ~ 1e-5 relative
    assert dg.rankme(q) == pytest.approx(7.0, rel=2e-5)
    assert dg.rankme(np.zeros((10, 4))) == 0.0


def test_alpha_req_recovers_a_constructed_power_law() -> None:
    rng = np.random.default_rng(2)
    n, d, alpha = 400, 32, 1.3
    # Z = U diag(sqrt((n - 1) i^-alpha)) V^T with U's columns orthonormal and orthogonal to
    # the ones vector: Z is centred and its covariance eigenvalues are exactly i^-alpha
    basis = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, d))]))[0]
    u = basis[:, 1:]
    v = np.linalg.qr(rng.standard_normal((d, d)))[0]
    lambdas = np.arange(1, d + 1, dtype=float) ** -alpha
    z = u @ np.diag(np.sqrt((n - 1) * lambdas)) @ v.T
    assert dg.alpha_req(z) == pytest.approx(alpha, rel=1e-9)
    assert alpha_req_fit_range(d, n) == (1, d)
    white = u @ v.T * math.sqrt(n - 1)
    assert abs(dg.alpha_req(white)) < 1e-9
    assert math.isnan(dg.alpha_req(np.ones((20, 5))))


def _loop_lidar(views: np.ndarray, delta: float = LIDAR_DELTA) -> float:
    """LiDAR from the paper's sums, sample by sample, with scipy's matrix square root."""
    from scipy.linalg import sqrtm

    n, q, d = views.shape
    mu = [views[i].mean(axis=0) for i in range(n)]
    grand = sum(mu) / n
    between = sum(np.outer(m - grand, m - grand) for m in mu) / (n - 1)
    within = sum(np.outer(views[i, j] - mu[i], views[i, j] - mu[i])
                 for i in range(n) for j in range(q)) / (n * (q - 1)) + delta * np.eye(d)
    root = np.real(sqrtm(within))
    inverse = np.linalg.inv(root)
    values = np.linalg.eigvals(inverse @ between @ inverse).real
    p = np.abs(values) / np.abs(values).sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def test_lidar_matches_a_loop_over_samples() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 1, 6)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    views = centres + 0.3 * rng.standard_normal((40, 5, 6))
    # sqrtm and inv vs eigh: both backward stable on a matrix of condition < 1e3
    assert dg.lidar(views) == pytest.approx(_loop_lidar(views), rel=1e-8)


def test_lidar_counts_directions_that_separate_samples() -> None:
    rng = np.random.default_rng(4)
    # samples differ along 2 of 5 directions; views vary along all 5
    centres = np.zeros((200, 1, 5))
    centres[:, 0, :2] = rng.standard_normal((200, 2)) * 10
    views = centres + rng.standard_normal((200, 4, 5))
    assert 1.8 < dg.lidar(views) < 2.6
    with pytest.raises(Exception, match="lidar needs"):
        dg.lidar(np.zeros((3, 1, 4)))
