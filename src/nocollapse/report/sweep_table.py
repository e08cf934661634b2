"""Reading a sweep's ``sweep.json`` for the report: checked and bounded before anything is drawn.

The table's shape (axes, cells) is checked whole, and its size bounded, before a figure
is sized from it: a damaged or forged table is refused by name (rerunning the sweep
rewrites it from its cells), never drawn at the size it claims. Within a cell, a field
of the wrong type is read as missing (shown ``-``), as readers of metrics lines skip a
bad line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import cast

from nocollapse.errors import NocollapseError, quoted
from nocollapse.runio import SWEEP_TABLE_FILE
from nocollapse.runio.records import CellRecord, SpearmanRecord, SweepTable, is_finite_number

MAX_CELLS = 10_000  # the most a sweep runs (nocollapse.sweep.spec.MAX_CELLS)
MAX_TABLE_BYTES = 64 * 2**20  # 10,000 cells with their k-NN curves fit in a few MB
TEXT_FIELDS = ("name", "outcome", "warning_reason", "warning_cause", "error", "stopped")


class SweepTableError(NocollapseError):
    """A ``sweep.json`` that is not the table ``nocollapse sweep`` writes."""


def read_table(sweep_dir: Path) -> SweepTable:
    """The checked ``sweep.json`` of ``sweep_dir`` (:class:`SweepTableError` naming what is
    wrong)."""
    path = sweep_dir / SWEEP_TABLE_FILE
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise SweepTableError(f"{path} is {path.stat().st_size} bytes, more than a sweep "
                                  f"of {MAX_CELLS} cells writes; rerun the sweep command to "
                                  "rewrite it")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise SweepTableError(f"{path} cannot be read ({type(error).__name__}: "
                              f"{str(error)[:120]}); rerun the sweep command to rewrite "
                              "it") from None
    return checked_table(raw, path)


def checked_table(raw: object, source: Path) -> SweepTable:
    """``raw`` as a table the report can draw: its shape checked, its size bounded, each
    cell cleaned (:func:`clean_cell`); :class:`SweepTableError` naming ``source``."""
    problem = table_problem(raw)
    if problem:
        raise SweepTableError(f"{source} is damaged: {problem}; rerun the sweep command to "
                              "rewrite it")
    assert isinstance(raw, dict)  # table_problem checked it
    spearman = raw.get("spearman_with_knn")
    return cast(SweepTable, {
        **raw,
        "axes": [[axis[0], list(axis[1])] for axis in raw["axes"]],
        "cells": [clean_cell(cell) for cell in raw["cells"]],
        "spearman_with_knn": ({str(k): _clean_spearman(v) for k, v in spearman.items()
                               if isinstance(v, dict)} if isinstance(spearman, dict) else {}),
    })


def table_problem(raw: object) -> str | None:
    """What makes ``raw`` not a sweep table, or None."""
    if not isinstance(raw, dict):
        return f"it holds a {type(raw).__name__}, not an object"
    axes, cells = raw.get("axes"), raw.get("cells")
    if not isinstance(axes, list) or not axes:
        return "its axes are missing (a list of [key, [values]])"
    for axis in axes:
        if (not isinstance(axis, list | tuple) or len(axis) != 2 or not isinstance(axis[0], str)
                or not isinstance(axis[1], list) or not axis[1]):
            return f"the axis {quoted(axis, 40)} is not [key, [values]]"
    grid = math.prod(len(axis[1]) for axis in axes)
    if grid > MAX_CELLS:
        sizes = " x ".join(str(len(axis[1])) for axis in axes)
        return f"its axes make {sizes} = {grid} cells, more than a sweep holds ({MAX_CELLS})"
    if not isinstance(cells, list) or len(cells) > MAX_CELLS:
        return "its cells are not a list of at most one record per grid point"
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"cell {index} is a {type(cell).__name__}, not a record"
    return None


def clean_cell(cell: dict[str, object]) -> CellRecord:
    """``cell`` with its axes a mapping and its text fields text; other wrong types are
    left for the readers, which show a value that is not a finite number as ``-``."""
    clean: dict[str, object] = dict(cell)
    if not isinstance(clean.get("axes"), dict):
        clean["axes"] = {}
    for key in TEXT_FIELDS:
        if key in clean and clean[key] is not None and not isinstance(clean[key], str):
            clean[key] = None
    return cast(CellRecord, clean)


def _clean_spearman(value: dict[str, object]) -> SpearmanRecord:
    rho, p_value, cells = value.get("rho"), value.get("p_value"), value.get("cells")
    return {"rho": float(rho) if is_finite_number(rho) else None,
            "p_value": float(p_value) if is_finite_number(p_value) else None,
            "cells": int(cells) if is_finite_number(cells) else 0}
