from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nocollapse.errors import ConfigError, check_choice, check_nonnegative
from nocollapse.runio import (
    MetricsWriter,
    atomic_write_text,
    read_config,
    read_metrics,
    write_config,
)


def test_metrics_round_trip_and_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    with MetricsWriter(tmp_path) as writer:
        writer.write({"step": 1, "loss": np.float32(0.5)})
        writer.write({"step": 2, "loss": float("nan"), "eig": np.arange(3)})
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 3, "lo')  # a crash mid-write
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert math.isclose(records[0]["loss"], 0.5)
    assert records[1]["loss"] is None and records[1]["eig"] == [0, 1, 2]


def test_config_round_trip(tmp_path: Path) -> None:
    write_config(tmp_path, {"eta": 0.1, "shape": (2, 3), "out": tmp_path})
    assert read_config(tmp_path) == {"eta": 0.1, "shape": [2, 3], "out": str(tmp_path)}


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_checks_name_value_and_range() -> None:
    with pytest.raises(ConfigError, match=r"eta=-1.0 is negative; valid range: eta >= 0"):
        check_nonnegative("eta", -1.0)
    with pytest.raises(ConfigError, match="did you mean 'tian2021'"):
        check_choice("model", "tian2012", ("tian2021", "bao2023"))
