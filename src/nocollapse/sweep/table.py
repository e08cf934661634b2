"""The sweep's table: ``sweep.json`` (every cell, the Spearman correlations) and ``sweep.csv``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeGuard

from nocollapse.runio import SWEEP_CSV_FILE, SWEEP_TABLE_FILE, atomic_write_text
from nocollapse.runio.records import CellRecord, JSONValue, SpearmanRecord, SweepTable
from nocollapse.sweep import outcome

LABEL_FREE = ("rankme", "alpha_req", "lidar", "effective_rank")
CSV_COLUMNS = ("name", "outcome", "knn", "random_init_knn", "collapse_level", "effective_rank",
               "peak_effective_rank", "rankme", "alpha_req", "lidar", "sigma2_est", "tau_est",
               "scale_est", "warning_step", "warning_reason", "warning_cause", "steps",
               "seconds", "error")


def spearman(records: Sequence[Mapping[str, object]], metric: str) -> SpearmanRecord:
    """Spearman's rho (scipy) of ``metric`` with the final k-NN over the cells having both."""
    from scipy.stats import spearmanr

    pairs = [(float(value), float(knn)) for r in records
             if _finite(value := _field(r, metric)) and _finite(knn := _field(r, "knn"))]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return {"rho": None, "p_value": None, "cells": len(pairs)}
    result = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "cells": len(pairs)}


def build_table(axes: list[tuple[str, list[JSONValue]]], records: list[CellRecord]
                ) -> SweepTable:
    """The content of ``sweep.json``: axes, cells in grid order, thresholds, correlations."""
    return {
        "axes": axes,
        "cells": records,
        "outcome_thresholds": {"complete_collapse_level": outcome.COMPLETE_LEVEL,
                               "complete_collapse_rank": outcome.COMPLETE_RANK,
                               "dimensional_collapse_rank_drop": outcome.RANK_DROP,
                               "final_logs": outcome.FINAL_LOGS},
        "spearman_with_knn": {metric: spearman(records, metric) for metric in LABEL_FREE},
    }


def write_table(out: Path, table: SweepTable) -> None:
    """``sweep.json`` and ``sweep.csv`` (one row per cell, axes first), each atomically."""
    atomic_write_text(out / SWEEP_TABLE_FILE, json.dumps(table, indent=2))
    keys = [axis[0] for axis in table["axes"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, *CSV_COLUMNS])
    for record in table["cells"]:
        values = record.get("axes") or {}
        writer.writerow([_cell(values.get(k)) for k in keys]
                        + [_cell(_field(record, c)) for c in CSV_COLUMNS])
    atomic_write_text(out / SWEEP_CSV_FILE, buffer.getvalue())


def _field(record: Mapping[str, object], key: str) -> object:
    """A cell record's field named at run time (a metric, a CSV column)."""
    return record.get(key)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def _finite(value: object) -> TypeGuard[int | float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
