"""The per-mode quartic landscape (docs/theory.md#ziyin2023) against the full-matrix loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nocollapse.errors import ConfigError
from nocollapse.theory.landscape import (
    QuarticLandscape,
    gradient_descent,
    learned_w2_grid,
    make_landscape,
    rank_grid,
    spectral_loss,
    spectral_loss_gradient,
)

SPECTRUM = [1.0, 0.7, 0.5, 0.35, 0.25, 0.15]


def test_full_matrix_loss_reduces_to_sum_of_per_mode_quartics() -> None:
    rng = np.random.default_rng(0)
    land = make_landscape(SPECTRUM, 0.3, 0.4)
    n = land.n_modes
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    outputs = np.linalg.qr(rng.standard_normal((n, n)))[0]
    w = rng.standard_normal(n)
    W = outputs @ np.diag(w) @ basis.T
    A, Sigma = basis @ np.diag(land.a) @ basis.T, basis @ np.diag(land.sigma) @ basis.T
    per_mode = np.sum(land.alpha * w**2 + land.beta * w**4)
    assert spectral_loss(W, A, Sigma, land.gamma) == pytest.approx(per_mode, rel=1e-10)


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    A = np.diag([1.0, 0.5, 0.2])
    Sigma = np.diag([0.1, 0.3, 0.2])
    W = rng.standard_normal((2, 3))
    direction = rng.standard_normal(W.shape)
    h = 1e-6
    numeric = (spectral_loss(W + h * direction, A, Sigma, 0.3)
               - spectral_loss(W - h * direction, A, Sigma, 0.3)) / (2 * h)
    analytic = np.sum(spectral_loss_gradient(W, A, Sigma, 0.3) * direction)
    assert analytic == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize(("gamma", "aug"), [(0.6, 0.2), (0.45, 0.05), (1.1, 0.5)])
def test_gradient_descent_learns_exactly_the_modes_with_negative_alpha(
    gamma: float, aug: float
) -> None:
    land = make_landscape(SPECTRUM, aug, gamma)
    assert 0 < land.learned().sum() < land.n_modes  # both kinds of mode present
    result = gradient_descent(land, seed=2)
    predicted = land.learned_w2()
    learned = land.alpha < 0
    np.testing.assert_allclose(result.mode_w2[learned], predicted[learned], rtol=0.01)
    assert np.all(result.mode_w2[~learned] < 1e-6)
    np.testing.assert_allclose(
        -land.alpha[learned] / (2 * land.beta[learned]), predicted[learned], rtol=1e-12
    )
    assert result.losses[-1] == pytest.approx(land.minimum_value(), rel=1e-6)
    singular = np.linalg.svd(result.W, compute_uv=False)
    np.testing.assert_allclose(singular, land.singular_values(), atol=1e-3)


def test_narrow_encoder_keeps_the_deepest_modes() -> None:
    land = make_landscape(SPECTRUM, 0.2, 0.4)
    result = gradient_descent(land, out_dim=2, seed=3)
    assert land.learned_rank(2) == 2 < land.learned_rank()
    np.testing.assert_allclose(result.mode_w2, land.learned_w2(2), rtol=0.01, atol=1e-6)


def test_learned_rank_falls_as_gamma_grows() -> None:
    ranks = [make_landscape(SPECTRUM, 0.1, g).learned_rank() for g in np.linspace(0, 2.2, 12)]
    assert ranks[0] == len(SPECTRUM) and ranks[-1] == 0
    assert all(b <= a for a, b in itertools.pairwise(ranks))
    assert len(set(ranks)) > 3


def test_learned_rank_falls_as_augmentation_grows_when_views_keep_the_data_variance() -> None:
    augs = np.linspace(0, 0.15, 7)
    marginal = [make_landscape(SPECTRUM, s, 0.2, augmentation_model="marginal").learned_rank()
                for s in augs]
    assert marginal[0] > marginal[-1]
    assert all(b <= a for a, b in itertools.pairwise(marginal))
    np.testing.assert_array_equal(rank_grid(SPECTRUM, [0.2], augs)[0], marginal)
    # Additive augmentation leaves alpha (the rank) alone and only shrinks w^2.
    additive = [make_landscape(SPECTRUM, s, 0.2) for s in augs]
    assert len({land.learned_rank() for land in additive}) == 1
    assert np.all(np.diff([land.learned_w2()[0] for land in additive]) < 0)


def test_marginal_model_also_checked_by_gradient_descent() -> None:
    land = make_landscape(SPECTRUM, 0.12, 0.2, augmentation_model="marginal")
    result = gradient_descent(land, seed=4)
    learned = land.learned()
    np.testing.assert_allclose(result.mode_w2[learned], land.learned_w2()[learned], rtol=0.01)
    assert np.all(result.mode_w2[~learned] < 1e-6)


def test_critical_points_and_hessian_signature() -> None:
    land = make_landscape([1.0, 0.1], 0.0, 0.5)  # alpha = (-1.5, 0.3)
    points = land.critical_points()
    by_mode = {i: [p for p in points if p.mode == i] for i in (0, 1)}
    assert [p.kind for p in by_mode[0]] == ["max", "min", "min"]
    assert [p.kind for p in by_mode[1]] == ["min"]
    for point in points:  # each is stationary and its curvature matches finite differences
        alpha, beta, h = land.alpha[point.mode], land.beta[point.mode], 1e-4
        loss = lambda w, a=alpha, b=beta: a * w**2 + b * w**4  # noqa: E731
        assert abs(2 * alpha * point.w + 4 * beta * point.w**3) < 1e-12
        second = (loss(point.w + h) - 2 * loss(point.w) + loss(point.w - h)) / h**2
        assert second == pytest.approx(point.curvature, rel=1e-5)
    degenerate = make_landscape([0.25], 0.0, 0.5).critical_points()
    assert [p.kind for p in degenerate] == ["degenerate min"]


def test_every_mode_collapses_when_gamma_exceeds_twice_the_top_variance() -> None:
    land = make_landscape(SPECTRUM, 0.1, 2.5)
    assert land.learned_rank() == 0 and land.minimum_value() == 0.0
    result = gradient_descent(land, seed=5)
    assert np.all(result.mode_w2 < 1e-6)


def test_bad_inputs_are_refused_naming_value_and_range() -> None:
    with pytest.raises(ConfigError, match=r"gamma=-0\.1.*>= 0"):
        make_landscape(SPECTRUM, 0.1, -0.1)
    with pytest.raises(ConfigError, match="augmentation variance=-1"):
        make_landscape(SPECTRUM, -1.0, 0.1)
    with pytest.raises(ConfigError, match="empty"):
        make_landscape([], 0.1, 0.1)
    with pytest.raises(ConfigError, match="spectral"):
        make_landscape(SPECTRUM, 0.1, 0.1, loss="l2")
    with pytest.raises(ConfigError, match="smallest data variance"):
        make_landscape(SPECTRUM, 0.5, 0.1, augmentation_model="marginal")


def _full_hessian_eigenvalues(land: QuarticLandscape, w: np.ndarray) -> np.ndarray:
    """Finite-difference Hessian of the full-matrix loss at W = diag(w) (eigenbasis = I)."""
    A, Sigma, n = np.diag(land.a), np.diag(land.sigma), land.n_modes
    W0, h = np.diag(w), 1e-6
    columns = []
    for index in range(n * n):
        step = np.zeros(n * n)
        step[index] = h
        step = step.reshape(n, n)
        plus = spectral_loss_gradient(W0 + step, A, Sigma, land.gamma)
        minus = spectral_loss_gradient(W0 - step, A, Sigma, land.gamma)
        columns.append(((plus - minus) / (2 * h)).ravel())
    hessian = np.array(columns)
    return np.linalg.eigvalsh((hessian + hessian.T) / 2)


def test_signature_of_critical_points_and_full_matrix_hessian() -> None:
    land = make_landscape([1.0, 0.6, 0.1], 0.1, 0.5)  # alpha = (-1.5, -0.7, +0.3)
    best = np.sqrt(land.learned_w2())
    assert land.signature(best) == (0, 3, 0) and land.kind(best) == "min"
    assert np.all(_full_hessian_eigenvalues(land, best) > -1e-6)
    saddle = best.copy()
    saddle[1] = 0.0  # a learnable mode left at 0
    assert land.signature(saddle) == (1, 2, 0) and land.kind(saddle) == "saddle"
    assert np.sum(_full_hessian_eigenvalues(land, saddle) < -1e-6) >= 1
    all_learnable = make_landscape([1.0, 0.6], 0.1, 0.5)
    assert all_learnable.kind(np.zeros(2)) == "max"
    with pytest.raises(ConfigError, match="not a critical point"):
        land.signature(np.array([0.3, 0.0, 0.0]))


def test_grid_prediction_matches_landscape_at_every_point() -> None:
    gammas, augs = np.array([0.0, 0.4, 1.0]), np.array([0.0, 0.05, 0.12])
    for model in ("marginal", "additive"):
        grid = learned_w2_grid(SPECTRUM, gammas, augs, model)
        assert grid.shape == (3, 3, len(SPECTRUM))
        for i, gamma in enumerate(gammas):
            for j, aug in enumerate(augs):
                land = make_landscape(SPECTRUM, aug, gamma, augmentation_model=model)
                np.testing.assert_allclose(grid[i, j], land.learned_w2(), rtol=1e-12)


def test_mode_flow_solves_its_ode_and_ends_at_the_predicted_minimum() -> None:
    from nocollapse.theory.landscape import make_landscape, mode_w2_trajectory

    landscape = make_landscape([1.0, 0.5, 0.2, 0.05], 0.02, 0.3, augmentation_model="marginal")
    times = np.linspace(0, 200, 20001)
    u = mode_w2_trajectory(landscape, 0.01, times)
    du = np.gradient(u, times, axis=0)
    rhs = -4 * landscape.alpha * u - 8 * landscape.beta * u**2
    assert np.max(np.abs(du - rhs)[1:-1]) < 1e-3 * max(1.0, np.max(np.abs(rhs)))
    np.testing.assert_allclose(u[-1], landscape.learned_w2(), atol=1e-6)
    assert np.all(u[-1][~landscape.learned()] < 1e-8)
