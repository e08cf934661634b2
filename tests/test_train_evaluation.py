"""The end of a run: standard protocol on full splits, baselines, the budget-stop note, and
the k-NN learning curve every ``eval.knn_every`` steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nocollapse.cli.main import main
from nocollapse.errors import ConfigError
from nocollapse.report.build import build_report
from nocollapse.runio import read_metrics
from nocollapse.train import load_config, train

TINY = ["data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=128",
        "log_every=2", "eval.knn_k=20", "device.accelerator=cpu", "seed=1",
        "learner.proj_hidden_dim=32", "learner.proj_dim=16", "learner.pred_hidden_dim=16",
        "eval.probe_epochs=20"]


def test_final_table_uses_full_splits_with_baselines_and_the_curve(tmp_path: Path) -> None:
    config = load_config(None, [*TINY, f"out={tmp_path / 'run'}", "epochs=2",
                                "eval.knn_every=3", "eval.monitor_bank=200",
                                "eval.baselines=[raw_pixels, random_init, supervised]",
                                "eval.supervised_steps=20"])
    result = train(config, quiet=True)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    evaluation = summary["evaluation"]
    # digits: 1442 train / 355 test images, whatever subsets the run trained on
    assert (evaluation["train_images"], evaluation["test_images"]) == (1442, 355)
    assert set(evaluation["trained"]) == {"knn_k20", "linear_probe"}
    assert set(evaluation["baselines"]) == {"raw_pixels", "random_init", "supervised"}
    assert summary["knn_accuracy"] == evaluation["trained"]["knn_k20"]
    assert summary["random_knn_accuracy"] == evaluation["baselines"]["random_init"]["knn_k20"]
    # what train() returns agrees with summary.json (realdata reads the returned value)
    assert result.random_knn_accuracy == summary["random_knn_accuracy"]
    # and so does the result of resuming the finished run
    again = train(config, resume=True, quiet=True)
    assert again.random_knn_accuracy == summary["random_knn_accuracy"]
    assert summary["stopped"] == "completed" and summary["note"] is None
    curve = [r for r in read_metrics(result.run_dir) if "knn_accuracy" in r]
    assert [r["step"] for r in curve] == [0, 3, 6, 8]  # start, every 3 steps, final
    assert curve[-1]["final"] and curve[-1]["knn_accuracy"] == summary["knn_accuracy"]
    seconds = [r["train_seconds"] for r in curve]
    assert seconds == sorted(seconds) and seconds[0] == 0.0
    report = build_report([result.run_dir], tmp_path / "report")
    assert tmp_path / "report" / "learning_curves.png" in report.files


def test_budget_stopped_run_says_so_beside_its_figures(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "epochs=50", "time_budget_s=1e-6",
                 "eval.baselines=[raw_pixels]"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "time_budget" and summary["planned_steps"] == 200
    assert summary["note"] == f"stopped by time budget at step {summary['step']} of 200"
    printed = " ".join(capsys.readouterr().out.split())
    assert "stopped by time budget at step" in printed and "raw pixels" in printed


def test_evaluate_with_baselines_reads_them_from_the_cache(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *TINY, "epochs=1",
                 "eval.baselines=[raw_pixels, random_init]", "eval.supervised_steps=10"]) == 0
    assert main(["evaluate", str(out), "--baselines", "--probe-epochs", "20"]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    baselines = evaluation["baselines"]
    assert baselines["raw_pixels"]["cached"] and baselines["random_init"]["cached"]
    assert not baselines["supervised"]["cached"]  # the run did not measure it
    assert evaluation["knn_accuracy"] == evaluation["trained"]["knn_k20"]
    assert "supervised" in capsys.readouterr().out


def test_unknown_baseline_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="raw_pixels"):
        load_config(None, ["eval.baselines=[pixels]"])
