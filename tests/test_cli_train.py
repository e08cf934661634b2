"""``nocollapse train`` and ``nocollapse evaluate`` in-process on a tiny budget."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from nocollapse.cli.main import main
from nocollapse.cli.train import build_config, register
from nocollapse.runio import read_config, read_metrics
from nocollapse.train import load_checkpoint

TINY = ["--data", "digits", "--epochs", "2", "--quiet", "data.batch_size=64", "data.subset=256",
        "data.test_subset=128", "eval.knn_k=10", "log_every=2", "time_budget_s=null",
        "learner.proj_hidden_dim=32", "learner.proj_dim=16", "learner.pred_hidden_dim=16"]


def test_train_writes_the_run_directory_and_evaluate_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    config = read_config(out)
    assert config["data"]["name"] == "digits" and config["epochs"] == 2
    assert config["method"] == "simsiam"  # the CPU default fills every other key
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == [2, 4, 6, 8]
    assert load_checkpoint(out)["step"] == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "completed" and 0 <= summary["knn_accuracy"] <= 1
    assert summary["random_knn_accuracy"] is not None  # the CPU default compares to random init
    assert main(["evaluate", str(out), "--probe-epochs", "5"]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert {"knn_accuracy", "linear_accuracy"} <= set(evaluation)


def test_resume_extends_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert load_checkpoint(out)["step"] == 12
    assert read_config(out)["epochs"] == 3


def test_unknown_key_exits_2_naming_the_closest(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--out", str(tmp_path), "optim.momentun=0.5"]) == 2
    assert "optim.momentum" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "words"), [
    (["learner.foo=1"], ["unknown learner option 'foo'"]),
    (["--method", "byl"], ["unknown method 'byl'", "did you mean 'byol'"]),
    (["learner.predictor=cubic"], ["unknown predictor 'cubic'"]),
    (["learner.eps=-1", "--method", "directpred"], ["predictor_options.eps=-1"]),
])
def test_bad_learner_section_exits_2_and_leaves_nothing_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], words: list[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_resume_without_checkpoint_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--resume", str(tmp_path), "--quiet"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_rerun_without_out_picks_a_fresh_directory(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = [*TINY, "--epochs", "1"]
    assert main(["train", *tiny]) == 0
    assert main(["train", *tiny]) == 0
    assert load_checkpoint(tmp_path / "runs" / "default")["step"] == 4
    assert load_checkpoint(tmp_path / "runs" / "default-2")["step"] == 4


def test_missing_data_folder_exits_2_and_writes_nothing(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code = main(["train", "--quiet", "--data", "cifar10", "--data-dir", str(tmp_path / "none"),
                 "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "cifar-10-batches-py" in capsys.readouterr().err


def test_overrides_may_come_after_options(tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    # routed to the overrides (not refused by argparse), then checked as config keys
    code = main(["train", "--quiet", "--out", str(tmp_path / "x"), "optim.weight_decy=0.1"])
    assert code == 2 and "did you mean optim.weight_decay" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "x"), "--bogus-flag"])


def test_flags_and_overrides_win_over_the_config_file(tmp_path: Path) -> None:
    # configs/fmnist_quality.yaml documents `--method byol`: the file must not undo it
    config_file = tmp_path / "c.yaml"
    config_file.write_text("method: simsiam\noptim:\n  lr: 0.06\nepochs: 30\nout: runs/q\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--config", str(config_file), "--method", "byol",
                              "--epochs", "3", "optim.lr=0.2", f"out={tmp_path / 'r'}"])
    config = build_config(args)
    assert (config.method, config.epochs, config.optim.lr) == ("byol", 3, 0.2)
    assert config.out == str(tmp_path / "r")
    args = parser.parse_args(["train", "--config", str(config_file)])
    config = build_config(args)
    assert (config.method, config.epochs, config.optim.lr) == ("simsiam", 30, 0.06)
