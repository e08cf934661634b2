"""``nocollapse diagnose RUN_DIR``: why did the run collapse? Branch it and see."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nocollapse.diagnose import DEFAULT_STEPS, INTERVENTIONS, DiagnoseRequest, run_diagnosis
from nocollapse.diagnose.report import COLUMNS, table_rows, verdict_line
from nocollapse.runio.records import JSONObject
from nocollapse.sweep import SlurmOptions

EPILOG = """examples:
  nocollapse diagnose runs/collapsed                      # every branch that applies
  nocollapse diagnose runs/collapsed --steps 300 --workers 2
  nocollapse diagnose runs/collapsed --only "weight decay x0.1" "learning rate x0.1"
  nocollapse diagnose runs/collapsed --launcher slurm --partition gpu --gpus 1
  nocollapse report runs/collapsed                        # the branches beside the control

interventions (name: what it tests):
""" + "\n".join(f"  {i.name}: {i.cause}" for i in INTERVENTIONS.values()) + "\n"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "diagnose", help="measure why a run collapsed: branch it from its pre-collapse snapshot",
        description="Train one branch per intervention (control, weight decay / 10, learning "
        "rate / 10, ...) from the run's snapshot taken just before its first suspect log "
        "(checkpoints/presuspect.pt), each a run directory RUN_DIR/diagnosis/<branch>; a "
        "branch averts the collapse when the run's own warning, replayed on its logs, stays "
        "quiet over the horizon while the control's fires. Writes diagnosis.json and "
        "diagnosis.md (docs/diagnose.md).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the collapsed run")
    parser.add_argument("--from-step", type=int, metavar="N", help="the snapshot's step "
                        "(default: the run's pre-collapse snapshot); 0: the random-init weights")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="M",
                        help=f"steps each branch trains (default {DEFAULT_STEPS})")
    parser.add_argument("--workers", type=int, default=1, help="local: branches at once")
    parser.add_argument("--launcher", default="local", help="local (default) | slurm")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=[],
                        help="these interventions only (the control always runs)")
    slurm = parser.add_argument_group("slurm launcher")
    slurm.add_argument("--partition", help="Slurm partition")
    slurm.add_argument("--time", type=int, default=60, metavar="MIN", help="minutes per branch")
    slurm.add_argument("--gpus", type=int, default=0, help="GPUs per branch")
    slurm.add_argument("--slurm-cluster", default="slurm", help="slurm | local | debug")
    parser.set_defaults(func=run)


def request_from(args: argparse.Namespace) -> DiagnoseRequest:
    slurm = SlurmOptions(partition=args.partition, time_min=args.time, gpus=args.gpus,
                         cluster=args.slurm_cluster)
    return DiagnoseRequest(args.run_dir, args.from_step, args.steps, args.workers,
                           args.launcher, list(args.only), slurm)


def print_diagnosis(result: JSONObject, console: Console | None = None) -> None:
    """The branches as a table, and the verdict."""
    console = console or Console()
    table = Table(title=f"diagnosis of {result.get('run')} (from step {result.get('from_step')}, "
                  f"{result.get('steps')} steps a branch)")
    for column in COLUMNS:
        table.add_column(column)
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(verdict_line(result))
    console.print(f"diagnosis.md and diagnosis.json in {result.get('run')}/diagnosis")


def run(args: argparse.Namespace) -> int:
    print_diagnosis(run_diagnosis(request_from(args)))
    return 0
