"""Real-data reproductions at quick size (scikit-learn digits, 40 steps a cell)."""

from __future__ import annotations

import math
from pathlib import Path

from nocollapse.experiments.realdata import ablations


def test_realdata_ablations_quick_runs_every_cell_and_checks_the_claims(tmp_path: Path) -> None:
    result = ablations(tmp_path, "quick", 0)
    table = result.tables[0]
    # 2 methods x 2 variants + the linear predictor at equal steps and at equal wall time
    assert len(table.rows) == 6
    for row in table.rows:
        assert 0.0 <= float(row[2]) <= 1.0 and math.isfinite(float(row[3])), row
    assert [int(row[5]) for row in table.rows[:5]] == [40] * 5
    assert "wall time" in table.rows[5][0] and int(table.rows[5][5]) >= 1
    statements = {claim.statement for claim in result.claims}
    assert {"DirectPred matches or beats the SGD-trained linear predictor at equal steps",
            "DirectPred matches or beats the SGD-trained linear predictor at equal wall time",
            "normal methods beat the raw pixels on k-NN",
            "normal methods beat the random-init encoder on k-NN"} <= statements
    # the direction of the ablation: removing the stop-gradient lowers the effective rank
    rank = {(row[0], row[1]): float(row[3]) for row in table.rows}
    for method in ("simsiam", "directpred"):
        assert rank[method, "no stop-gradient"] < rank[method, "normal"], method
