"""device.precision (auto | bf16 | fp32), the fast evaluation protocol, the decoded-data
cache and the cost estimate a sweep prints."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from nocollapse.evaluate import Protocol, fast_bank_indices
from nocollapse.runio import read_config
from nocollapse.train import load_config, setup, train
from nocollapse.train import precision as precision_module
from nocollapse.train.estimate import estimate_run
from nocollapse.train.final_eval import evaluation_splits
from nocollapse.train.precision import resolve_precision

TINY = ["data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=128",
        "log_every=2", "eval.knn_k=20", "device.accelerator=cpu", "device.threads=1",
        "learner.proj_hidden_dim=32", "learner.proj_dim=16", "learner.pred_hidden_dim=16",
        "epochs=1", "eval.linear_probe=false"]


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))


def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, "avx2", "avx512f")
    assert resolve_precision("auto", "cpu") == ("32-true", "auto: CPU without "
                                                "avx512_bf16/amx_bf16")
    _flags(monkeypatch, "avx512f", "amx_bf16")
    assert resolve_precision("auto", "cpu") == ("bf16-mixed", "auto: CPU with amx_bf16")
    # the aliases and Fabric's own names are taken as asked, whatever the hardware
    assert resolve_precision("fp32", "cpu")[0] == "32-true"
    assert resolve_precision("bf16", "cpu")[0] == "bf16-mixed"
    assert resolve_precision("16-mixed", "cuda")[0] == "16-mixed"
    assert resolve_precision("auto", "mps")[0] == "32-true"


def test_cpu_flags_are_read_from_cpuinfo_where_there_is_one() -> None:
    flags = precision_module.cpu_flags()
    assert isinstance(flags, frozenset)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        assert ("avx512_bf16" in flags) == ("avx512_bf16" in cpuinfo.read_text())


def test_the_run_stores_the_resolved_precision_and_a_resume_keeps_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _flags(monkeypatch)  # no bf16 here: auto is float32
    config = load_config(None, [*TINY, "device.precision=auto", f"out={tmp_path / 'run'}",
                                "max_steps=2"])
    train(config, quiet=False)
    assert read_config(tmp_path / "run")["device"]["precision"] == "32-true"
    assert "precision 32-true (auto: CPU without avx512_bf16/amx_bf16)" in capsys.readouterr().err
    # on a host with bf16, resuming with auto continues in the stored float32
    _flags(monkeypatch, "avx512_bf16")
    more = load_config(None, [*TINY, "device.precision=auto", f"out={tmp_path / 'run'}",
                              "max_steps=4"])
    train(more, resume=True, quiet=False)
    assert "precision 32-true (auto: as the run being resumed)" in capsys.readouterr().err


def test_fast_bank_is_fixed_sorted_and_independent_of_the_seed() -> None:
    bank = fast_bank_indices(60000, 10000)
    assert len(bank) == 10000 and len(set(bank.tolist())) == 10000
    assert torch.equal(bank, bank.sort().values) and int(bank.max()) < 60000
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(bank, fast_bank_indices(60000, 10000))
    assert torch.equal(fast_bank_indices(500, 10000), torch.arange(500))
    # spread over the whole split, not its first images (the split's classes may be sorted)
    assert int(bank.min()) < 100 and int(bank.max()) > 59900


def test_fast_protocol_evaluates_on_the_bank_and_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocollapse.train import final_eval

    monkeypatch.setattr(final_eval, "FAST_BANK", 300)
    config = load_config(None, [*TINY, "eval.protocol=fast", f"out={tmp_path / 'run'}"])
    data = setup.load_run_data(config)
    splits = evaluation_splits(config, data)
    assert splits is not None and splits.test is not None
    assert len(splits.train) == 300 and len(splits.test) == 355  # digits: full test split
    full = load_config(None, [*TINY, f"out={tmp_path / 'other'}"])
    full_splits = evaluation_splits(full, setup.load_run_data(full))
    assert full_splits is not None and len(full_splits.train) == 1442
    # the bank is a subsample of the full train split, the same images
    keep = fast_bank_indices(1442, 300)
    assert torch.equal(splits.train.images, full_splits.train.images[keep])
    assert Protocol(bank=300).key()["bank"] == 300 and "bank" not in Protocol().key()
    result = train(config, quiet=True)
    assert result.evaluation is not None
    assert result.evaluation["train_images"] == 300
    assert result.evaluation["protocol"].get("bank") == 300


def _write_fashion(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    for prefix, n in (("train", 80), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        head = (np.array([0x803, n, 28, 28], ">u4").tobytes(),
                np.array([0x801, n], ">u4").tobytes())
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(head[0] + images.tobytes()))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(head[1] + labels.tobytes()))


def test_decoded_splits_are_kept_until_their_files_change(tmp_path: Path) -> None:
    folder = tmp_path / "fmnist"
    _write_fashion(folder, 0)
    first = setup.load_split("fashion-mnist", str(folder), "train")
    assert setup.load_split("fashion-mnist", str(folder), "train") is first
    _write_fashion(folder, 1)  # new files: decoded again
    second = setup.load_split("fashion-mnist", str(folder), "train")
    assert second is not first and not torch.equal(second.images, first.images)


def test_estimate_counts_steps_and_the_protocol(tmp_path: Path) -> None:
    standard = estimate_run(load_config(None, [*TINY, "max_steps=3", f"out={tmp_path}"]))
    assert standard.steps == 3 and standard.step_seconds > 0 and standard.eval_seconds > 0
    assert standard.seconds == pytest.approx(3 * standard.step_seconds
                                             + standard.monitor_seconds
                                             + standard.eval_seconds)
    assert "3 steps x" in standard.line() and "standard protocol" in standard.line()


def test_a_run_stopped_by_its_time_cap_says_so_in_the_table_title(tmp_path: Path) -> None:
    from rich.console import Console

    from nocollapse.cli.train import print_result

    config = load_config(None, [*TINY[:-2], "eval.linear_probe=false", "epochs=50",
                                "time_budget_s=0.5", f"out={tmp_path / 'run'}"])
    result = train(config, quiet=True)
    assert result.stopped == "time_budget" and result.step < result.planned_steps
    console = Console(record=True, width=1000)
    print_result(result, console)
    title = " ".join(console.export_text().split("┏")[0].split())  # the lines above the table
    assert f"EARLY: stopped by time budget at step {result.step} of {result.planned_steps}" \
        in title
