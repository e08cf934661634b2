"""The evaluation's progress: every phase announced, a line every few seconds while it runs
and its time at the end when the output is not a terminal; nothing when quiet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from _cli import TINY, run_cli
from nocollapse.evaluate import EvalProgress


def test_phase_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 4.0, 11.0, 15.0, 23.0, 30.0])
    monkeypatch.setattr("nocollapse.evaluate.progress.time.monotonic", lambda: next(clock))
    stream = io.StringIO()  # not a terminal, as a log file or CI
    with EvalProgress(stream=stream, every_s=10.0).phase("k-NN", 40, "queries") as phase:
        for _ in range(4):
            phase.advance(10)  # t = 4 (not due), 11 (due), 15 (not), 23 (the last: no line)
    assert stream.getvalue().splitlines() == ["evaluate: k-NN (40 queries) ...",
                                              "evaluate: k-NN 20/40 queries, 11 s",
                                              "evaluate: k-NN done in 30 s"]
    monkeypatch.undo()
    quiet = io.StringIO()
    with EvalProgress(quiet=True, stream=quiet).phase("probe", 3) as phase:
        phase.advance(3)
    assert quiet.getvalue() == ""


def test_train_shows_each_phase_and_the_command_for_the_supervised_bound(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *[a for a in TINY if a != "--quiet"], "epochs=1",
            "eval.baselines=[raw_pixels, random_init]", "eval.supervised_steps=5",
            "eval.probe_epochs=5"]
    code, err = run_cli(args, capsys)
    assert code == 0, err
    for phase in ("trained encoder: train features", "trained encoder: k-NN",
                  "trained encoder: linear probe", "raw pixels: k-NN",
                  "random init: train features", "random init: linear probe"):
        assert f"evaluate: {phase} done in" in err, err
    evaluation = json.loads((out / "summary.json").read_text())["evaluation"]
    command = f"nocollapse evaluate {out} --baselines"
    assert set(evaluation["baselines"]) == {"raw_pixels", "random_init"}
    assert evaluation["pending_baselines"] == {"supervised": command}
    # measured on request, then read from the cache by the next run with the same data
    assert run_cli(["evaluate", str(out), "--baselines", "--probe-epochs", "5"], capsys)[0] == 0
    again = tmp_path / "again"
    assert run_cli([*args[:2], str(again), *args[3:]], capsys)[0] == 0
    evaluation = json.loads((again / "summary.json").read_text())["evaluation"]
    assert "pending_baselines" not in evaluation
    assert evaluation["baselines"]["supervised"]["cached"]
