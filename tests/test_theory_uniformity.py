"""Uniformity along theory trajectories (docs/theory.md#wang2022): sampled vs closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from nocollapse.errors import ConfigError
from nocollapse.theory.uniformity import (
    uniformity_along_trajectory,
    uniformity_of_linear,
    uniformity_of_modes,
    wang_isola_uniformity_of_k_sphere,
    wasserstein_uniformity_of_k_sphere,
)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_equal_live_modes_match_the_k_sphere_closed_forms(k: int) -> None:
    m = 6
    s = np.r_[np.full(k, 0.7), np.zeros(m - k)]
    got = uniformity_of_modes(s, n_samples=1500, seed=k)
    w2 = wasserstein_uniformity_of_k_sphere(k, m)
    # Compare W2^2: the square root inflates the O(m / n) sampling bias near 0.
    assert got["uniformity_wasserstein"][0] ** 2 == pytest.approx(w2**2, abs=0.01)
    wi = wang_isola_uniformity_of_k_sphere(k)
    assert got["uniformity_wang_isola"][0] == pytest.approx(wi, abs=0.05)


def test_wang_isola_closed_form_limits() -> None:
    # k = 1: two antipodal points, E exp(-2 |z-z'|^2) = (1 + e^-8) / 2.
    assert wang_isola_uniformity_of_k_sphere(1) == pytest.approx(np.log((1 + np.exp(-8)) / 2))
    # Large k: |z - z'|^2 -> 2, so the value -> -2t = -4 from above, monotonically.
    values = [wang_isola_uniformity_of_k_sphere(k) for k in (2, 8, 32, 128, 1024)]
    assert np.all(np.diff(values) < 0) and values[-1] == pytest.approx(-4, abs=0.01)
    assert wasserstein_uniformity_of_k_sphere(8, 8) == 0.0


def test_trajectory_of_linear_encoders_equals_reduced_state_for_rotated_outputs() -> None:
    rng = np.random.default_rng(0)
    m = 5
    states = np.abs(rng.standard_normal((4, m)))
    rotation = np.linalg.qr(rng.standard_normal((m, m)))[0]
    Ws = [rotation @ np.diag(np.sqrt(row)) for row in states]
    along = uniformity_along_trajectory(Ws, n_samples=300, seed=3)
    reduced = uniformity_of_modes(states, n_samples=300, seed=3)
    for key, values in along.items():
        assert values.shape == (4,)
        np.testing.assert_allclose(values, reduced[key], rtol=1e-9)  # both measures rotation-free


def test_input_covariance_is_used() -> None:
    W = np.eye(3)
    skewed = uniformity_of_linear(W, 2000, seed=1, X=np.diag([1.0, 1e-12, 1e-12]))
    isotropic = uniformity_of_linear(W, 2000, seed=1)
    expected = wasserstein_uniformity_of_k_sphere(1, 3)
    assert skewed["uniformity_wasserstein"] == pytest.approx(expected, abs=0.02)
    assert isotropic["uniformity_wasserstein"] < 0.1


def _third_order_modes(p0: np.ndarray, eta: float, sigma2: float, times: np.ndarray) -> np.ndarray:
    """tian2021's mode on the invariant parabola (alpha_p = 1, tau = 1): s = p^2."""

    def rhs(_t: float, p: np.ndarray) -> np.ndarray:
        return p**2 * (1 - (1 + sigma2) * p) - eta * p

    solution = solve_ivp(rhs, (0, times[-1]), p0, t_eval=times, rtol=1e-9, atol=1e-12)
    return solution.y.T**2


def test_uniformity_tracks_dimensional_collapse_along_the_third_order_dynamics() -> None:
    eta, sigma2 = 0.1, 0.5
    p_minus = (1 - np.sqrt(1 - 4 * eta * (1 + sigma2))) / (2 * (1 + sigma2))
    p0 = np.array([0.3, 0.25, 0.2, 0.15, 0.08, 0.05])  # two start below p*_- = 0.1225
    alive = int(np.sum(p0 > p_minus))
    times = np.linspace(0, 150, 16)
    s = _third_order_modes(p0, eta, sigma2, times)
    curve = uniformity_of_modes(s, n_samples=800, seed=0)
    wasserstein = curve["uniformity_wasserstein"]
    expected = wasserstein_uniformity_of_k_sphere(alive, len(p0))
    assert wasserstein[-1] == pytest.approx(expected, abs=0.03)
    # The live modes all settle at p*_+, so both measures end at their k-sphere values.
    assert curve["uniformity_wang_isola"][-1] == pytest.approx(
        wang_isola_uniformity_of_k_sphere(alive), abs=0.05
    )


def test_bad_states_are_refused() -> None:
    with pytest.raises(ConfigError, match="negative"):
        uniformity_of_modes([1.0, -0.5])
    with pytest.raises(ConfigError, match="empty"):
        uniformity_along_trajectory([])
    with pytest.raises(ConfigError, match="1 <= k <= m"):
        wasserstein_uniformity_of_k_sphere(5, 3)
