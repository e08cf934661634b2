"""Validation of the collapse warning and of ``nocollapse diagnose`` (docs/diagnose.md).

Base: issue 28's realdata-phase cell: Fashion-MNIST, ``small_convnet_2x2``, batch 128, SGD
(lr 0.06 for the presets that sum their two directions, 0.12 for SimSiam's mean: the same
steps), weight decay 5e-4 (2.5e-4 for SimSiam), the CPU recipe's jitter without solarize,
``STEPS`` steps, one thread per run, seed 0 (one seed), no final evaluation (the cases'
truth is their construction: the issue measured each collapse case below the random-init
k-NN at this base). Cases: every preset's default (false alarms) and one
run per known cause of collapse (tuning set), and a second run per cause on another preset
(held-out set: the thresholds chosen on the tuning set are reported on both).

    python benchmarks/diagnose_validation.py runs OUT [--workers 2] [--only NAME ...]
    python benchmarks/diagnose_validation.py table OUT      # detection before/after
    python benchmarks/diagnose_validation.py diagnose OUT   # one diagnosis per collapse

``runs`` trains every case (a done case is skipped: its ``outcome.json`` exists);
``table`` replays today's and the previous rules on each run's ``metrics.jsonl`` and
prints the tables; ``diagnose`` runs ``nocollapse diagnose`` on each collapsed case.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

STEPS = 300
LOG_EVERY = 10
RANDOM_INIT_KNN = 0.7895  # small_convnet_2x2, seed 0, k 200, full splits (issue 28)
KNN_SE2 = 0.0082  # two binomial standard errors at 0.79 over 10000 test images
JITTER = {"jitter": [0.4, 0.4, 0.0, 0.0], "jitter_p": 0.8}
NO_AUGMENT = {"crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0], "flip_p": 0.0,
              "jitter_p": 0.0, "gray_p": 0.0}
SOLARIZE = {**JITTER, "solarize_p": 0.4}

# name -> (method, overrides, known cause or None, set)
CASES: dict[str, tuple[str, dict[str, Any], str | None, str]] = {
    # tuning set: the collapses
    "simsiam-no-predictor": ("simsiam", {"learner.predictor": "none"}, "no predictor", "tune"),
    "byol-no-stopgrad": ("byol", {"learner.stop_gradient": False}, "no stop-gradient", "tune"),
    "byol-wd-0.5": ("byol", {"optim.weight_decay": 0.5}, "weight decay too high", "tune"),
    "simsiam-lr-20x": ("simsiam", {"optim.lr": 2.4}, "learning rate too high", "tune"),
    "simsiam-batch-16": ("simsiam", {"data.batch_size": 16}, "batch too small", "tune"),
    "simsiam-no-augment": ("simsiam", {"data.augment": NO_AUGMENT}, "too little augmentation",
                           "tune"),
    "isoloss-solarize": ("isoloss", {"data.augment": SOLARIZE}, "augmentation op", "tune"),
    "simsiam": ("simsiam", {}, None, "default"),
    "byol": ("byol", {}, None, "default"),
    "directpred": ("directpred", {}, None, "default"),
    "directcopy": ("directcopy", {}, None, "default"),
    "isoloss": ("isoloss", {}, None, "default"),
    # held-out: the same causes on another preset
    "byol-no-predictor": ("byol", {"learner.predictor": "none"}, "no predictor", "held-out"),
    "byol-lr-20x": ("byol", {"optim.lr": 1.2}, "learning rate too high", "held-out"),
    "byol-no-augment": ("byol", {"data.augment": NO_AUGMENT}, "too little augmentation",
                        "held-out"),
    "directpred-wd-0.5": ("directpred", {"optim.weight_decay": 0.5}, "weight decay too high",
                          "held-out"),
}


def config_values(name: str, out: Path) -> dict[str, Any]:
    method, overrides, _, _ = CASES[name]
    simsiam = method == "simsiam"
    values: dict[str, Any] = {
        "method": method, "learner": {"backbone": "small_convnet_2x2"}, "seed": 0,
        "data": {"name": "default", "batch_size": 128, "subset": None, "test_subset": None,
                 "augment": dict(JITTER)},
        "optim": {"name": "sgd", "lr": 0.12 if simsiam else 0.06, "momentum": 0.9,
                  "weight_decay": 2.5e-4 if simsiam else 5e-4, "warmup_epochs": 0.0},
        "epochs": 1000, "max_steps": STEPS, "log_every": LOG_EVERY, "checkpoint_every": 1,
        "eval": {"knn_every": 0, "knn_k": 200, "knn_t": 0.1, "linear_probe": False,
                 "baselines": [], "random_baseline": False, "embedding_points": 0,
                 "final": False},
        "device": {"accelerator": "cpu", "threads": 1},
        "monitor": {"every": 1, "spectra": False, "tensorboard": False},
        "out": str(out / "runs" / name)}
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        values[section][field] = value
    return values


def _run(values: dict[str, Any], name: str) -> dict[str, Any]:
    from nocollapse.sweep.cell import run_cell
    return dict(run_cell(values, name))


def runs(out: Path, workers: int, only: list[str]) -> None:
    names = [n for n in CASES if not only or n in only]
    start = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run, config_values(n, out), n): n for n in names}
        for future in as_completed(futures):
            name = futures[future]
            try:
                record = future.result()
                print(f"{name}: knn {record.get('knn')} outcome {record.get('outcome')} "
                      f"warning {record.get('warning_step')} {record.get('seconds')} s",
                      flush=True)
            except Exception as error:
                print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)
    print(f"all runs: {time.monotonic() - start:.0f} s wall", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["runs", "table", "diagnose"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args(argv)
    if args.phase == "runs":
        runs(args.out, args.workers, args.only)
    elif args.phase == "table":
        from diagnose_tables import print_tables
        print_tables(args.out, CASES, RANDOM_INIT_KNN, KNN_SE2)
    else:
        from diagnose_tables import run_diagnoses
        run_diagnoses(args.out, CASES, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
