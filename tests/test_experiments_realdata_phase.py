"""``realdata-phase`` at its small size: two 3x3 sweeps on digits, every claim measured."""

from __future__ import annotations

from pathlib import Path

from nocollapse.experiments.realdata_phase import phase
from nocollapse.experiments.registry import check_size
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
