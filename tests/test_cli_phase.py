"""``nocollapse phase``: files written, agreement printed, argument checks (in-process)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from nocollapse.cli.main import main


def test_phase_writes_csv_png_and_reports_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "phase"
    argv = ["phase", "--x", "eta", "--y", "p0", "--grid", "30", "--t-end", "120",
            "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "phase.csv").open()))
    assert len(rows) == 30 * 30
    collapsed = np.array([int(r["collapsed"]) for r in rows])
    predicted = np.array([int(r["predicted"]) for r in rows])
    assert 0 < collapsed.mean() < 1 and np.mean(collapsed == predicted) > 0.9
    import matplotlib.image as mpimg

    assert np.ptp(mpimg.imread(out / "phase.png")[..., :3]) > 0
    text = capsys.readouterr().out
    assert "agreement with the analytic boundary" in text and "(100.0%)" in text
    assert (out / "config.yaml").exists()


def test_matrix_model_without_analytic_boundary_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "ema"
    argv = ["phase", "--x", "beta", "--y", "alpha_p", "--model", "matrix", "--grid", "4",
            "--t-end", "20", "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "phase.csv").open()))
    assert len(rows) == 16 and all(r["predicted"] == "" for r in rows)


@pytest.mark.parametrize(
    "argv, word",
    [(["--x", "gamma"], "gamma"), (["--model", "full"], "full"), (["--eta", "-1"], "eta"),
     (["--grid", "0"], "grid"), (["--x-range", "-1", "1"], "eta"), (["--t-end", "0"], "t-end")],
)
def test_bad_arguments_return_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], word: str
) -> None:
    out = tmp_path / "bad"
    assert main(["phase", "--grid", "4", *argv, "--out", str(out)]) == 2  # last --grid wins
    assert not out.exists()
    assert word in capsys.readouterr().err
