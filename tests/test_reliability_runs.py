"""No run can delete results: an interrupted extension, a fresh run into someone else's
directory, a refused resume, a kill before ``summary.json``, SIGTERM (issue 18, section 2);
a stopped run's files end at its checkpoint, and a resume from non-finite weights or an
extension that diverges leaves the run as it was (issue 31).

Through the real CLI, in-process on tiny data (one epoch is 4 steps).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
from pathlib import Path

import pytest
import torch

from _cli import TINY, assert_refused, copy_run, finished_run, run_cli, tree
from nocollapse.cli.main import main
from nocollapse.rundir.checkpoint import save_checkpoint
from nocollapse.runio import read_metrics
from nocollapse.train import checkpoint_path, load_checkpoint


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run (4 steps); tests work on copies."""
    return finished_run(tmp_path_factory, "finished")


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int,
                  signum: int | None = None) -> None:
    """Ctrl-C (or the signal ``signum``) when the loop is about to take step ``step + 1``."""
    from nocollapse.train import loop

    real = loop._Run._step

    def step_or_stop(self: loop._Run, order: object) -> object:
        if self.state.step == step:
            if signum is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
        return real(self, order)  # type: ignore[arg-type]

    monkeypatch.setattr(loop._Run, "_step", step_or_stop)


def _continue_command(err: str) -> list[str]:
    return shlex.split(err.split("Continue with: nocollapse ", 1)[1].strip())


def _finals(run: Path) -> list[dict]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r.get("final")]


def test_ctrl_c_while_extending_a_finished_run_cuts_nothing_and_names_the_extension(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(finished, tmp_path)
    before = tree(run)
    _interrupt_at(monkeypatch, 6)  # step 6 of 12: before the extension's first checkpoint
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"], capsys)
    assert code == 130 and "Traceback" not in err
    after = tree(run)
    for name in ("summary.json", "config.yaml", "checkpoints/last.pt"):
        assert after[name] == before[name], name  # the finished run is all there
    assert len(_finals(run)) == 1
    command = _continue_command(err)
    assert command[-2:] == ["--epochs", "3"], err
    monkeypatch.undo()
    code, err = run_cli([*command, "--quiet"], capsys)
    assert code == 0, err
    assert load_checkpoint(run)["step"] == 12
    finals = _finals(run)
    assert [r["step"] for r in finals] == [12]  # the old end went with the new checkpoint
    assert json.loads((run / "summary.json").read_text())["step"] == 12


def test_extension_retires_the_old_end_only_with_its_first_checkpoint(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(finished, tmp_path)
    _interrupt_at(monkeypatch, 10)  # after the epoch-2 checkpoint (step 8)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"], capsys)
    assert code == 130
    assert load_checkpoint(run)["step"] == 8
    assert not (run / "summary.json").exists() and _finals(run) == []
    assert load_checkpoint(run)["config"]["epochs"] == 3
    # the lines of steps 6 and 8 are there once; step 10's, past the checkpoint, went
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r] == [
        2, 4, 6, 8]
    monkeypatch.undo()
    code, err = run_cli([*_continue_command(err), "--quiet"], capsys)
    assert code == 0, err
    assert [r["step"] for r in _finals(run)] == [12]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r] == [
        2, 4, 6, 8, 10, 12]


