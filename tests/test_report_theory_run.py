"""report: predictor power law and eta / eta_c of a run (docs/theory.md#theory-in-a-run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nocollapse.diagnostics import critical_eta
from nocollapse.report import build_report, load_run
from nocollapse.report.theory_run import critical_decay_rows, predictor_spectra, spectrum_epochs
from nocollapse.runio import write_config


def _run_dir(root: Path, exponent: float) -> Path:
    run = root / "linear-run"
    run.mkdir(parents=True)
    write_config(run, {"method": "byol", "optim": {"weight_decay": 0.01}})
    s = np.geomspace(10.0, 1e-3, 16)
    spectra = [{"epoch": e, "step": 10 * e, "F_eigenvalues": s.tolist(),
                "Wp_in_F_basis": (0.3 * s ** (exponent * e / 2)).tolist()} for e in (0, 1, 2)]
    (run / "spectra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in spectra))
    metrics = [{"step": k, "epoch": k / 10, "loss": 1.0, "sigma2_est": 0.5 + 0.01 * (k % 3),
                "tau_est": 0.9} for k in range(1, 30)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    return run


def test_power_law_per_epoch_figure_and_report_section(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, exponent=0.5)
    run = load_run(run_dir)
    spectra = predictor_spectra(run, spectrum_epochs(run))
    assert [item.epoch for item in spectra] == [0, 1, 2]
    assert spectra[-1].fit is not None
    assert spectra[-1].fit.exponent == pytest.approx(0.5)  # exponent * e / 2 at e = 2
    assert spectra[-1].fit.modes == 12  # s_j > 1e-3 s_max: 10^(-4k/15) > 1e-3 for k <= 11
    report = build_report([run_dir], tmp_path / "report")
    assert tmp_path / "report" / "linear-run-predictor_spectrum.png" in report.files
    text = report.markdown.read_text()
    assert "## Theory read off the runs" in text
    assert "| 2 | 0.500 | 1.000 |" in text


def test_eta_over_eta_c_table_uses_the_run_weight_decay_and_estimates(tmp_path: Path) -> None:
    rows = critical_decay_rows(load_run(_run_dir(tmp_path, 0.5)))
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[1]["logs"] == 10 and rows[1]["tau"] == 0.9
    assert rows[1]["ratio"] == pytest.approx(0.01 / critical_eta(rows[1]["sigma2"], 0.9))


def test_eta_c_carries_the_logged_data_scale(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, 0.5)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    # epoch 1 logs x = 4 (3.9 / 4.1 around it: the median is 4), epoch 0 logs none
    logged = [{**json.loads(line), **({"scale_est": 4.0 + 0.1 * (k % 3 - 1)} if k >= 9 else {})}
              for k, line in enumerate(lines)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logged))
    rows = critical_decay_rows(load_run(run_dir))
    assert np.isnan(rows[0]["scale"])  # not measured: read as x = 1
    assert rows[0]["eta_c"] == pytest.approx(critical_eta(rows[0]["sigma2"], 0.9))
    assert rows[1]["scale"] == pytest.approx(4.0)
    # 4x the data scale: 4x the critical decay (tian2021 with X = x I), a quarter the ratio
    assert rows[1]["ratio"] == pytest.approx(0.01 / (4 * critical_eta(rows[1]["sigma2"], 0.9)))
    text = build_report([run_dir], tmp_path / "report").markdown.read_text()
    assert "| x est. |" in text and "| 1 | 10 | 4 |" in text


def test_runs_without_predictor_spectra_get_no_section(tmp_path: Path) -> None:
    run = tmp_path / "mlp-run"
    run.mkdir()
    write_config(run, {"method": "simsiam"})
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    report = build_report([run], tmp_path / "report")
    assert "Theory read off the runs" not in report.markdown.read_text()
