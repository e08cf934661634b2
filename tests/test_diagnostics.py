"""Collapse diagnostics return their known values on synthetic embeddings with known spectra."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from nocollapse import diagnostics as dg
from nocollapse.errors import ConfigError


def _sphere(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_identity_spectrum_has_effective_rank_d_and_gaussian_batch_is_close() -> None:
    d = 16
    assert dg.effective_rank(np.ones(d)) == pytest.approx(d)
    assert dg.participation_ratio(np.ones(d)) == pytest.approx(d)
    z = np.random.default_rng(0).standard_normal((4000, d))
    assert dg.rankme(z) == pytest.approx(d, rel=0.02)
    assert dg.participation_ratio(dg.correlation_eigenvalues(z, centered=True)) > 0.9 * d


def test_rank_k_data_has_effective_rank_k_and_k_dims_above_threshold() -> None:
    rng = np.random.default_rng(1)
    d, k = 12, 5
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :k]
    # Rows spanning a k-dim subspace with equal singular values: exactly rank k.
    coefficients = np.linalg.qr(rng.standard_normal((200, k)))[0]
    z = coefficients @ basis.T
    # RankMe's eps = 1e-7 added to each of the d normalised singular values moves H by at
    # most d * eps * (|log eps| + 1) ~ 2e-5 (the paper's smoothing, not rounding)
    assert dg.rankme(z) == pytest.approx(k, rel=3e-5)
    eigenvalues = dg.correlation_eigenvalues(z)
    assert dg.dims_above(eigenvalues, 1e-6) == k
    assert dg.participation_ratio(eigenvalues) == pytest.approx(k, rel=1e-9)


def test_unequal_spectrum_lowers_effective_rank_below_count() -> None:
    values = np.array([1.0, 0.1, 0.01, 0.001])
    assert 1.0 < dg.effective_rank(values) < 2.0
    assert dg.dims_above(values, 0.05) == 2
    assert dg.effective_rank(np.zeros(4)) == 0.0


def test_all_equal_vectors_have_collapse_level_one() -> None:
    z = np.tile(np.array([[0.3, -1.2, 2.0, 0.5]]), (64, 1))
    assert dg.embedding_std(z) == pytest.approx(0.0, abs=1e-12)
    assert dg.collapse_level(z) == pytest.approx(1.0)


def test_isotropic_gaussian_has_collapse_level_near_zero() -> None:
    z = np.random.default_rng(2).standard_normal((5000, 32))
    assert dg.embedding_std(z) == pytest.approx(1 / np.sqrt(32), rel=0.02)
    assert dg.collapse_level(z) < 0.02


def test_dimensional_collapse_raises_collapse_level_in_between() -> None:
    z = np.random.default_rng(3).standard_normal((4000, 32))
    z[:, 8:] *= 1e-6  # only 8 of 32 dimensions alive
    level = dg.collapse_level(z)
    # std per live dim ~ 1/sqrt(8): sqrt(32) * mean std = sqrt(32) * (8/32) / sqrt(8) = 0.5
    assert level == pytest.approx(0.5, abs=0.03)


def test_great_circle_less_uniform_than_sphere_for_both_measures() -> None:
    rng = np.random.default_rng(4)
    d, n = 8, 600
    sphere = _sphere(n, d, rng)
    angle = rng.uniform(0, 2 * np.pi, n)
    circle = np.zeros((n, d))
    circle[:, 0], circle[:, 1] = np.cos(angle), np.sin(angle)
    assert dg.wang_isola_uniformity(sphere) < dg.wang_isola_uniformity(circle) - 0.5
    assert dg.wasserstein_uniformity(sphere) < dg.wasserstein_uniformity(circle) - 0.5
    # Closed form on a great k-sphere: W2 = sqrt(2 - 2 sqrt(k/m)).
    expected = np.sqrt(2 - 2 * np.sqrt(2 / d))
    assert dg.wasserstein_uniformity(circle) == pytest.approx(expected, abs=0.03)
    assert dg.wasserstein_uniformity(np.tile(sphere[:1], (10, 1))) == pytest.approx(np.sqrt(2))


def test_wasserstein_detects_dimensional_collapse_that_wang_isola_barely_sees() -> None:
    rng = np.random.default_rng(5)
    m, n = 64, 800
    full = _sphere(n, m, rng)
    half = np.zeros((n, m))
    half[:, : m // 2] = _sphere(n, m // 2, rng)
    wi_full, wi_half = dg.wang_isola_uniformity(full), dg.wang_isola_uniformity(half)
    w2_full, w2_half = dg.wasserstein_uniformity(full), dg.wasserstein_uniformity(half)
    assert abs(wi_half - wi_full) / abs(wi_full) < 0.05  # Wang-Isola moves by a few %
    assert w2_half > 0.7 and w2_half > 3 * w2_full  # Wasserstein: sqrt(2 - sqrt 2) = 0.77


def test_view_alignment_zero_for_identical_views_and_grows_with_noise() -> None:
    rng = np.random.default_rng(6)
    z = rng.standard_normal((200, 10))
    assert dg.view_alignment(z, 3.0 * z) == pytest.approx(0.0, abs=1e-12)
    small = dg.view_alignment(z, z + 0.1 * rng.standard_normal(z.shape))
    large = dg.view_alignment(z, z + 1.0 * rng.standard_normal(z.shape))
    assert 0 < small < large < 4


def test_alignment_is_one_for_commuting_matrices_and_drops_for_rotated_predictor() -> None:
    d = 6
    basis = special_ortho_group.rvs(d, random_state=7)
    F = basis @ np.diag([5.0, 4.0, 3.0, 2.0, 1.0, 0.5]) @ basis.T
    Wp = basis @ np.diag([0.1, 0.9, 0.4, 0.7, 0.2, 0.3]) @ basis.T  # other order, same basis
    assert dg.eigen_alignment(F, Wp) == pytest.approx(1.0, abs=1e-9)
    assert dg.commutator_norm(F, Wp) == pytest.approx(0.0, abs=1e-12)
    previous = 1.0
    for angle in (0.2, 0.5, 0.8):
        generator = np.zeros((d, d))
        generator[0, 1], generator[1, 0] = angle, -angle
        generator[2, 4], generator[4, 2] = angle, -angle
        rotation = basis @ _expm_skew(generator) @ basis.T
        rotated = rotation @ Wp @ rotation.T
        alignment = dg.eigen_alignment(F, rotated)
        assert alignment < previous - 1e-3
        assert dg.commutator_norm(F, rotated) > 1e-3
        previous = alignment


def _expm_skew(a: np.ndarray) -> np.ndarray:
    from scipy.linalg import expm

    return expm(a)


def test_asymmetry_and_predictor_spectrum() -> None:
    sym = np.diag([3.0, 1.0, 2.0])
    assert dg.asymmetry(sym) == 0.0
    np.testing.assert_allclose(dg.predictor_spectrum(sym), [3.0, 2.0, 1.0])
    skew = np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert dg.asymmetry(skew) == pytest.approx(2.0)
    assert dg.asymmetry(np.eye(2) + 0.1 * skew) == pytest.approx(0.2 * np.sqrt(2) / np.sqrt(2.02))


def test_linear_network_weights_are_diagnosed_like_embeddings() -> None:
    rng = np.random.default_rng(8)
    W = np.zeros((6, 10))
    W[:3, :3] = np.diag([2.0, 1.0, 0.5])
    z = dg.embeddings_from_linear(W, 20000, rng)
    np.testing.assert_allclose(dg.correlation_eigenvalues(z)[:3], [4.0, 1.0, 0.25], rtol=0.05)
    assert dg.dims_above(dg.correlation_eigenvalues(z), 1e-6) == 3
    X = np.diag(np.linspace(0.5, 2.0, 10))
    zx = dg.embeddings_from_linear(np.eye(10), 20000, 9, X=X)
    np.testing.assert_allclose(np.diag(dg.correlation(zx)), np.diag(X), rtol=0.05)


def test_torch_input_gives_same_numbers_as_numpy() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    z1, z2 = rng.standard_normal((64, 8)), rng.standard_normal((64, 8))
    Wp = rng.standard_normal((8, 8))
    expected = dg.summarize(z1, z2, Wp=Wp)
    got = dg.summarize(
        torch.tensor(z1, dtype=torch.float32, requires_grad=True),
        torch.tensor(z2, dtype=torch.float32),
        Wp=torch.tensor(Wp, dtype=torch.float32),
    )
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_summarize_keys_are_finite_and_flag_collapse() -> None:
    rng = np.random.default_rng(11)
    healthy = dg.summarize(rng.standard_normal((300, 16)))
    collapsed = dg.summarize(np.ones((300, 16)) + 1e-9 * rng.standard_normal((300, 16)))
    assert all(np.isfinite(v) for v in healthy.values())
    assert healthy["collapse_level"] < 0.1 < 0.9 < collapsed["collapse_level"]
    assert healthy["uniformity_wasserstein"] < collapsed["uniformity_wasserstein"]


def test_bad_shapes_are_refused_with_the_expected_shape() -> None:
    with pytest.raises(ConfigError, match=r"\(B, d\)"):
        dg.collapse_level(np.ones(5))
    with pytest.raises(ConfigError, match="same shape"):
        dg.view_alignment(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(ConfigError, match="square"):
        dg.commutator_norm(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ConfigError, match="negative"):
        dg.effective_rank([1.0, -0.5])


@pytest.mark.parametrize("batch", [10, 80])  # fewer and more rows than dimensions
def test_gram_shortcut_matches_the_direct_covariance_spectrum(batch: int) -> None:
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(12)
    z = rng.standard_normal((batch, 20)) * np.linspace(2.0, 0.1, 20) + 0.3
    centered = z - z.mean(axis=0)
    direct = np.sort(np.linalg.eigvalsh(centered.T @ centered / batch))[::-1]
    np.testing.assert_allclose(dg.correlation_eigenvalues(z, centered=True), direct, atol=1e-10)
    # Wasserstein closed form, written independently with a matrix square root.
    n = z / np.linalg.norm(z, axis=1, keepdims=True)
    mu = n.mean(axis=0)
    cov = (n - mu).T @ (n - mu) / batch
    w2 = mu @ mu + 1 + np.trace(cov) - 2 / np.sqrt(20) * np.trace(sqrtm(cov).real)
    assert dg.wasserstein_uniformity(z) == pytest.approx(np.sqrt(w2), abs=1e-6)


def test_linear_network_summary_sees_alignment_and_dimensional_collapse() -> None:
    rng = np.random.default_rng(13)
    basis = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    W = basis @ np.diag([1.0, 0.9, 0.8, 0.7, 2e-3, 1e-3]) @ np.eye(6, 10)  # 2 collapsed
    Wp = basis @ np.diag([0.5, 0.45, 0.4, 0.35, 0.01, 0.02]) @ basis.T  # aligned predictor
    mixing = rng.standard_normal((10, 10))
    X = np.eye(10) + 0.3 * mixing @ mixing.T
    np.testing.assert_allclose(dg.linear_correlation(W, X), W @ X @ W.T)
    skewed = dg.summarize_linear(W, Wp, X=X, n_samples=1000)
    assert skewed["commutator"] > 1e-3  # correlated inputs turn F's eigenvectors away from Wp's
    aligned = dg.summarize_linear(W, Wp, n_samples=1000)
    assert aligned["commutator"] == pytest.approx(0.0, abs=1e-12)
    assert aligned["eigen_alignment"] == pytest.approx(1.0, abs=1e-9)
    assert aligned["dims_above"] == 4
    rotated = dg.summarize_linear(W, Wp.T @ np.roll(np.eye(6), 1, axis=0), n_samples=1000)
    assert rotated["eigen_alignment"] < 0.99 and rotated["predictor_asymmetry"] > 0.1
    plain = dg.summarize_linear(W, n_samples=1000)  # same seed: same batch, no predictor keys
    assert "commutator" not in plain
    assert plain == pytest.approx({key: aligned[key] for key in plain})
