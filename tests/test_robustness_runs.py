"""One run per directory, and a ``--resume`` that cannot silently change or duplicate a run.

Through the real CLI (in-process, tiny data): the resume rules, the finished-run
check, the run lock, stale temporaries, symlinks planted in a run directory, a
full disk during a checkpoint, Ctrl-C, and a kill between an epoch's spectra line
and its checkpoint (a real ``kill -9`` in a child process).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _cli import TINY, assert_refused, run_cli, tree
from nocollapse.cli.train import _free_run_dir
from nocollapse.runio import read_metrics
from nocollapse.train import checkpoint_path, load_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run (4 steps); tests work on copies."""
    from nocollapse.cli.main import build_parser, main
    from nocollapse.cli.train import build_config
    from nocollapse.runio import write_config

    out = tmp_path_factory.mktemp("trained") / "run"
    out.mkdir()
    command = ["train", *TINY, "--epochs", "1", "--out", str(out)]
    # what the same command killed before its first checkpoint left: its config, then lines
    write_config(out, build_config(build_parser().parse_args(command)).to_dict())
    for name in ("metrics.jsonl", "spectra.jsonl", "warnings.jsonl"):
        (out / name).write_text('{"step": 99, "epoch": 99, "stale": true}\n')
    assert main(command) == 0
    return out


def test_fresh_run_drops_what_a_run_killed_before_its_first_checkpoint_left(
        trained: Path) -> None:
    for name in ("metrics.jsonl", "spectra.jsonl", "warnings.jsonl"):
        assert "stale" not in ((trained / name).read_text() if (trained / name).exists() else "")
    assert next(r for r in read_metrics(trained) if "loss" in r)["step"] == 2
    assert all(r["step"] <= 4 for r in read_metrics(trained))


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True))


def test_resume_refuses_changes_naming_keys_and_stored_values(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _copy(trained, tmp_path)
    assert_refused(["train", "--resume", str(run), "--method", "byol", "seed=4",
                    "optim.lr=0.3"], capsys, tmp_path,
                   "method='byol' (the run has 'simsiam')", "seed=4 (the run has 0)",
                   "optim.lr=0.3 (the run has 0.12)")
    assert_refused(["train", "--resume", str(run), "--data", "mnist"], capsys, tmp_path,
                   "data.name='mnist' (the run has 'digits')")
    assert_refused(["train", "--resume", str(run), "learner.proj_dim=32"], capsys, tmp_path,
                   "learner.proj_dim=32 (the run has 16)")
    assert_refused(["train", "--resume", str(run), "--epochs", "2", "--out",
                    str(tmp_path / "elsewhere")], capsys, tmp_path, "stays in its own directory")


def test_resume_takes_the_config_from_the_checkpoint(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _copy(trained, tmp_path)
    (run / "config.yaml").unlink()  # the library defaults (batch 256, ...) must not come back
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "2", "time_budget_s=600",
                         "device.threads=1", "--quiet"], capsys)
    assert code == 0, err
    saved = load_checkpoint(run)
    assert saved["step"] == 8 and saved["config"]["data"]["batch_size"] == 64
    assert saved["config"]["time_budget_s"] == 600
    assert (run / "config.yaml").is_file()
    # the first run's end is no longer the end: one final k-NN line, at the new last step
    assert [r["step"] for r in read_metrics(run) if r.get("final")] == [8]


