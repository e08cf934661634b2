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


def _centred_with_spectrum(n: int, lambdas: np.ndarray, seed: int) -> np.ndarray:
    """``(n, d)`` centred features whose covariance eigenvalues are exactly ``lambdas``."""
    rng = np.random.default_rng(seed)
    d = len(lambdas)
    # Z = U diag(sqrt((n - 1) lambda)) V^T with U's columns orthonormal and orthogonal to
    # the ones vector: Z is centred and its covariance eigenvalues are exactly lambda
    basis = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, d))]))[0]
    v = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return basis[:, 1:] @ np.diag(np.sqrt((n - 1) * lambdas)) @ v.T


def _reptrix_alpha(lambdas: np.ndarray) -> float:
    """The authors' fit from its definition: normal equations of log lambda_i on
    [-log i, 1] with weights 1/i over ranks 11..100 (reptrix get_alpha's indices 10..99)."""
    ranks = np.arange(11, 101, dtype=float)
    design = np.column_stack([-np.log(ranks), np.ones_like(ranks)])
    weights = 1.0 / ranks
    y = np.log(lambdas[10:100])
    solution = np.linalg.solve(design.T @ (design * weights[:, None]), design.T @ (weights * y))
    return float(solution[0])


def test_alpha_req_recovers_a_constructed_power_law() -> None:
    n, d, alpha = 400, 128, 1.3
    lambdas = np.arange(1, d + 1, dtype=float) ** -alpha
    assert dg.alpha_req(_centred_with_spectrum(n, lambdas, 2)) == pytest.approx(alpha, rel=1e-9)
    assert alpha_req_fit_range(d, n) == (11, 100)
    assert alpha_req_fit_range(64, n) == (11, 64)
    assert alpha_req_fit_range(512, 50) == (11, 49)  # N - 1 non-zero eigenvalues
    white = _centred_with_spectrum(n, np.ones(d), 3)
    assert abs(dg.alpha_req(white)) < 1e-9
    assert math.isnan(dg.alpha_req(np.ones((20, 5))))
    assert math.isnan(dg.alpha_req(np.random.default_rng(0).standard_normal((50, 12))))


def test_alpha_req_fits_the_tail_with_the_authors_weights() -> None:
    d = 160
    ranks = np.arange(1, d + 1, dtype=float)
    # a flat head of 10 modes over an i^-1.5 tail that bends to i^-0.7 past rank 40: an
    # unweighted fit over every rank (the old formula) reads the head and the far tail
    lambdas = np.where(ranks <= 40, ranks**-1.5, 40.0**-0.8 * ranks**-0.7)
    lambdas[:10] = lambdas[10] * 4.0
    z = _centred_with_spectrum(600, lambdas, 4)
    expected = _reptrix_alpha(lambdas)
    assert dg.alpha_req(z) == pytest.approx(expected, rel=1e-9)
    unweighted = -np.polyfit(np.log(ranks[10:100]), np.log(lambdas[10:100]), 1)[0]
    every_rank = -np.polyfit(np.log(ranks), np.log(lambdas), 1)[0]
    # the weights and the range each move the answer far beyond the fit's rounding
    assert abs(expected - unweighted) > 0.02 and abs(expected - every_rank) > 0.1


@pytest.mark.numerical
def test_alpha_req_on_samples_reads_the_true_exponent() -> None:
    """N = 1024 Gaussian samples, d = 512, covariance eigenvalues i^-alpha: the authors'
    fit reads 0.97 and 2.01 for alpha 1 and 2 (the old fit over every rank 1.31, 2.24) and
    0.19 for a white spectrum (old 0.72: the sample spectrum's Marchenko-Pastur spread)."""
    rng = np.random.default_rng(5)
    n, d = 1024, 512
    ranks = np.arange(1, d + 1, dtype=float)
    for alpha, low, high in ((1.0, 0.92, 1.05), (2.0, 1.95, 2.08), (0.0, 0.0, 0.3)):
        z = rng.standard_normal((n, d)) * np.sqrt(ranks**-alpha)
        assert low < dg.alpha_req(z) < high, alpha


