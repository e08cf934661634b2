"""The run's step-0 reference and its pre-collapse snapshot leave the training unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from _cli import overrides
from nocollapse.errors import ConfigError
from nocollapse.rundir.checkpoint import presuspect_path
from nocollapse.runio import read_metrics
from nocollapse.train import checkpoint_path, load_checkpoint, load_config, train

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


def _collapsing(out: Path, *extra: str):
    # every log past step 4 is suspect (collapse level > 0): the snapshot is step 4's state
    return _config(out, "epochs=3", "monitor.collapse_threshold=0.0", "monitor.grace_steps=6",
                   "eval.knn_every=4", *extra)


def test_the_presuspect_snapshot_is_the_state_at_the_log_before_the_first_suspect_one(
        tmp_path: Path) -> None:
    run = train(_collapsing(tmp_path / "run"), quiet=True).run_dir
    snapshot = load_checkpoint(presuspect_path(run))
    warning = read_metrics(run / "warnings.jsonl")[0]
    # suspect logs count from step 6 (grace), so the one before is step 4
    assert snapshot["step"] == 4 and warning["step"] == 10
    assert snapshot["callbacks"]["0:CollapseMonitor"]["streak"] == 0


def test_the_presuspect_snapshot_resumes_exactly_like_last_pt(tmp_path: Path) -> None:
    whole = train(_collapsing(tmp_path / "whole"), quiet=True).run_dir
    again = tmp_path / "again"
    shutil.copytree(whole, again)
    shutil.copyfile(presuspect_path(again), checkpoint_path(again))
    train(_collapsing(again), resume=True, quiet=True)

    def lines(run: Path, name: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("images_per_s", "train_seconds")}
                for r in read_metrics(run / name)]

    assert lines(again, "metrics.jsonl") == lines(whole, "metrics.jsonl")
    assert lines(again, "warnings.jsonl") == lines(whole, "warnings.jsonl")
    a, b = load_checkpoint(whole)["model"], load_checkpoint(again)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_healthy_run_keeps_no_snapshot_and_the_option_turns_it_off(tmp_path: Path) -> None:
    healthy = train(_config(tmp_path / "ok", "epochs=2", "monitor.collapse_threshold=1.0",
                            "monitor.min_effective_rank=0", "monitor.rank_drop=0",
                            "monitor.sigma2_floor=0"), quiet=True).run_dir
    assert not presuspect_path(healthy).exists()
    off = train(_collapsing(tmp_path / "off", "presuspect_snapshot=false"), quiet=True).run_dir
    assert not presuspect_path(off).exists()


def test_init_from_starts_from_the_snapshots_weights_and_refuses_a_foreign_one(
        tmp_path: Path) -> None:
    run = train(_collapsing(tmp_path / "run"), quiet=True).run_dir
    snapshot = presuspect_path(run)
    branch = train(_config(tmp_path / "branch", "max_steps=1", f"init_from={snapshot}",
                           "optim.lr=0"), quiet=True).run_dir
    a, b = load_checkpoint(snapshot)["model"], load_checkpoint(branch)["model"]
    backbone = [k for k in a if k.startswith("backbone.") and a[k].is_floating_point()
                and "running" not in k]
    assert backbone and all(torch.equal(a[k], b[k]) for k in backbone)  # lr 0: unchanged
    # a predictor restored: its weights start fresh, the rest loads
    train(_config(tmp_path / "nopred", "max_steps=1", "learner.predictor=none",
                  f"init_from={snapshot}"), quiet=True)
    with pytest.raises(ConfigError, match="init_from"):
        train(_config(tmp_path / "wide", "max_steps=1", "learner.proj_dim=8",
                      f"init_from={snapshot}"), quiet=True)
    assert not (tmp_path / "wide").exists()  # refused before the run directory is created
