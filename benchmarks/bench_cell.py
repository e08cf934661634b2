"""One realdata-phase sweep cell, timed: before/after the cheaper-cell options (issue 30).

Runs :func:`nocollapse.sweep.cell.run_cell` on the realdata-phase default grid's cell
(300 steps, one thread, Fashion-MNIST) with the given precision and evaluation protocol
and prints one JSON line: seconds (the cell's, and the process's imports), outcome class,
RankMe and final k-NN. Run the variants one after the other in one session (the same
load), e.g. on the idle machine::

    for v in "fp32 standard" "fp32 fast" "bf16 fast"; do
      OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cell.py /tmp/cell-$RANDOM $v
    done

``--method byol-linear`` and ``--weight-decay`` / ``--tau`` pick another cell of the grid.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from nocollapse.experiments.realdata_phase import METHODS, _base  # noqa: E402
from nocollapse.sweep.cell import run_cell  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the cell's run directory (replaced)")
    parser.add_argument("precision", choices=["fp32", "bf16", "auto"])
    parser.add_argument("protocol", choices=["standard", "fast"])
    parser.add_argument("--method", default="directpred", choices=list(METHODS))
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--tau", type=float, default=0.996)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    method, learner = METHODS[args.method]
    config = _base(method, dict(learner), "default", args.seed)
    config["out"] = str(out)
    config["optim"]["weight_decay"] = args.weight_decay
    config["learner"]["base_tau"] = args.tau
    config["device"]["precision"] = args.precision
    config["eval"]["protocol"] = args.protocol
    imported = time.perf_counter() - START
    record = run_cell(config, out.name)
    print(json.dumps({"precision": args.precision, "protocol": args.protocol,
                      "method": args.method, "weight_decay": args.weight_decay,
                      "tau": args.tau, "import_s": round(imported, 1),
                      "cell_s": record.get("seconds"), "outcome": record.get("outcome"),
                      "rankme": record.get("rankme"), "knn": record.get("knn")}))


if __name__ == "__main__":
    main()