def _loop_lidar(views: np.ndarray, delta: float = LIDAR_DELTA, debias: bool = True) -> float:
    """LiDAR from the paper's sums, sample by sample, with scipy's matrix square root; the
    ridge in units of tr(Sigma_w)/d and, with ``debias``, Sigma_w / q taken off Sigma_b."""
    from scipy.linalg import sqrtm

    n, q, d = views.shape
    mu = [views[i].mean(axis=0) for i in range(n)]
    grand = sum(mu) / n
    between = sum(np.outer(m - grand, m - grand) for m in mu) / (n - 1)
    within = sum(np.outer(views[i, j] - mu[i], views[i, j] - mu[i])
                 for i in range(n) for j in range(q)) / (n * (q - 1))
    if debias:
        between = between - within / q
    root = np.real(sqrtm(within + delta * np.trace(within) / d * np.eye(d)))
    inverse = np.linalg.inv(root)
    values = np.clip(np.linalg.eigvals(inverse @ between @ inverse).real, 0.0, None)
    p = values / values.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def test_lidar_matches_a_loop_over_samples() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 1, 6)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    views = centres + 0.3 * rng.standard_normal((40, 5, 6))
    # sqrtm and inv vs eigh: both backward stable on a matrix of condition < 1e3
    assert dg.lidar(views) == pytest.approx(_loop_lidar(views), rel=1e-8)
    assert dg.lidar(views, debias=False) == pytest.approx(_loop_lidar(views, debias=False),
                                                          rel=1e-8)


def _lidar_case(n: int, q: int, seed: int) -> tuple[np.ndarray, float]:
    """Views with between-sample spectrum i^-1 and within-sample variance 0.5 (d = 32), and
    the population LiDAR of that case (eigenvalues of Sigma_w^-1/2 Sigma_b Sigma_w^-1/2)."""
    d = 32
    between = np.arange(1, d + 1, dtype=float) ** -1.0
    rng = np.random.default_rng(seed)
    views = (rng.standard_normal((n, 1, d)) * np.sqrt(between)
             + rng.standard_normal((n, q, d)) * math.sqrt(0.5))
    population = smoothed_rank(between / (0.5 * (1 + LIDAR_DELTA)), 1e-7)
    return views, population


@pytest.mark.numerical
def test_lidar_with_few_views_reads_the_population_value() -> None:
    """q = 4 views: the plug-in estimate reads Sigma_b + Sigma_w / 4 (+50% here, 26.8 against
    17.7); debiased it reads 16.8-17.2 over 4 seeds at n = 2048 (the entropy of a sample
    spectrum sits a few % low at finite n), so a 10% band that rejects the plug-in."""
    views, population = _lidar_case(2048, 4, 6)
    assert dg.lidar(views) == pytest.approx(population, rel=0.1)
    assert dg.lidar(views, debias=False) > 1.3 * population


def test_lidar_does_not_move_with_the_embeddings_scale() -> None:
    views, _ = _lidar_case(256, 4, 7)
    reference = dg.lidar(views)
    for scale in (10.0, 0.1, 0.01, 1e-4):
        # the ridge scales with Sigma_w: every matrix scales by scale^2, eigh is relative
        assert dg.lidar(scale * views) == pytest.approx(reference, rel=1e-8), scale
    assert dg.lidar(np.zeros((8, 3, 4))) == 0.0


def test_lidar_counts_directions_that_separate_samples() -> None:
    rng = np.random.default_rng(4)
    # samples differ along 2 of 5 directions; views vary along all 5
    centres = np.zeros((200, 1, 5))
    centres[:, 0, :2] = rng.standard_normal((200, 2)) * 10
    views = centres + rng.standard_normal((200, 4, 5))
    assert 1.8 < dg.lidar(views) < 2.6
    with pytest.raises(Exception, match="lidar needs"):
        dg.lidar(np.zeros((3, 1, 4)))