def test_resume_of_a_finished_run_changes_nothing(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _copy(trained, tmp_path)
    before = tree(run)
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    from nocollapse.cli.main import main

    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    assert f"the run in {run} is already finished (step 4" in capsys.readouterr().out
    assert tree(run) == before
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == stamps
    assert sum(1 for r in read_metrics(run) if r.get("final")) == 1


def test_second_run_into_a_locked_directory_is_refused_with_the_holders_pid(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(run / ".lock")!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{{os.getpid()}}\\n".encode())
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert_refused(["train", *TINY, "--epochs", "1", "--out", str(run)], capsys, tmp_path,
                       f"in use by another nocollapse run (pid {holder.pid})")
        # without --out, a rerun picks the next free default directory instead
        assert _free_run_dir(run) == tmp_path / "run-2"
    finally:
        holder.communicate("")
    assert _free_run_dir(run) == run  # the holder is gone: its lock went with it


def test_stale_temporaries_are_removed_on_resume(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _copy(trained, tmp_path)
    stale = [run / "checkpoints" / ".last.pt.abc123.tmp", run / ".summary.json.x1.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys)
    assert code == 0, err
    assert not any(path.exists() for path in stale)


@pytest.mark.parametrize("planted", ["spectra.jsonl", "metrics.jsonl", "checkpoints"])
def test_symlink_out_of_the_run_directory_is_refused(
        planted: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / planted).symlink_to(outside if planted == "checkpoints" else outside / "victim")
    assert_refused(["train", *TINY, "--epochs", "1", "--out", str(run)], capsys, tmp_path,
                   "is a symlink")
    assert (outside / "victim").read_text() == "keep me" and len(list(outside.iterdir())) == 1


def test_report_replaces_a_symlinked_figure_instead_of_writing_through_it(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _copy(trained, tmp_path)
    victim = tmp_path / "victim.png"
    victim.write_text("keep me")
    (run / "report").mkdir()
    (run / "report" / "loss.png").symlink_to(victim)
    code, err = run_cli(["report", str(run)], capsys)
    assert code == 0, err
    assert victim.read_text() == "keep me"
    loss = run / "report" / "loss.png"
    assert not loss.is_symlink() and loss.read_bytes().startswith(b"\x89PNG")


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = _copy(trained, tmp_path)
    good = checkpoint_path(run).read_bytes()

    real_fsync = os.fsync

    def full(fd: int) -> None:  # the disk fills up while a checkpoint is written
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("nocollapse.runio.files.os.fsync", full)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "No space left on device" in err and "previous checkpoint" in err
    assert checkpoint_path(run).read_bytes() == good
    assert not list((run / "checkpoints").glob("*.tmp"))


def test_ctrl_c_names_the_resume_command(trained: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = _copy(trained, tmp_path)
    from nocollapse.train import loop

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", interrupt)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"], capsys)
    assert code == 130
    assert f"nocollapse train --resume {run}" in err and "Traceback" not in err


KILL_AT_SECOND_SAVE = """
import os, signal, sys
sys.path[:0] = [{src!r}, {tests!r}]
from _cli import TINY
from nocollapse.cli.main import main
from nocollapse.train import loop

real, calls = loop.save_checkpoint, []

def save(path, state):
    calls.append(path)
    if len(calls) == 2:  # epoch 2: its spectra line is written, its checkpoint is not
        with open(os.path.join({out!r}, "metrics.jsonl"), "a") as handle:
            handle.write('{{"step": 9, "lo')  # and a line cut short by the kill
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, state)

loop.save_checkpoint = save
main(["train", *TINY, *{args!r}, "--out", {out!r}])
"""

# No stop-gradient at lr 0.3: the effective rank falls from ~13 (step 2) to below a
# quarter of that and the monitor's rank_drop test warns (step 26 here), long after the
# first checkpoint (step 4), so a resume that forgot the run's highest rank would not.
COLLAPSING = ["learner.stop_gradient=false", "optim.lr=0.6", "--epochs", "7"]
RUNS = {"healthy": ["--epochs", "3"], "collapsing": COLLAPSING,
        "stop_on_collapse": [*COLLAPSING, "monitor.stop_on_collapse=true"]}


def _lines(run: Path) -> list[dict]:
    timing = ("images_per_s", "train_seconds")  # wall-clock figures differ run to run
    return [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(run)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(RUNS))
def test_kill_between_spectra_and_checkpoint_then_resume_equals_an_uninterrupted_run(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = RUNS[kind]
    whole, split = tmp_path / "whole", tmp_path / "split"
    code, whole_err = run_cli(["train", *TINY, *args, "--out", str(whole)], capsys)
    assert code == (2 if kind == "stop_on_collapse" else 0), whole_err
    script = KILL_AT_SECOND_SAVE.format(src=str(SRC), tests=str(TESTS), out=str(split),
                                        args=args)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert load_checkpoint(split)["step"] == 4
    assert [r["epoch"] for r in read_metrics(split / "spectra.jsonl")] == [1, 2]
    resume_code, err = run_cli(["train", "--resume", str(split), "--quiet"], capsys)
    assert resume_code == code, err
    warned = [r["step"] for r in read_metrics(whole / "warnings.jsonl")]
    if kind == "healthy":
        assert warned == []
    else:  # the case really warns, after the checkpoint the resume starts from
        assert len(warned) == 1 and warned[0] > 4, warned
    for name in ("spectra.jsonl", "warnings.jsonl"):
        a, b = whole / name, split / name
        assert (a.read_bytes() if a.exists() else None) == (b.read_bytes() if b.exists() else None)
    assert _lines(whole) == _lines(split)
    if kind == "stop_on_collapse":  # stopped at the warning's step, resumed or not
        for message in (whole_err, err):
            assert f"collapse suspected at step {warned[0]}" in message, message
        assert max(r["step"] for r in read_metrics(split)) < warned[0]
        return
    a, b = load_checkpoint(whole)["model"], load_checkpoint(split)["model"]
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_resume_of_a_checkpoint_written_before_a_key_existed() -> None:
    # a key a later version added (with its default) is no change; another value still is
    from nocollapse.errors import ConfigError
    from nocollapse.train.config import load_config
    from nocollapse.train.setup import check_against_stored

    config = load_config(None, [])
    current = config.to_dict()
    older = {**current, "eval": {k: v for k, v in current["eval"].items()
                                 if k != "linear_probe"}}
    check_against_stored(config, older, "run")
    changed = load_config(None, ["eval.linear_probe=false"])
    with pytest.raises(ConfigError, match=r"eval\.linear_probe=False"):
        check_against_stored(changed, older, "run")
