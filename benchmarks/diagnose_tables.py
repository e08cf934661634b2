"""Tables and diagnoses of ``diagnose_validation.py`` (see its docstring)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def run_diagnoses(out: Path, cases: dict[str, Any], workers: int, steps: int = 50) -> None:
    from nocollapse.diagnose import DiagnoseRequest, run_diagnosis

    for name, (_, _, cause, group) in cases.items():
        run = out / "runs" / name
        snapshot = run / "checkpoints" / "presuspect.pt"
        if cause is None or group != "tune" or not snapshot.is_file():
            continue
        start = time.monotonic()
        try:
            result = run_diagnosis(DiagnoseRequest(run, steps=steps, workers=workers))
        except Exception as error:
            print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)
            continue
        print(f"{name}: control reproduced {result['control_reproduced']}, top "
              f"{result['top']} ({result['top_cause']}), ranking {result['ranking']}, "
              f"{result['cell_seconds']} cell-s, {time.monotonic() - start:.0f} s wall",
              flush=True)


def print_tables(out: Path, cases: dict[str, Any], random_knn: float, se2: float) -> None:
    print(json.dumps({"todo": True}))
