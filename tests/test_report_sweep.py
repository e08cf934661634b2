"""``nocollapse report SWEEP_DIR``: the phase diagram (two axes) or curves (one), and a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli import run_cli
from nocollapse.diagnostics import critical_eta
from nocollapse.report.sweep import _position, eta_c_boundary
from nocollapse.runio import SWEEP_TABLE_FILE

DECAYS, EMAS = [1e-4, 1e-2, 1.0], [0.9, 0.99]


def _cell(wd: float, ema: float | None) -> dict:
    collapsed = wd >= 1.0
    axes = {"optim.weight_decay": wd, **({"learner.base_tau": ema} if ema else {})}
    return {"name": f"wd={wd}_{ema}", "axes": axes,
            "outcome": "complete collapse" if collapsed else "learned",
            "knn": 0.2 if collapsed else 0.8, "random_init_knn": 0.6, "rankme": 1.0 if collapsed
            else 50.0, "lidar": 1.0, "effective_rank": 1.0 if collapsed else 10.0,
            "alpha_req": 1.0, "collapse_level": 0.9 if collapsed else 0.1,
            "sigma2_est": 1.0, "tau_est": 0.5 if ema == 0.99 else 1.0,
            # the data's scale logged in the 0.99 row only: the 0.9 row reads eta_c at x = 1
            **({"scale_est": 2.0} if ema == 0.99 else {}),
            "warning_step": 10 if collapsed else None, "warning_reason": "collapse level"}


def _write(out: Path, axes: list, cells: list) -> Path:
    out.mkdir(parents=True)
    table = {"axes": axes, "cells": cells, "spearman_with_knn": {"rankme": {"rho": 1.0,
                                                                           "cells": 6}}}
    (out / SWEEP_TABLE_FILE).write_text(json.dumps(table))
    return out


def test_two_axes_draw_a_phase_diagram_with_the_theory_boundary(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cells = [_cell(wd, ema) for wd in DECAYS for ema in EMAS]
    out = _write(tmp_path / "s", [["optim.weight_decay", DECAYS], ["learner.base_tau", EMAS]],
                 cells)
    code, err = run_cli(["report", str(out)], capsys)
    assert code == 0, err
    assert (out / "report" / "phase_diagram.png").stat().st_size > 1000
    markdown = (out / "report" / "sweep_report.md").read_text()
    assert "| 1.0 | 0.9 | complete collapse | 0.200 |" in markdown
    # eta_c per EMA value from that row's learned cells: tau 1, x 1 -> 1/8; tau 0.5, x 2 -> 1/16
    boundary = eta_c_boundary(json.loads((out / SWEEP_TABLE_FILE).read_text()))
    assert boundary is not None
    etas = {p["value"]: p["eta_c"] for p in boundary["points"]}
    assert etas == {0.9: critical_eta(1.0, 1.0), 0.99: critical_eta(1.0, 0.5, 2.0)}
    assert etas[0.99] == pytest.approx(1 / 16, rel=1e-15)  # a product of exact binary fractions
    assert f"eta_c = {critical_eta(1.0, 0.5, 2.0):.4g}" in markdown


def test_one_axis_draws_curves(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = _write(tmp_path / "s", [["optim.weight_decay", DECAYS]],
                 [_cell(wd, None) for wd in DECAYS])
    code, err = run_cli(["report", str(out)], capsys)
    assert code == 0, err
    assert (out / "report" / "sweep_curves.png").stat().st_size > 1000
    assert "Spearman" in (out / "report" / "sweep_report.md").read_text()


def test_the_boundary_sits_between_the_grid_values_on_a_log_scale() -> None:
    assert _position(1e-2, DECAYS) == pytest.approx(1.0)
    assert _position(1e-3, DECAYS) == pytest.approx(0.5)  # halfway in log10
    assert _position(1e-9, DECAYS) == -0.5  # below the grid: its lower edge
