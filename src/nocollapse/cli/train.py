"""``nocollapse train``: train a non-contrastive method and write a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nocollapse.cli.evaluate import evaluation_table
from nocollapse.runio import read_config
from nocollapse.train import checkpoint_path, train
from nocollapse.train.config import CPU_DEFAULT, load_config, merge, parse_overrides
from nocollapse.train.loop import TrainResult

EPILOG = """examples:
  nocollapse train                                  # SimSiam on Fashion-MNIST, a few CPU minutes
  nocollapse train --method byol --epochs 10 optim.lr=0.1
  nocollapse train --config configs/cifar10_resnet18_simsiam.yaml --data-dir ~/cifar
  nocollapse train --resume runs/default epochs=8   # continue (and extend) a run
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", help="train BYOL, SimSiam, DirectPred, DirectCopy or IsoLoss",
        description="Train a non-contrastive method. With no argument: the default method on "
        "the embedded default data set for a few minutes on CPU, then the k-NN accuracy of the "
        "trained encoder against a randomly initialised one. Any config key can be set as "
        "key=value (dotted for sections: optim.lr=0.1, data.batch_size=128).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (see configs/); overrides the defaults")
    parser.add_argument("--method", help="byol | simsiam | directpred | directcopy | isoloss")
    parser.add_argument("--data", help="data set: default, fashion-mnist, mnist, cifar10, "
                        "cifar100, stl10, folder, digits")
    parser.add_argument("--data-dir", help="folder holding the data set's files")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--out", help="run directory to write (default from the config)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or table")
    parser.add_argument("--stop-on-collapse", action="store_true",
                        help="stop (with a checkpoint) when the collapse warning fires")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=0.03 device.precision=bf16-mixed")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """Defaults < run's config (resume) < --config < flags < key=value overrides."""
    flags: dict[str, Any] = {}
    if args.method:
        flags["method"] = args.method
    if args.data:
        flags.setdefault("data", {})["name"] = args.data
    if args.data_dir:
        flags.setdefault("data", {})["data_dir"] = args.data_dir
    if args.epochs is not None:
        flags["epochs"] = args.epochs
    if args.out:
        flags["out"] = args.out
    if getattr(args, "stop_on_collapse", False):
        flags["monitor"] = {"stop_on_collapse": True}
    if args.resume:
        base = read_config(args.resume)
        flags["out"] = str(args.resume)
    else:
        base = CPU_DEFAULT if args.config is None else {}
    overrides = parse_overrides(args.overrides)
    config = load_config(args.config, [], base=merge(base, merge(flags, overrides)))
    if not args.resume and not args.out and "out" not in overrides:
        config.out = str(_free_run_dir(Path(config.out)))
    return config


def _free_run_dir(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... when it already holds a run: reruns never clash."""
    candidate, n = path, 1
    while checkpoint_path(candidate).exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    result = train(config, resume=bool(args.resume), quiet=args.quiet)
    if not args.quiet:
        print_result(result)
    return 0


def print_result(result: TrainResult, console: Console | None = None) -> None:
    """The standard evaluation (full splits) with its baselines, as a rich table."""
    console = console or Console()
    title = (f"nocollapse train: {result.run_dir} ({result.stopped}, {result.step} of "
             f"{result.planned_steps} steps, {result.seconds:.0f} s)")
    if result.evaluation is not None:
        console.print(evaluation_table(result.evaluation, title, "trained encoder",
                                       result.note))
        return
    table = Table(title=title, caption=result.note)
    table.add_column("encoder")
    table.add_column("k-NN accuracy", justify="right")
    table.add_row("trained", "n/a (no labelled test split)")
    console.print(table)
