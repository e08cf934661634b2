"""The run's step-0 reference and its pre-collapse snapshot leave the training unchanged."""

from __future__ import annotations

from pathlib import Path

import torch

from _cli import overrides
from nocollapse.runio import read_metrics
from nocollapse.train import load_checkpoint, load_config, train

BASE = ["data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=128",
        "log_every=2", "eval.knn_k=20", "device.accelerator=cpu", "optim.lr=0.05", "seed=3",
        "device.threads=1", "learner.proj_hidden_dim=32", "learner.proj_dim=16",
        "learner.pred_hidden_dim=16", "monitor.every=2", "monitor.spectra=false",
        "monitor.tensorboard=false", "eval.embedding_points=0"]


def _config(out: Path, *extra: str):
    return load_config(None, overrides([*BASE, f"out={out}"], *extra))


def test_the_random_init_reference_changes_nothing_of_the_run(tmp_path: Path) -> None:
    with_ref = train(_config(tmp_path / "a", "epochs=2"), quiet=True).run_dir
    without = train(_config(tmp_path / "b", "epochs=2", "monitor.enabled=false"),
                    quiet=True).run_dir
    first = next(r for r in read_metrics(with_ref) if "effective_rank" in r)
    assert first["init_effective_rank"] > 1 and first["init_rankme"] > 1
    a, b = load_checkpoint(with_ref)["model"], load_checkpoint(without)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same weights, bit for bit