def test_a_finished_run_whose_checkpoints_were_removed_is_not_overwritten(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    shutil.rmtree(run / "checkpoints")
    assert_refused(["train", *TINY, "--epochs", "1", "--out", str(run)], capsys, tmp_path,
                   "is not empty", "metrics.jsonl", "summary.json")


def test_a_run_killed_before_its_first_checkpoint_is_restarted_only_by_its_own_command(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nocollapse.cli.main import build_parser
    from nocollapse.cli.train import build_config
    from nocollapse.runio import write_config

    run = copy_run(finished, tmp_path)
    for path in run.iterdir():  # keep what a run killed before its first checkpoint has
        if path.name not in ("config.yaml", "metrics.jsonl", "spectra.jsonl", ".lock"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    command = ["train", *TINY, "--epochs", "1", "--out", str(run)]
    write_config(run, build_config(build_parser().parse_args(command)).to_dict())
    assert_refused([*command, "--method", "byol"], capsys, tmp_path,
                   "holds no run of this configuration", "config.yaml")
    code, err = run_cli(command, capsys)
    assert code == 0, err
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r] == [2, 4]


def test_a_simulate_output_folder_is_not_overwritten_by_a_training_run(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sim"
    code, err = run_cli(["simulate", "--steps", "50", "--out", str(out)], capsys)
    assert code == 0, err
    assert_refused(["train", *TINY, "--epochs", "1", "--out", str(out)], capsys, tmp_path,
                   "is not empty", "config.yaml")


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"step": -1}, "step=-1, not a count"),
    ({"step": 3}, "no position in epochs of 4 steps"),
    ({"batch": 7, "step": 11, "epoch": 1}, "no position in epochs of 4 steps"),
])
def test_a_refused_resume_changes_nothing(
        changes: dict, phrase: str, finished: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    saved = load_checkpoint(run)
    save_checkpoint(checkpoint_path(run), {**saved, **changes, "finished": False})  # valid CRC
    assert_refused(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys,
                   tmp_path, "does not fit this run", phrase)


def test_a_resume_with_weights_of_another_shape_changes_nothing(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    saved = load_checkpoint(run)
    model = dict(saved["model"])
    name = next(key for key in model if key.endswith("weight"))
    model[name] = model[name][:1]
    save_checkpoint(checkpoint_path(run), {**saved, "model": model, "finished": False})
    assert_refused(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys,
                   tmp_path, "does not fit this run", "size mismatch")


def test_a_kill_before_summary_json_is_repaired_by_resume(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()  # killed between the final checkpoint and the summary
    before = tree(run)
    code, _ = run_cli(["train", "--resume", str(run), "--quiet"], capsys)
    assert code == 0
    assert json.loads((run / "summary.json").read_text()) == summary
    after = tree(run)
    after.pop("summary.json")
    assert {k: v for k, v in after.items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"}  # nothing else changed
    code, _ = run_cli(["train", "--resume", str(run), "--quiet"], capsys)
    assert code == 0 and tree(run)["summary.json"] == after_summary(run)


def after_summary(run: Path) -> tuple[int, bytes]:
    return (run / "summary.json").stat().st_mode, (run / "summary.json").read_bytes()


def test_sigterm_is_handled_as_ctrl_c(finished: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(finished, tmp_path)
    handler = signal.getsignal(signal.SIGTERM)
    _interrupt_at(monkeypatch, 10, signal.SIGTERM)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"], capsys)
    assert code == 128 + signal.SIGTERM and "Traceback" not in err
    assert f"Continue with: nocollapse train --resume {run} --epochs 3" in err
    assert signal.getsignal(signal.SIGTERM) is handler  # put back
    assert load_checkpoint(run)["step"] == 8


TIMING = ("images_per_s", "train_seconds")  # wall-clock figures differ run to run


def _untimed(run: Path, name: str = "metrics.jsonl") -> list[dict] | None:
    path = run / name
    if not path.exists():
        return None
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(path)]


def _without_lock(found: dict) -> dict:
    return {k: v for k, v in found.items() if k != ".lock"}


@pytest.fixture(scope="module")
def extended(finished: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``finished`` trained to 3 epochs (12 steps) without a stop: what a stopped one must
    end up as."""
    run = copy_run(finished, tmp_path_factory.mktemp("extended"))
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    return run


@pytest.mark.parametrize("stop", ["ctrl-c before the first new checkpoint",
                                  "ctrl-c after it", "kill -9 before it, between lines",
                                  "kill -9 before it, mid-line"])
def test_a_stopped_extension_ends_at_its_checkpoint_and_resumes_exactly(
        stop: str, finished: Path, extended: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = [r["step"] for r in read_metrics(extended / "metrics.jsonl") if "loss" in r]
    assert steps == [2, 4, 6, 8, 10, 12] and [r["step"] for r in _finals(extended)] == [12]
    run = copy_run(finished, tmp_path)
    before = tree(run)
    if stop.startswith("kill -9"):  # what the extension had logged: step 6's line, or part
        line = (extended / "metrics.jsonl").read_text().splitlines()[3]
        assert json.loads(line)["step"] == 6
        with open(run / "metrics.jsonl", "a") as handle:
            handle.write(line + "\n" if stop.endswith("between lines") else line[:20])
    else:
        _interrupt_at(monkeypatch, 6 if stop.endswith("before the first new checkpoint")
                      else 10)
        code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"],
                            capsys)
        assert code == 130 and "Traceback" not in err, err
        monkeypatch.undo()
        saved = load_checkpoint(run)
        # metrics.jsonl and warnings.jsonl end where the checkpoint does
        assert max(r["step"] for r in read_metrics(run / "metrics.jsonl")) == saved["step"]
        assert all(r["step"] <= saved["step"] for r in _untimed(run, "warnings.jsonl") or [])
        if saved["step"] == 4:  # the finished run, as it was
            assert _without_lock(tree(run)) == _without_lock(before)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"], capsys)
    assert code == 0, err
    assert _untimed(run) == _untimed(extended)
    for name in ("spectra.jsonl", "warnings.jsonl"):
        assert _untimed(run, name) == _untimed(extended, name), name
    assert json.loads((run / "summary.json").read_text())["step"] == 12


def test_ctrl_c_after_a_warning_cuts_it_with_the_lines_past_the_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # no stop-gradient at lr 0.6: the monitor warns (step 24 here) after the checkpoint of
    # epoch 4 (step 16), the last before the run's end (step 28)
    args = [*TINY, "learner.stop_gradient=false", "optim.lr=0.6", "checkpoint_every=4",
            "--epochs", "7"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    code, err = run_cli(["train", *args, "--out", str(whole)], capsys)
    assert code == 0, err
    warned = [r["step"] for r in read_metrics(whole / "warnings.jsonl")]
    assert len(warned) == 1 and 16 < warned[0] < 28, warned
    _interrupt_at(monkeypatch, warned[0])  # the warning is written, the next step is not
    code, err = run_cli(["train", *args, "--out", str(split)], capsys)
    assert code == 130 and load_checkpoint(split)["step"] == 16, err
    assert not _untimed(split, "warnings.jsonl")
    assert max(r["step"] for r in read_metrics(split / "metrics.jsonl")) == 16
    monkeypatch.undo()
    code, err = run_cli(["train", "--resume", str(split), "--quiet"], capsys)
    assert code == 0, err
    for name in ("metrics.jsonl", "spectra.jsonl", "warnings.jsonl"):
        assert _untimed(split, name) == _untimed(whole, name), name


@pytest.mark.parametrize("where", ["model", "optimizer"])
def test_a_resume_from_non_finite_weights_is_refused_and_changes_nothing(
        where: str, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    saved = load_checkpoint(run)
    if where == "model":
        model = dict(saved["model"])
        name = next(key for key in model if key.endswith("weight"))
        model[name] = model[name].clone()
        model[name].view(-1)[0] = float("nan")
        damaged = {**saved, "model": model}
    else:
        optimizer = dict(saved["optimizer"])
        state = {index: dict(values) for index, values in optimizer["state"].items()}
        index = next(iter(state))
        state[index]["momentum_buffer"] = state[index]["momentum_buffer"].clone()
        state[index]["momentum_buffer"].view(-1)[-1] = float("inf")
        damaged = {**saved, "optimizer": {**optimizer, "state": state}}
    save_checkpoint(checkpoint_path(run), damaged)  # a valid CRC, still finished
    assert_refused(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys,
                   tmp_path, "NaN or infinite value(s) in " + where, "Nothing was changed")


def test_an_extension_that_diverges_before_its_first_checkpoint_changes_nothing(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    saved = load_checkpoint(run)
    model = dict(saved["model"])
    name = next(key for key in model if key.endswith("weight"))
    model[name] = torch.full_like(model[name], 3e38)  # finite, but the first layer overflows
    save_checkpoint(checkpoint_path(run), {**saved, "model": model})
    before = tree(run)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "NaN or infinite at step" in err, err
    assert _without_lock(tree(run)) == _without_lock(before)
