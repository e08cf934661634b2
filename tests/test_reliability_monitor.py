"""``nocollapse.Monitor`` keeps to its own runs: resume refuses a training run's folder, and
one Monitor writes a folder at a time (issue 31)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console

from _cli import tree
from nocollapse import Monitor
from nocollapse.errors import ConfigError
from nocollapse.runio.lock import RunLock


def _quiet() -> Console:
    return Console(quiet=True)


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(32, 8, generator=generator), torch.randn(32, 8, generator=generator)


def _train_run(root: Path) -> Path:
    """The files a finished `nocollapse train` run leaves (no `command: monitor`)."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"weights")
    (run / "config.yaml").write_text("method: byol\nseed: 0\n")
    (run / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    (run / "summary.json").write_text('{"step": 4, "stopped": "completed"}\n')
    return run


@pytest.mark.parametrize("config", ["method: byol\nseed: 0\n", "command: simulate\n", None])
def test_resume_refuses_a_run_a_monitor_did_not_write(tmp_path: Path,
                                                      config: str | None) -> None:
    run = _train_run(tmp_path)
    if config is None:
        (run / "config.yaml").unlink()
    elif "simulate" in config:
        (run / "checkpoints" / "last.pt").unlink()
        (run / "checkpoints").rmdir()
        (run / "config.yaml").write_text(config)
    before = tree(tmp_path)
    with pytest.raises(ConfigError, match=r"continues only a Monitor's own run"):
        Monitor(run, resume=True, console=_quiet())
    assert tree(tmp_path) == before


def test_one_monitor_writes_a_folder_at_a_time(tmp_path: Path) -> None:
    first = Monitor(tmp_path / "run", every=1, stop_gradient=False, console=_quiet())
    first.observe(0, *_views())
    with pytest.raises(ConfigError, match="in use by another nocollapse run"):
        Monitor(tmp_path / "run", resume=True, console=_quiet())
    lock = None
    try:
        first.close()
        again = Monitor(tmp_path / "run", every=1, resume=True, console=_quiet())
        with pytest.raises(ConfigError, match="in use"):
            lock = RunLock(tmp_path / "run")  # a `nocollapse train` into it meanwhile
        again.close()
    finally:
        if lock is not None:
            lock.release()
    RunLock(tmp_path / "run").release()  # closed: free for whoever comes next
