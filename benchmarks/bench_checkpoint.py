"""Checkpoint loading: what the safety checks cost (issue 10).

Run: ``.venv/bin/python benchmarks/bench_checkpoint.py``. Saves the state of a
CIFAR-10 ResNet-18 BYOL learner with SGD momentum (the size of a real run's
``last.pt``) and times, in one process: ``torch.load(weights_only=False)`` (the
unsafe load used before), ``torch.load(weights_only=True)`` alone, the CRC-32 pass
alone, and ``nocollapse.train.load_checkpoint`` (both), best of N calls.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import torch
from benchutil import best_seconds, print_table

from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.rundir.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    verify_checksums,
)


def _state() -> dict[str, object]:
    learner = SiameseLearner(learner_config("byol", backbone="resnet18"), 3, 32)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.1, momentum=0.9)
    learner(torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)).loss.backward()
    optimizer.step()
    return {"model": learner.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": {"step": 1}, "rng": rng_state(), "step": 1, "epoch": 0, "batch": 1,
            "loss_sum": torch.zeros(()), "window_steps": 1, "knn_history": [],
            "random_knn": None, "seconds": 0.0, "config": {"method": "byol"}}


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "last.pt"
    save_checkpoint(path, _state())
    data = path.read_bytes()
    rows = []
    cases = {
        "torch.load(weights_only=False) (before)":
            lambda: torch.load(io.BytesIO(data), weights_only=False),
        "torch.load(weights_only=True)": lambda: torch.load(io.BytesIO(data), weights_only=True),
        "CRC-32 of every member": lambda: verify_checksums(path),
        "load_checkpoint: CRC + weights_only (after)": lambda: load_checkpoint(path),
    }
    base = None
    for name, fn in cases.items():
        seconds = best_seconds(fn, repeats=5, warmup=1)
        base = base or seconds
        rows.append([name, f"{1000 * seconds:.0f} ms", f"{seconds / base:.2f}x"])
    print_table(f"loading a {len(data) / 2**20:.0f} MiB checkpoint",
                ["load", "best time", "vs before"], rows)


if __name__ == "__main__":
    main()
