"""Tracebacks and wrong answers that reached users (issue 18, section 5), through the CLI:
seeds, ``reproduce --doc``, the run lock, the epochs/max_steps resume messages,
``--data-dir`` on resume, ``--stop-on-collapse``'s checkpoint and summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli import TINY, assert_refused, copy_run, finished_run, run_cli
from nocollapse.runio import read_metrics
from nocollapse.train import load_checkpoint


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run planned by max_steps alone (epochs=0 max_steps=6: 1.5 epochs)."""
    return finished_run(tmp_path_factory, "capped", "epochs=0", "max_steps=6")


@pytest.mark.parametrize("command", [
    ["simulate", "--steps", "10"], ["phase", "--grid", "2"], ["reproduce", "tian2021-eigenmodes"]])
def test_negative_seeds_are_refused_leaving_no_folder(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_refused([*command, "--seed", "-1", "--out", str(tmp_path / "out")], capsys, tmp_path,
                   "--seed=-1 is not a seed")


def test_reproduce_checks_doc_before_running(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "docs").mkdir()
    assert_refused(["reproduce", "tian2021-eigenmodes", "--out", str(tmp_path / "out"),
                    "--doc", str(tmp_path / "docs")], capsys, tmp_path, "--doc", "is a folder")


def test_a_deleted_lock_file_lets_no_second_run_in(
        capped: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nocollapse.cli.main import main
    from nocollapse.train import loop

    run = copy_run(capped, tmp_path)
    real, answers = loop._Run._step, []

    def step(self: loop._Run, order: object) -> object:
        if self.state.step == 7:  # mid-run: someone deletes the lock file, then starts again
            (run / ".lock").unlink()
            answers.append(main(["train", "--resume", str(run), "max_steps=12", "--quiet"]))
        return real(self, order)  # type: ignore[arg-type]

    monkeypatch.setattr(loop._Run, "_step", step)
    code, err = run_cli(["train", "--resume", str(run), "max_steps=10", "--quiet"], capsys)
    assert answers == [2] and "is in use by another nocollapse run" in err
    assert code == 0 and load_checkpoint(run)["step"] == 10


def test_fewer_planned_steps_on_resume_are_refused_not_taken_as_a_raise(
        capped: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(capped, tmp_path)
    assert_refused(["train", "--resume", str(run), "--epochs", "1"], capsys, tmp_path,
                   "plan 4 steps, fewer than the 6 the run planned", "max_steps=10")


def test_a_finished_max_steps_run_names_max_steps_to_train_longer(
        capped: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nocollapse.cli.main import main

    run = copy_run(capped, tmp_path)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "already finished" in printed and f"--resume {run} max_steps=10" in printed
    assert "--epochs" not in printed
    assert main(["train", "--resume", str(run), "max_steps=10", "--quiet"]) == 0
    assert load_checkpoint(run)["step"] == 10


def test_resume_accepts_a_moved_data_dir(capped: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    run = copy_run(capped, tmp_path)
    code, err = run_cli(["train", "--resume", str(run), "--data-dir", str(tmp_path),
                         "max_steps=8", "--quiet"], capsys)
    assert code == 0, err
    assert load_checkpoint(run)["config"]["data"]["data_dir"] == str(tmp_path)


def test_stop_on_collapse_writes_a_checkpoint_at_the_stop_and_a_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code, err = run_cli(["train", *TINY, "learner.stop_gradient=false", "optim.lr=0.6",
                         "--epochs", "7", "--stop-on-collapse", "--out", str(out)], capsys)
    assert code == 2 and "collapse suspected at step" in err, err
    warned = [r["step"] for r in read_metrics(out / "warnings.jsonl")]
    saved = load_checkpoint(out)
    assert saved["step"] == warned[0] and not saved["finished"]  # not the epoch before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "collapse" and summary["step"] == warned[0]
    assert "collapse suspected" in summary["error"]
