"""The random-init encoder's k-NN, measured once per sweep (per data set and backbone).

Cells train with ``eval.baselines=[]``; the sweep measures the random-init baseline
by the same protocol as the cells' final k-NN (full splits, or ``eval.protocol=fast``'s
bank) before any cell starts,
keeps it in ``SWEEP_DIR/baseline.json`` and in the user's baseline cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nocollapse.errors import quoted
from nocollapse.evaluate import BaselineSetup, measure_baselines
from nocollapse.runio import SWEEP_BASELINE_FILE, atomic_write_text
from nocollapse.runio.records import is_finite_number
from nocollapse.sweep.spec import Cell
from nocollapse.train import setup
from nocollapse.train.final_eval import evaluation_splits, protocol_for


def baseline_key(cell: Cell) -> str:
    """What decides the random-init k-NN of a cell: data, backbone, seed, k-NN protocol."""
    c = cell.config
    return json.dumps([c.data.name, c.data.data_dir, c.data.image_size, c.learner.backbone,
                       c.seed, c.eval.knn_k, c.eval.knn_t]
                      + ([c.eval.protocol] if c.eval.protocol != "standard" else []),
                      sort_keys=True)


def random_init_knn(cells: list[Cell], out: Path,
                    say: Callable[[str], None] = print) -> dict[str, float | None]:
    """``{baseline_key: k-NN}`` for every distinct key among ``cells``; read from or added to
    ``out/baseline.json``. A stored figure that is not an accuracy (a finite number in
    [0, 1], or null for data without a test split) is measured again, and ``say`` says so."""
    path = out / SWEEP_BASELINE_FILE
    known = _read_known(path, say)
    changed = False
    for cell in cells:
        key = baseline_key(cell)
        if key in known and not _is_accuracy(known[key]):
            say(f"{path}: the random-init k-NN stored for cell {cell.name} is "
                f"{quoted(known[key])}, not an accuracy in [0, 1]; measuring it again")
            del known[key]
        if key not in known:
            known[key] = _measure(cell)
            changed = True
    if changed:
        atomic_write_text(path, json.dumps(known, indent=2))
    return known


def _read_known(path: Path, say: Callable[[str], None]) -> dict[str, Any]:
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        known = None
    if not isinstance(known, dict):
        say(f"{path} is damaged (not a JSON object of figures); measuring the random-init "
            "baseline again")
        return {}
    return known


def _is_accuracy(value: object) -> bool:
    return value is None or (is_finite_number(value) and 0.0 <= value <= 1.0)


def _measure(cell: Cell) -> float | None:
    config = cell.config
    data = setup.load_run_data(config)
    splits = evaluation_splits(config, data)
    if splits is None or splits.test is None:
        return None
    protocol = protocol_for(config, linear=False)
    setup_ = BaselineSetup(backbone=config.learner.backbone, seed=config.seed,
                           fixed_threads=config.device.threads is not None)
    result = measure_baselines(splits.train, splits.test, setup_, protocol, ["random_init"])
    return float(result["random_init"][f"knn_k{protocol.knn_k[0]}"])
