"""``realdata-linear-phase`` at its quick size (digits): every claim measured, and its parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nocollapse.diagnostics import data_modes
from nocollapse.experiments.realdata_linear_phase import (
    LinearCell,
    _boundary,
    cached_views,
    linear_phase,
)
from nocollapse.experiments.registry import check_size


def test_quick_linear_phase_measures_every_claim_in_the_theorys_regime(tmp_path: Path) -> None:
    result = linear_phase(tmp_path, check_size("quick"), 0)
    statements = [claim.statement for claim in result.claims]
    for tag in ("(a) SimSiam", "(a) EMA 0.99", "(a) EMA 0.999", "(b)", "(c)", "(d)"):
        assert any(s.startswith(tag) for s in statements), tag
    # on digits the threshold measured from the data places the boundary (SimSiam within
    # a grid step: 0.95-1.05 eta_c,1) and the run is in the claim's regime
    assert result.passed, [c for c in result.claims if not c.passed]
    assert (tmp_path / result.figures[0]).stat().st_size > 1000
    # the uncentred footing matters: a centred covariance misses the mean image's mode
    assert result.params["eta_c1_centred"] < 0.5 * float(result.tables[0].rows[0][3])


def test_cached_views_are_real_augmentations_of_each_image() -> None:
    views = cached_views("quick", 0)
    assert views.shape == (512, 4, 64)
    # different views of one image differ (augmentation), the same seed repeats them
    assert not np.allclose(views[:, 0], views[:, 1])
    assert np.array_equal(views, cached_views("quick", 0))


def test_boundary_is_the_geometric_mean_above_the_highest_learned_cell() -> None:
    rng = np.random.default_rng(0)
    modes = data_modes(rng.standard_normal((50, 3, 4)) + 1.0)
    learned, dead = np.array([0.9, 0.0, 0.0, 0.0]), np.zeros(4)
    cells = [LinearCell(eta, None, learned if eta < 3 else dead, 1.0) for eta in (1, 2, 4, 8)]
    boundary, nearest = _boundary(cells, modes)
    assert boundary == np.sqrt(8.0) and nearest is cells[1]
    all_learned = [LinearCell(eta, None, learned, 1.0) for eta in (1, 2)]
    assert _boundary(all_learned, modes)[0] is None
