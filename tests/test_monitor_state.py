"""The monitor's state survives a checkpoint: a restored monitor warns as an uninterrupted one."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from rich.console import Console

from nocollapse.methods import StepOutput
from nocollapse.monitor import CollapseMonitor, MonitorConfig

B, D = 64, 16


class NoMatrices:
    def correlation(self) -> None:
        return None

    def predictor_matrix(self) -> None:
        return None


def _batches() -> list[StepOutput]:
    """Rank 16 down to rank 2: only the drop from the run's highest rank can warn."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for rank in (16, 16, 12, 8, 6, 4, 3, 2, 2, 2, 2, 2):
        z = torch.randn(B, rank, generator=generator) @ torch.randn(rank, D, generator=generator)
        noise = 0.01 * torch.randn(B, D, generator=generator)
        out.append(StepOutput(torch.tensor(0.0), z, z + noise, z, z))
    return out


def _monitor(run_dir: Path) -> CollapseMonitor:
    # min_effective_rank 0: the fixed floor cannot fire, only rank_drop (which needs the peak);
    # the views differ by 1% noise: the augmentation-signal test is off
    config = MonitorConfig(every=1, patience=2, min_effective_rank=0.0, collapse_threshold=1.0,
                           tensorboard=False, sigma2_floor=0.0)
    return CollapseMonitor(config, run_dir, {"predictor": "linear"},
                           Console(file=io.StringIO()), log_every=1)


def _feed(monitor: CollapseMonitor, batches: list[StepOutput], first_step: int) -> list[dict]:
    records = []
    for step, output in enumerate(batches, start=first_step):
        record: dict = {"tau": 0.99}
        monitor.on_log(step, output, NoMatrices(), record)
        records.append(record)
    monitor.on_epoch_end(1, NoMatrices(), monitor.run_dir or Path())
    return records


def test_restored_monitor_warns_and_records_as_an_uninterrupted_one(tmp_path: Path) -> None:
    batches = _batches()
    whole = _monitor(tmp_path / "whole")
    records = _feed(whole, batches, 1)
    assert [w["step"] for w in whole.warnings] == [8]  # the sequence really warns

    split_dir = tmp_path / "split"
    first = _monitor(split_dir)
    cut = 3  # after the highest rank was seen, before any suspect log
    records_split = _feed(first, batches[:cut], 1)
    (split_dir / "spectra.jsonl").unlink()  # the uninterrupted run has one epoch end only
    torch.save(first.state_dict(), tmp_path / "state.pt")
    second = _monitor(split_dir)
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    records_split += _feed(second, batches[cut:], cut + 1)

    assert records_split == records
    assert second.warnings == whole.warnings
    for name in ("warnings.jsonl", "spectra.jsonl"):
        assert (split_dir / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert second.state_dict().keys() == whole.state_dict().keys()
    assert second.warning.peak_rank == whole.warning.peak_rank
