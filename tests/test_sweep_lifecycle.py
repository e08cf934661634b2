"""The local sweep's workers die with their driver, on every signal, and the rerun is exact.

A real ``nocollapse sweep`` process (its own session, so the test can find every process it
started by process group) is stopped mid-cell by SIGKILL or SIGTERM of the driver's pid
alone, or by Ctrl-C (SIGINT to the foreground group, as a terminal sends it). Within a
few seconds no process of the group may be left and the second cell must never have
started; after SIGKILL or SIGTERM, running the same command again must give the
uninterrupted sweep's cells bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _cli import TINY, run_cli
from nocollapse.cli.main import main
from nocollapse.runio import CELL_OUTCOME_FILE
from nocollapse.sweep.run import TIMING_KEYS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads process groups from /proc")

CELL_ARGS = [*TINY, "epochs=3", "monitor.tensorboard=false", "monitor.spectra=false"]
FIRST, SECOND = "weight_decay=0.0005", "weight_decay=0.5"


def _sweep(out: Path) -> list[str]:
    return ["sweep", "--out", str(out), "--grid", "optim.weight_decay=5e-4,0.5", "--workers",
            "1", *CELL_ARGS]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lifecycle") / "whole"
    assert main(_sweep(out)) == 0
    return out


def _live_in_group(pgid: int) -> list[int]:
    """Pids of the processes of group ``pgid`` that are not zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(path: Path, driver: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert driver.poll() is None, "the sweep ended before the test could stop it"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _as_a_terminal_starts_it() -> None:
    """The driver starts as a shell's foreground job does: SIGINT at its default and no
    signal blocked, whatever this test process inherited or was left with (a signal ignored
    at exec stays ignored, and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _signal_state() -> str:
    """This process's ignored and blocked signal masks (Linux), for a failure message."""
    lines = Path("/proc/self/status").read_text().splitlines()
    wanted = [line for line in lines if line.startswith(("SigIgn", "SigBlk"))]
    return " ".join(line.replace("\t", "") for line in wanted)


def _stop_mid_cell(out: Path, how: str) -> tuple[int, list[int], str, bool]:
    """Start the sweep, stop it as ``how`` once its first cell has a checkpoint; returns the
    exit code, the processes left, stderr, and whether the sweep had written its table
    before the signal was sent (the tiny cells outran the test: no stop was tested)."""
    driver = subprocess.Popen([sys.executable, "-m", "nocollapse", *_sweep(out), "--quiet"],
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, preexec_fn=_as_a_terminal_starts_it)
    try:
        # the first cell's first checkpoint: its worker is mid-cell (two epochs to go)
        _wait_for(out / "cells" / FIRST / "checkpoints" / "last.pt", driver)
        sent = time.time()
        if how == "Ctrl-C":
            os.killpg(driver.pid, signal.SIGINT)
        else:
            os.kill(driver.pid, getattr(signal, how.split()[0]))
        code = driver.wait(timeout=30)
        deadline = time.monotonic() + 10  # a loaded CI machine reaps slowly
        while _live_in_group(driver.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _live_in_group(driver.pid)
    finally:
        for pid in _live_in_group(driver.pid):  # never leave a process behind, pass or fail
            os.kill(pid, signal.SIGKILL)
    stderr = driver.stderr.read().decode() if driver.stderr else ""
    table = out / "sweep.json"
    outran = code == 0 and table.exists() and table.stat().st_mtime < sent
    return code, left, stderr, outran


@pytest.mark.parametrize("how", ["SIGKILL driver", "SIGTERM driver", "Ctrl-C"])
def test_workers_die_with_the_driver_and_the_rerun_is_exact(
        uninterrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture, how: str) -> None:
    for attempt in range(3):
        out = tmp_path / f"killed{attempt}"
        code, left, stderr, outran = _stop_mid_cell(out, how)
        if not outran:  # a sweep that ended after the signal must have been stopped by it
            break
    else:
        pytest.fail(f"{how}: the tiny sweep finished before the signal three times")
    assert left == [], f"{how}: processes {left} outlived the sweep; its stderr: {stderr}"
    expected = {"SIGKILL driver": -signal.SIGKILL, "SIGTERM driver": 128 + signal.SIGTERM,
                "Ctrl-C": 130}[how]
    assert code == expected, f"{stderr} (test process: {_signal_state()})"
    if how != "SIGKILL driver":
        assert "Traceback" not in stderr and "run the same command again" in stderr, stderr
    assert not (out / "cells" / FIRST / CELL_OUTCOME_FILE).exists(), stderr  # stopped mid-cell
    assert not (out / "cells" / SECOND).exists(), stderr  # the queued cell never started
    if how == "Ctrl-C":
        return  # the rerun after it is the SIGTERM case's (the same handler)
    code, err = run_cli(_sweep(out), capsys)
    assert code == 0, err
    for name in (FIRST, SECOND):
        resumed = json.loads((out / "cells" / name / CELL_OUTCOME_FILE).read_text())
        whole = json.loads((uninterrupted / "cells" / name / CELL_OUTCOME_FILE).read_text())
        assert _without_timing(resumed) == _without_timing(whole)
        a = torch.load(out / "cells" / name / "checkpoints" / "last.pt", weights_only=True)
        b = torch.load(uninterrupted / "cells" / name / "checkpoints" / "last.pt",
                       weights_only=True)
        assert a["step"] == b["step"]
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}
