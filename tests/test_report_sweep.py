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


@pytest.mark.parametrize("decay_axis", [0, 1])
def test_every_row_gets_an_eta_c_tick_and_no_label_covers_a_cells_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decay_axis: int) -> None:
    """A row whose cells all collapsed has no estimate of its own: it is drawn at the pooled
    eta_c (dotted); each label sits clear of the k-NN numbers, at eta_c on a cell centre."""
    import nocollapse.report.sweep as sweep_report

    emas = [0.9, 0.99, 0.999]
    cells = [_cell(wd, ema) for wd in DECAYS for ema in emas]
    for cell in cells:  # the 0.999 row: all collapsed; eta_c 1/16 lands on 1e-2's centre...
        if cell["axes"]["learner.base_tau"] == 0.999:
            cell["outcome"] = "complete collapse"
    axes = [["optim.weight_decay", DECAYS], ["learner.base_tau", emas]]
    if decay_axis == 1:
        axes.reverse()
    figures = []
    monkeypatch.setattr(sweep_report, "save_figure",
                        lambda figure, path, tight=True: figures.append(figure) or path)
    table = json.loads(_write(tmp_path / "s", axes, cells).joinpath(SWEEP_TABLE_FILE)
                       .read_text())
    boundary = eta_c_boundary(table)
    assert boundary is not None and boundary["pooled_eta_c"] is not None
    sweep_report.plot_phase_diagram(table, boundary, tmp_path / "p.png")
    ax = figures[0].axes[0]
    figures[0].canvas.draw()
    renderer = figures[0].canvas.get_renderer()
    labels = [t for t in ax.texts if "eta_c" in t.get_text()]
    numbers = [t for t in ax.texts if "eta_c" not in t.get_text()]
    assert len(labels) == len(emas)  # one per row, the collapsed row's marked pooled
    assert sum("(pooled)" in t.get_text() for t in labels) == 1
    for label in labels:
        box = label.get_window_extent(renderer)
        assert not any(box.overlaps(n.get_window_extent(renderer)) for n in numbers), \
            label.get_text()
    markdown = sweep_report.render_markdown(table, boundary, "p.png")
    assert "drawn at the pooled eta_c" in markdown


def test_an_unfinished_sweep_draws_the_cells_that_are_done(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No sweep.json yet (the sweep runs, or was stopped): the report reads sweep.yaml's
    axes and each finished cell's outcome.json, its axis values from its config.yaml."""
    import yaml

    out = tmp_path / "s"
    (out / "cells").mkdir(parents=True)
    axes = [["optim.weight_decay", DECAYS], ["learner.base_tau", EMAS]]
    (out / "sweep.yaml").write_text(yaml.safe_dump({"base": {}, "axes": axes}))
    done = [(1e-4, 0.9), (1.0, 0.99)]
    for wd in DECAYS:
        for ema in EMAS:
            cell = out / "cells" / f"weight_decay={wd}__base_tau={ema}"
            cell.mkdir()
            (cell / "config.yaml").write_text(yaml.safe_dump(
                {"optim": {"weight_decay": wd}, "learner": {"base_tau": ema}}))
            if (wd, ema) in done:
                record = {k: v for k, v in _cell(wd, ema).items() if k != "axes"}
                (cell / "outcome.json").write_text(json.dumps(record))
    code, err = run_cli(["report", str(out)], capsys)
    assert code == 0, err
    markdown = (out / "report" / "sweep_report.md").read_text()
    assert "Unfinished sweep: 2 of 6 cells done" in markdown
    assert "| 0.0001 | 0.9 | learned | 0.800 |" in markdown
    assert "| 1.0 | 0.99 | complete collapse | 0.200 |" in markdown
    assert (out / "report" / "phase_diagram.png").stat().st_size > 1000
    for cell in (out / "cells").iterdir():
        (cell / "outcome.json").unlink(missing_ok=True)
    code, err = run_cli(["report", str(out)], capsys)
    assert code == 2 and "no finished cell yet (0 of 6" in err
