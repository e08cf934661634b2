"""``nocollapse simulate``: files written, table content, argument checks (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from nocollapse.cli.main import main
from nocollapse.diagnostics.loss_definitions import half_of
from nocollapse.report.runs import load_run
from nocollapse.theory.registry import THEORY_MODELS, TheoryModel
from nocollapse.theory.result import Comparison, SimulationParams
from nocollapse.theory.tian2021 import fixed_points


def _png_is_drawn(path: Path) -> None:
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    assert np.ptp(image[..., :3]) > 0, f"{path} is blank"


def test_default_tian2021_run_writes_files_that_match_the_theory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) > 10 and records[0]["t"] == 0.0
    assert records[-1]["t"] == pytest.approx(100.0)
    final = np.array(records[-1]["simulated"])
    np.testing.assert_allclose(final[:-1], fixed_points(0.5, 0.1)[1], atol=1e-3)
    np.testing.assert_allclose(final, records[-1]["theory"], atol=1e-6)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"] == "tian2021" and config["resolved"]["eta"] == 0.1
    _png_is_drawn(out / "eigenvalues.png")
    text = capsys.readouterr().out
    assert "learned" in text and "collapsed" in text and "wall time" in text
    assert load_run(out).kind == "simulation"


def test_rerun_replaces_metrics_and_options_reach_the_model(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    for eta in ("0.1", "0.2"):  # 0.2 > eta_c = 1/6: every mode collapses
        argv = ["simulate", "--eta", eta, "--steps", "300", "--lr", "0.2", "--n1", "8",
                "--n2", "4", "--out", str(out)]
        assert main(argv) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["t"] == 0.0 and sum('"t": 0.0,' in x for x in lines) == 1
    last = json.loads(lines[-1])
    assert len(last["simulated"]) == 4
    assert max(last["simulated"]) < 1e-2


@pytest.mark.parametrize(
    "argv, word",
    [
        (["--model", "nope"], "nope"),
        (["--eta", "-1"], "eta"),
        (["--sigma2", "-0.5"], "sigma2"),
        (["--alpha-p", "-1"], "alpha-p"),
        (["--beta", "-0.1"], "beta"),
        (["--lr", "-0.1"], "lr"),
        (["--steps", "0"], "steps"),
        (["--loss", "hinge"], "hinge"),
        (["--loss", "cosine"], "cosine"),  # tian2021 comparison is L2 only
        (["--augment", "both"], "augment"),  # a halvagal2023 option
        (["--model", "halvagal2023", "--augment", "online"], "online"),
        (["--model", "bao2023", "--loss", "isoloss-cosine"], "isoloss-cosine"),
    ],
)
def test_bad_arguments_return_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], word: str
) -> None:
    out = tmp_path / "bad"
    assert main(["simulate", *argv, "--out", str(out)]) == 2
    assert not out.exists()
    assert word in capsys.readouterr().err


@pytest.mark.parametrize("model", ["halvagal2023", "bao2023"])
def test_other_models_are_dispatched(tmp_path: Path, model: str) -> None:
    out = tmp_path / model
    assert main(["simulate", "--model", model, "--steps", "40", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(record["simulated"]) == len(record["theory"]) > 0
    assert yaml.safe_load((out / "config.yaml").read_text())["model"] == model
    _png_is_drawn(out / "eigenvalues.png")


@pytest.mark.parametrize(("argv", "fixed"), [([], 1.0), (["--augment", "both"], 1 / 1.01)])
def test_halvagal2023_training_loss_names_and_augmented_views(tmp_path: Path, argv: list[str],
                                                              fixed: float) -> None:
    out = tmp_path / "iso"
    assert main(["simulate", "--model", "halvagal2023", "--loss", "isoloss-l2", "--lr", "0.05",
                 "--steps", "300", *argv, "--out", str(out)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["loss"] == "isoloss-l2"
    assert config["resolved"]["fixed_point"] == pytest.approx(fixed)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["theory"] == pytest.approx([fixed] * len(record["theory"]), rel=1e-3)


def test_a_model_registered_in_the_theory_registry_is_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(params: SimulationParams) -> Comparison:
        times = np.linspace(0.0, 1.0, 3)
        return Comparison("flat", "s_j", times, np.ones((3, 2)), np.ones((3, 2)))

    monkeypatch.setitem(THEORY_MODELS, "flat", TheoryModel(run, {"l2": half_of("l2")}, "flat"))
    out = tmp_path / "flat"
    assert main(["simulate", "--model", "flat", "--out", str(out)]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert main(["simulate", "--model", "flat2", "--out", str(out)]) == 2
