"""Real-data reproductions at quick size (scikit-learn digits, 40 steps a cell)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nocollapse.experiments import realdata
from nocollapse.experiments.realdata import ablations, step_cost_ratio
from nocollapse.methods import PRESETS


def test_realdata_ablations_quick_runs_every_cell_and_checks_the_claims(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the equal-wall-time cell is DirectPred's steps times the measured step-cost ratio
    monkeypatch.setattr(realdata, "step_cost_ratio", lambda *args, **kwargs: 1.5)
    result = ablations(tmp_path, "quick", 0)
    table = result.tables[0]
    # 2 methods x 2 variants + the linear predictor at equal steps and at equal wall time
    assert len(table.rows) == 6
    for row in table.rows:
        assert 0.0 <= float(row[2]) <= 1.0 and math.isfinite(float(row[3])), row
    assert [int(row[5]) for row in table.rows[:5]] == [40] * 5
    assert "wall time" in table.rows[5][0] and int(table.rows[5][5]) == 60
    assert result.params["step_cost_ratio_directpred_over_linear"] == 1.5
    statements = {claim.statement for claim in result.claims}
    assert {"DirectPred matches or beats the SGD-trained linear predictor at equal steps",
            "DirectPred matches or beats the SGD-trained linear predictor at equal wall time",
            "normal methods beat the raw pixels on k-NN",
            "normal methods beat the random-init encoder on k-NN"} <= statements
    # the direction of the ablation: removing the stop-gradient lowers the effective rank
    rank = {(row[0], row[1]): float(row[3]) for row in table.rows}
    for method in ("simsiam", "directpred"):
        assert rank[method, "no stop-gradient"] < rank[method, "normal"], method


def test_step_cost_ratio_sees_a_costlier_step() -> None:
    # a 32x wider projector hidden layer against the preset's own: a ratio well above 1
    # (whatever the load, both are timed in alternating rounds); a learner against itself
    # near 1. Wide margins: this checks the measurement's wiring, not a speed.
    wide = step_cost_ratio("quick", 0, ("byol", {"proj_hidden_dim": 16384}), ("byol", {}),
                           rounds=3, steps=3)
    same = step_cost_ratio("quick", 0, ("byol", {}), ("byol", {}), rounds=3, steps=3)
    assert wide > 2.0 and 0.5 < same < 2.0, (wide, same)


def test_an_ablation_the_loss_cannot_take_falls_back_to_its_base(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Read from the loss entry's flags, not the method's name: a registered preset with a
    surrogate loss falls back like IsoLoss does, and a plain loss keeps its ablations."""
    assert realdata._learner_overrides("isoloss", "no predictor") == {
        "predictor": "none", "loss": "normalized-l2"}
    assert realdata._learner_overrides("isoloss", "no stop-gradient") == {
        "stop_gradient": False, "loss": "normalized-l2"}
    assert realdata._learner_overrides("isoloss", "normal") == {}
    assert realdata._learner_overrides("byol", "no stop-gradient") == {"stop_gradient": False}
    monkeypatch.setitem(PRESETS, "iso-euclid", {**PRESETS["isoloss"], "loss": "isoloss-l2"})
    assert realdata._learner_overrides("iso-euclid", "no predictor") == {
        "predictor": "none", "loss": "l2"}
