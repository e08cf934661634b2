"""The random-init encoder's k-NN, measured once per sweep (per data set and backbone).

Cells train with ``eval.baselines=[]``; the sweep measures the random-init baseline
by the same protocol as the cells' final k-NN (full splits, or ``eval.protocol=fast``'s
bank) before any cell starts,
keeps it in ``SWEEP_DIR/baseline.json`` and in the user's baseline cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nocollapse.evaluate import BaselineSetup, measure_baselines
from nocollapse.runio import SWEEP_BASELINE_FILE, atomic_write_text
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


def random_init_knn(cells: list[Cell], out: Path) -> dict[str, float | None]:
    """``{baseline_key: k-NN}`` for every distinct key among ``cells``; read from or added to
    ``out/baseline.json``."""
    path = out / SWEEP_BASELINE_FILE
    try:
        known: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        known = {}
    changed = False
    for cell in cells:
        key = baseline_key(cell)
        if key not in known:
            known[key] = _measure(cell)
            changed = True
    if changed:
        atomic_write_text(path, json.dumps(known, indent=2))
    return known


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
