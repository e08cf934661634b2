"""``nocollapse landscape``: table, CSV and PNG of the per-mode quartic landscape."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np
import pytest

from nocollapse.cli.main import main


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_landscape_writes_csv_png_and_marks_modes_with_positive_alpha_collapsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["landscape", "--gamma", "0.6", "--aug", "0.2",
                 "--spectrum", "1,0.5,0.3,0.2", "--out", str(out)])
    assert code == 0
    rows = _rows(out / "landscape.csv")
    assert [r["status"] for r in rows] == ["learned", "learned", "collapsed", "collapsed"]
    for row in rows:
        a, sigma = float(row["data_variance"]), float(row["augmentation_variance"])
        assert float(row["alpha"]) == pytest.approx(0.6 - 2 * a)
        assert float(row["beta"]) == pytest.approx((a + sigma) ** 2)
    w2 = float(rows[0]["learned_w2"])
    assert w2 == pytest.approx((2 * 1.0 - 0.6) / (2 * 1.2**2))
    width, height = _png_size(out / "landscape.png")
    assert (width, height) == (700, 450)
    assert (out / "config.yaml").exists()
    printed = capsys.readouterr().out
    assert "collapsed" in printed and "learned rank 2 of 4" in printed


def test_check_column_agrees_with_prediction(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["landscape", "--dim", "5", "--decay", "0.6", "--gamma", "0.4",
                 "--check", "--out", str(out)]) == 0
    rows = _rows(out / "landscape.csv")
    predicted = np.array([float(r["learned_w2"]) for r in rows])
    descent = np.array([float(r["gradient_descent_w2"]) for r in rows])
    np.testing.assert_allclose(descent, predicted, rtol=0.01, atol=1e-6)
    assert len(rows) == 5 and 0 < np.count_nonzero(predicted) < 5


def test_marginal_augmentation_lowers_the_learned_rank(tmp_path: Path) -> None:
    ranks = []
    for aug in ("0", "0.2"):
        out = tmp_path / aug
        assert main(["landscape", "--aug-model", "marginal", "--aug", aug, "--gamma", "0.3",
                     "--spectrum", "1,0.6,0.35,0.25", "--out", str(out)]) == 0
        ranks.append(sum(r["status"] == "learned" for r in _rows(out / "landscape.csv")))
    assert ranks[0] > ranks[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gamma", "-1"], "--gamma=-1.0 is negative; valid range: --gamma >= 0"),
        (["--aug", "-0.5"], "--aug=-0.5 is negative; valid range: --aug >= 0"),
        (["--spectrum", ""], "--spectrum '' is empty"),
        (["--spectrum", " , "], "is empty"),
        (["--spectrum", "1,x"], "not a list of numbers"),
        (["--spectrum", "1,-2"], "data variance=-2.0 must be positive"),
        (["--decay", "1.5"], "valid range: 0.0 <= --decay <= 1.0"),
        (["--loss", "cosine"], "valid choices: spectral"),
        (["--aug-model", "marginal", "--aug", "2"], "smallest data variance"),
        (["--spectrum", "1", "--dim", "3"], "not both"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "run"
    assert main(["landscape", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
