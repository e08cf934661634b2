"""``nocollapse.Monitor`` keeps to its own runs: resume refuses a training run's folder, and
one Monitor writes a folder at a time (issue 31)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from _cli import tree
from nocollapse import Monitor
from nocollapse.errors import ConfigError
from nocollapse.monitor.inputs import MonitorInputError
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


@pytest.mark.parametrize("options, phrase", [
    ({"every": "5"}, "every='5' must be a whole number"),
    ({"every": 2.5}, "every=2.5 must be a whole number"),
    ({"every": True}, "every=True must be a whole number"),
    ({"stop_on_collapse": "yes"}, "stop_on_collapse='yes' must be a bool"),
    ({"config": {}}, "config is a dict; pass a MonitorConfig"),
])
def test_wrong_typed_options_are_refused_before_the_folder_is_made(
        tmp_path: Path, options: dict, phrase: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(phrase)):
        Monitor(tmp_path / "run", console=_quiet(), **options)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("make", [lambda z: z.to_sparse(), lambda z: z.to("meta")])
def test_sparse_or_meta_views_are_refused_by_name(tmp_path: Path, make: Any) -> None:
    monitor = Monitor(tmp_path / "run", every=1, stop_gradient=False, console=_quiet())
    z1, z2 = _views()
    with pytest.raises(MonitorInputError, match="pass the embeddings as a dense tensor"):
        monitor.observe(0, make(z1), make(z2))
    monitor.close()


def test_a_garbage_state_and_a_closed_monitor_are_refused(tmp_path: Path) -> None:
    monitor = Monitor(tmp_path / "run", every=1, stop_gradient=False, console=_quiet())
    monitor.observe(0, *_views())
    with pytest.raises(MonitorInputError, match=r"lacks \['core'"):
        monitor.load_state_dict({"x": 1})  # type: ignore[arg-type]
    monitor.close()
    summary = (tmp_path / "run" / "summary.json").read_bytes()
    with pytest.raises(MonitorInputError, match="is closed"):
        monitor.end_epoch(1)
    assert (tmp_path / "run" / "summary.json").read_bytes() == summary
