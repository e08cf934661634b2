"""``nocollapse sweep``: a grid of training runs, each cell an ordinary run directory."""

from __future__ import annotations

import argparse
import io
import signal
import sys
from pathlib import Path

from nocollapse.errors import ConfigError, quoted
from nocollapse.runio.records import ConfigDict
from nocollapse.sweep import (
    OUTCOMES,
    Axis,
    SlurmOptions,
    SweepRequest,
    SweepSpec,
    combine_axes,
    parse_axis,
    read_sweep_file,
    run_sweep,
)
from nocollapse.sweep.spec import SWEEP_DEFAULTS
from nocollapse.sweep.workers import SweepInterrupted
from nocollapse.train.config import CPU_DEFAULT, merge, parse_overrides, read_yaml

EPILOG = """examples:
  nocollapse sweep --out runs/wd --method byol learner.predictor=linear \\
      --grid optim.weight_decay=5e-4,5e-3,5e-2 --grid learner.base_tau=0.9,0.99 max_steps=300
  nocollapse sweep --out runs/wd --file sweeps/wd.yaml --workers 2     # base + axes from YAML
  nocollapse sweep --out runs/wd ...same arguments...                  # resume: skips done cells
  nocollapse sweep --out runs/wd ... --launcher slurm --partition gpu --gpus 1 --time 60
  nocollapse report runs/wd                                            # the phase diagram
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sweep", help="train a grid of runs (local process pool or Slurm) and classify them",
        description="Train every combination of the --grid axes (and a sweep file's axes); "
        "each cell is a run directory SWEEP_DIR/cells/<name> that report, evaluate and "
        "train --resume accept. Every cell's configuration is checked before any starts. "
        "Rerunning the same command skips finished cells and resumes killed ones. Writes "
        "SWEEP_DIR/sweep.json and sweep.csv: final k-NN, collapse level, effective rank, "
        "RankMe, alpha-ReQ, LiDAR, first warning and an outcome class per cell.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="SWEEP_DIR", help="the sweep's folder")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="an axis: a train key and its comma-separated values (repeatable)")
    parser.add_argument("--file", metavar="SWEEP_FILE",
                        help="YAML with base: (train keys) and axes: (key: [values])")
    parser.add_argument("--config", help="YAML train config every cell starts from "
                        "(default: the CPU default)")
    parser.add_argument("--method", help="method preset of every cell")
    parser.add_argument("--data", help="data set of every cell")
    parser.add_argument("--data-dir", help="folder holding the data set's files")
    parser.add_argument("--epochs", type=int, help="epochs of every cell")
    parser.add_argument("--launcher", default="local", help="local (process pool, default) | "
                        "slurm (one job array through submitit)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local: cells at once (workers x device.threads <= cores)")
    slurm = parser.add_argument_group("slurm launcher")
    slurm.add_argument("--partition", help="Slurm partition")
    slurm.add_argument("--time", type=int, default=60, metavar="MIN",
                       help="time limit of each cell's task, minutes")
    slurm.add_argument("--gpus", type=int, default=0, help="GPUs per task")
    slurm.add_argument("--array-parallelism", type=int, default=16,
                       help="tasks of the array running at once")
    slurm.add_argument("--slurm-cluster", default="slurm",
                       help="slurm | local (submitit's local executor: the same job array as "
                       "processes on this machine) | debug (in this process)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for every cell")
    parser.set_defaults(func=run)


def build_request(args: argparse.Namespace) -> SweepRequest:
    """Defaults (or --config) < sweep defaults < the file's base < flags < key=value."""
    if not args.out.strip() or "\0" in args.out:
        raise ConfigError(f"--out {quoted(args.out)} is not a folder name for the sweep; give "
                          "one (for example --out runs/wd)")
    base: ConfigDict = CPU_DEFAULT if args.config is None else read_yaml(args.config)
    base = merge(base, SWEEP_DEFAULTS)
    file_axes: list[Axis] = []
    if args.file:
        file_base, file_axes = read_sweep_file(args.file)
        base = merge(base, file_base)
    flags: ConfigDict = {}
    if args.method:
        flags["method"] = args.method
    if args.data:
        flags.setdefault("data", {})["name"] = args.data
    if args.data_dir:
        flags.setdefault("data", {})["data_dir"] = args.data_dir
    if args.epochs is not None:
        flags["epochs"] = args.epochs
    base = merge(merge(base, flags), parse_overrides(args.overrides))
    base.pop("out", None)  # each cell's out is SWEEP_DIR/cells/<name>
    axes = combine_axes(file_axes, [parse_axis(item) for item in args.grid])
    threads = (base.get("device") or {}).get("threads")
    slurm = SlurmOptions(partition=args.partition, time_min=args.time, gpus=args.gpus,
                         array_parallelism=args.array_parallelism,
                         cpus_per_task=int(threads) if isinstance(threads, int) else 1,
                         cluster=args.slurm_cluster)
    return SweepRequest(SweepSpec(base, axes), Path(args.out), args.launcher, args.workers,
                        slurm, io.StringIO() if args.quiet else None)


def run(args: argparse.Namespace) -> int:
    request = build_request(args)
    try:
        table = run_sweep(request)
    except KeyboardInterrupt as stop:
        how = "stopped by SIGTERM" if isinstance(stop, SweepInterrupted) else "interrupted"
        print(f"nocollapse sweep: {how}; its workers were stopped. Finished cells are kept and "
              "killed ones resume from their last checkpoint: run the same command again to "
              "continue", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, SweepInterrupted) else 130
    counts: dict[str, int] = {}
    for cell in table["cells"]:
        counts[str(cell.get("outcome"))] = counts.get(str(cell.get("outcome")), 0) + 1
    if not args.quiet:
        shown = ", ".join(f"{n} {name}" for name, n in counts.items())
        print(f"nocollapse sweep: {len(table['cells'])} cells in {request.out} ({shown}); "
              f"table in {request.out / 'sweep.json'} and sweep.csv; draw it with: "
              f"nocollapse report {request.out}")
    failed = [cell for cell in table["cells"] if cell.get("outcome") not in OUTCOMES]
    if failed:
        first = failed[0]
        print(f"nocollapse sweep: {len(failed)} of {len(table['cells'])} cells failed (first: "
              f"{first.get('name')}: {first.get('error')}); fix the cause and run the same "
              "command again: failed cells are tried again, done ones kept", file=sys.stderr)
        return 1
    return 0
