"""``realdata-phase`` at its small size: two 3x3 sweeps on digits, every claim measured."""

from __future__ import annotations

from pathlib import Path

from nocollapse.experiments.realdata_phase import (
    _direction_claim,
    _lead,
    _warning_claim_by_knn,
    knn_truth,
    phase,
)
from nocollapse.experiments.registry import check_size
from nocollapse.experiments.result import ReproductionResult
from nocollapse.sweep import OUTCOMES


def test_realdata_phase_small_measures_every_claim(tmp_path: Path) -> None:
    result = phase(tmp_path, check_size("small"), 0)
    assert len(result.tables) == 2 and all(len(t.rows) == 9 for t in result.tables)
    for table in result.tables:
        for row in table.rows:
            assert row[2] in OUTCOMES and 0.0 <= float(row[3]) <= 1.0, row
    statements = [claim.statement for claim in result.claims]
    for tag in ("(a) directpred", "(b) directpred", "(c) directpred", "(a) byol-linear",
                "(b) byol-linear", "(c) byol-linear", "(d)"):
        assert any(s.startswith(tag) for s in statements), tag
    # every figure in a claim is measured: each cell is a run directory with its outcome
    assert len(list(tmp_path.glob("*/cells/*/outcome.json"))) == 18
    assert (tmp_path / "byol-linear" / "sweep.json").is_file()
    assert result.figures == ["directpred/report/phase_diagram.png",
                              "byol-linear/report/phase_diagram.png"]
    assert all((tmp_path / figure).stat().st_size > 1000 for figure in result.figures)
    assert not list(tmp_path.glob("*/cells/*/checkpoints"))  # kept out of the docs' folder


def test_knn_truth_is_the_random_init_gap_over_two_standard_errors() -> None:
    # p = 0.8 on 10000 images: one standard error 0.004, the margin 0.008
    def truth(knn: float, n: object = 10000) -> str | None:
        return knn_truth({"knn": knn, "random_init_knn": 0.8, "test_images": n})

    assert truth(0.809) == "better" and truth(0.807) == "same"
    assert truth(0.791) == "worse" and truth(0.793) == "same"
    # the margin shrinks with the split: 0.003 is within it at 1000 images, not at 10^6
    assert truth(0.803, 1000) == "same" and truth(0.803, 10**6) == "better"
    assert truth(0.9, None) is None and knn_truth({"knn": 0.9}) is None


def test_the_label_checked_warning_claim_counts_each_truth() -> None:
    def cell(name: str, knn: float, warned: int | None) -> dict[str, object]:
        return {"name": name, "knn": knn, "random_init_knn": 0.8, "test_images": 10000,
                "warning_step": warned}

    cells = [cell("a", 0.70, 40), cell("b", 0.75, 250), cell("c", 0.85, None),
             cell("d", 0.86, 30), cell("e", 0.80, 20)]
    result = ReproductionResult("t")
    _warning_claim_by_knn(result, "m", cells, 300)
    (claim,) = result.claims
    assert claim.measured.startswith("recall 2/2, false alarms 1/2 (within the error: 1 cells, "
                                     "1 warned)") and claim.passed
    missed = [cell("a", 0.70, None), *cells[1:]]
    result = ReproductionResult("t")
    _warning_claim_by_knn(result, "m", missed, 300)
    assert not result.claims[0].passed


def test_the_direction_claim_needs_a_move_the_theory_s_way_and_calls_a_flat_one_unresolved(
        ) -> None:
    decays = [1e-3, 1e-2, 1e-1]

    def claim(boundaries: list[float | None], thresholds: list[float | None]) -> tuple[bool, str]:
        result = ReproductionResult("t")
        _direction_claim(result, "m", decays, boundaries, thresholds)
        return result.claims[0].passed, result.claims[0].measured

    passed, measured = claim([0.03, 0.03, 0.03], [0.02, 0.01, 0.005])
    assert not passed and "not resolved" in measured and "4x" in measured and "under" in measured
    passed, measured = claim([0.03, 0.03, 0.003], [0.02, 0.01, 0.001])
    assert passed and measured.startswith("1 of 2 steps down, 0 up")
    assert not claim([0.003, 0.03, 0.03], [0.02, 0.01, 0.001])[0]  # against the theory
    assert not claim([0.003, 0.03, 0.003], [0.02, 0.01, 0.001])[0]  # both ways
    assert claim([None, 0.03, 0.03], [0.02, 0.01, 0.001])[0]  # learned everywhere, then a boundary
    passed, measured = claim([0.03, 0.03, 0.03], [0.02, None, None])  # one estimate only
    assert not passed and "fewer than two EMA rates" in measured


def test_the_lead_counts_a_fall_beyond_two_standard_errors_of_the_monitor_s_k_nn() -> None:
    # 2 sqrt(0.64 0.36 / 500) = 0.0429 below step 0's 0.64: 0.61 is noise, 0.59 a fall
    curve = [[0, 0.64], [50, 0.61], [100, 0.59], [150, 0.50]]
    assert _lead({"knn_curve": curve, "warning_step": 70}) == 30.0
    assert _lead({"knn_curve": curve, "warning_step": 70}, monitor_test=10**6) == -20.0
    assert _lead({"knn_curve": curve[:2], "warning_step": 70}) is None  # never fell
    assert _lead({"knn_curve": curve[1:], "warning_step": 70}) is None  # no step-0 point
