"""Theory reproductions at quick size: the claims' directions hold."""

from __future__ import annotations

from pathlib import Path

from nocollapse.experiments.registry import get_reproduction
from nocollapse.experiments.result import ReproductionResult


def _run(name: str, tmp_path: Path) -> ReproductionResult:
    result = get_reproduction(name).run(tmp_path, "quick", 0)
    for figure in result.figures:
        assert (tmp_path / figure).stat().st_size > 1000, figure
    return result


def _claims(result: ReproductionResult) -> dict[str, bool]:
    return {claim.statement: claim.passed for claim in result.claims}


def test_bao2023_l2_collapses_above_threshold_cosine_does_not(tmp_path: Path) -> None:
    result = _run("bao2023-normalization", tmp_path)
    assert result.passed, result.to_markdown()


def test_halvagal2023_simulation_tracks_ode_and_iso_equalises_euclidean(tmp_path: Path) -> None:
    claims = _claims(_run("halvagal2023-isoloss", tmp_path))
    for name in ("Euclidean", "Euclidean-Iso", "Cosine", "Cosine-Iso"):
        assert claims[f"{name}: simulation follows the eigenmode ODE"], name
    for base in ("Euclidean", "Cosine"):
        assert claims[f"{base}: IsoLoss removes the eigenvalue as a learning-rate multiplier"]
    for name in ("Euclidean", "Euclidean-Iso", "Cosine", "Cosine-Iso"):  # not the mean field
        assert claims[f"{name}: gain spread, simulation vs the exact-expectation flow"], name
    assert claims["Euclidean: every s_m -> the fixed point (authors' code: 1)"]
    assert claims["Euclidean, both views augmented: every s_m -> the fixed point "
                  "(paper: 1/(1+sigma^2))"]
    assert claims["Cosine conserves ||W||_F^2 under the flow"]
    assert claims["Cosine-Iso does not conserve ||W||_F^2"]


def test_ziyin2023_gradient_descent_matches_predicted_rank(tmp_path: Path) -> None:
    result = _run("ziyin2023-landscape", tmp_path)
    assert result.passed, result.to_markdown()


def test_wang2022_wasserstein_sees_dimensional_collapse_wang_isola_less(tmp_path: Path) -> None:
    result = _run("wang2022-uniformity", tmp_path)
    assert result.passed, result.to_markdown()


def test_tian2021_eigenmodes_phase_and_linear_ablations_reproduce(tmp_path: Path) -> None:
    for name in ("tian2021-eigenmodes", "tian2021-phase", "tian2021-ablations-linear"):
        folder = tmp_path / name
        folder.mkdir()
        result = _run(name, folder)
        assert result.passed, result.to_markdown()
