"""Phase diagrams of the tian2021 dynamics agree with the analytic collapse boundary."""

from __future__ import annotations

import numpy as np
import pytest

from nocollapse.errors import ConfigError
from nocollapse.theory.phase import phase_diagram
from nocollapse.theory.tian2021 import critical_eta, fixed_points, integrate_modes


@pytest.mark.parametrize("axes", [("eta", "sigma2"), ("sigma2", "eta"), ("eta", "p0")])
def test_reduced_phase_diagram_agrees_away_from_the_boundary(axes: tuple[str, str]) -> None:
    diagram = phase_diagram(*axes, grid=40, t_end=150.0, dt=0.2)
    agree, total = diagram.agreement(cells=2)
    assert total > 0.8 * 40 * 40
    assert agree >= 0.95 * total
    assert 0.2 < diagram.collapsed.mean() < 0.8  # both phases present


def test_boundary_curve_matches_the_formulas() -> None:
    sigma_grid = phase_diagram("eta", "sigma2", grid=5, t_end=1.0)
    eta_b, sigma_b = sigma_grid.boundary.T
    np.testing.assert_allclose(eta_b, critical_eta(sigma_b))
    p0_grid = phase_diagram("eta", "p0", grid=5, t_end=1.0)
    eta_b, p_b = p0_grid.boundary[:-2].T  # the last two points: vertical line at eta_c
    np.testing.assert_allclose(p_b, fixed_points(0.5, eta_b)[0])
    swapped = phase_diagram("p0", "eta", grid=5, t_end=1.0)
    np.testing.assert_allclose(swapped.boundary, p0_grid.boundary[:, ::-1])


def test_vectorised_cells_equal_single_mode_integration() -> None:
    diagram = phase_diagram("eta", "p0", x_range=(0.05, 0.15), y_range=(0.1, 0.5), grid=3,
                            t_end=40.0, dt=0.05)
    for i, p0 in enumerate(diagram.y):
        for j, eta in enumerate(diagram.x):
            p, _, _ = integrate_modes(np.array([p0]), np.array([p0**2]), np.array([0.0, 40.0]),
                                      sigma2=0.5, eta=eta)
            assert diagram.final_p[i, j] == pytest.approx(p[-1, 0], abs=1e-6)


def test_matrix_phase_diagram_agrees_with_the_reduced_boundary() -> None:
    diagram = phase_diagram("eta", "sigma2", grid=8, model="matrix", t_end=150.0, dt=0.2)
    agree, total = diagram.agreement(cells=1)
    assert total >= 20 and agree >= 0.95 * total


def test_ema_diagram_has_no_analytic_prediction_but_both_phases() -> None:
    diagram = phase_diagram("beta", "alpha_p", grid=12, t_end=100.0, dt=0.1)
    assert diagram.predicted is None and diagram.boundary is None
    assert 0.05 < diagram.collapsed.mean() < 0.95


@pytest.mark.parametrize(
    "kwargs, word",
    [({"x_name": "gamma"}, "gamma"), ({"y_name": "eta"}, "differ"),
     ({"model": "full"}, "full"), ({"x_range": (-1.0, 1.0)}, "eta")],
)
def test_bad_arguments_are_refused(kwargs: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        phase_diagram(**{"grid": 4, **kwargs})
