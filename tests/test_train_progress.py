"""Progress output: plain lines with images/s and ETA when the output is not a terminal."""

from __future__ import annotations

import io
import re

import pytest
import torch

from nocollapse.train.progress import TrainProgress, run_header


def test_lines_give_source_images_per_s_and_eta_off_a_terminal(monkeypatch) -> None:
    clock = iter([0.0, 10.0, 20.0, 30.0, 40.0])
    monkeypatch.setattr("nocollapse.train.progress.time.monotonic", lambda: next(clock))
    stream = io.StringIO()  # not a terminal, as a log file or CI
    with TrainProgress(100, 0, images_per_step=128, every_s=15.0, stream=stream) as bar:
        bar.show({"loss": 1.25, "images_per_s": 0.0})
        for _ in range(4):
            bar.advance(10)  # t = 10 (not due), 20 (due), 30 (not), 40 (due)
    lines = stream.getvalue().splitlines()
    assert lines == ["train step 20/100 loss 1.2500 128 images/s ETA 0:01:20",
                     "train step 40/100 loss 1.2500 128 images/s ETA 0:01:00"]


def test_quiet_prints_nothing_and_the_last_step_always_prints() -> None:
    stream = io.StringIO()
    with TrainProgress(3, 0, quiet=True, stream=stream) as bar:
        bar.header("header")
        bar.advance(3)
    assert stream.getvalue() == ""
    with TrainProgress(3, 0, images_per_step=4, every_s=1e9, stream=stream) as bar:
        bar.header("header")
        bar.advance(3)
    assert re.fullmatch(r"header\ntrain step 3/3 loss nan \d+ images/s ETA 0:00:00\n",
                        stream.getvalue())


def test_run_header_names_the_thread_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    line = run_header("simsiam", "default", 20000, 2340, "cpu")
    assert f"{torch.get_num_threads()} torch threads, fixed (OMP_WAIT_POLICY=PASSIVE)" in line
    monkeypatch.delenv("OMP_WAIT_POLICY")
    line = run_header("simsiam", "default", 20000, 2340, "cpu", tuned=True)
    assert "torch threads, tuned by measurement" in line
    assert "(OMP_WAIT_POLICY=runtime default)" in line
    assert "simsiam on default (20000 images), 2340 steps, device cpu" in line
