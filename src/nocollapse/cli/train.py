"""``nocollapse train``: train a non-contrastive method and write a run directory."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nocollapse.cli.evaluate import evaluation_table
from nocollapse.data import DATASETS
from nocollapse.losses import LOSSES
from nocollapse.methods import PRESETS
from nocollapse.predictors import PREDICTORS
from nocollapse.rundir.lock import foreign_entries, is_locked
from nocollapse.rundir.resume import ALREADY_FINISHED, stored_config
from nocollapse.runio.records import ConfigDict
from nocollapse.train import checkpoint_path, train
from nocollapse.train.config import (
    CPU_DEFAULT,
    TrainConfig,
    load_config,
    merge,
    parse_overrides,
    read_yaml,
)
from nocollapse.train.loop import TrainResult

OVERRIDES_VARIABLE = "NOCOLLAPSE_OVERRIDES"
EPILOG = """examples:
  nocollapse train                                  # SimSiam on Fashion-MNIST, a few CPU minutes
  nocollapse train --method byol --epochs 10 optim.lr=0.1
  nocollapse train --config configs/cifar10_resnet18_simsiam.yaml --data-dir ~/cifar
  nocollapse train --resume runs/default epochs=8   # continue (and extend) a run
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train", help="train BYOL, SimSiam, DirectPred, DirectCopy or IsoLoss",
        description="Train a non-contrastive method. With no argument: the default method on "
        "the embedded default data set for a few minutes on CPU, then the k-NN accuracy of the "
        "trained encoder against a randomly initialised one. Any config key can be set as "
        "key=value (dotted for sections: optim.lr=0.1, data.batch_size=128).",
        epilog=EPILOG + _registries(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (see configs/); overrides the defaults")
    parser.add_argument("--method", help=f"method preset: {' | '.join(PRESETS)}")
    parser.add_argument("--data", help=f"data set: {', '.join(DATASETS)}")
    parser.add_argument("--data-dir", help="folder holding the data set's files")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--out", help="run directory to write (default from the config)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or table")
    parser.add_argument("--stop-on-collapse", action="store_true",
                        help="stop (with a checkpoint) when the collapse warning fires")
    parser.add_argument("--diagnose", action="store_true",
                        help="after a run that warned of collapse: nocollapse diagnose RUN_DIR "
                        "(its default branches, one worker)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=0.03 device.precision=bf16-mixed")
    parser.set_defaults(func=run)


def _registries() -> str:
    """The registered predictors (with their options), losses and data sets, for --help."""
    lines = ["", "learner.predictor=NAME:"]
    for name, entry in PREDICTORS.items():
        options = f" (options: {', '.join(entry.options)})" if entry.options else ""
        lines.append(f"  {name:<14} {entry.help}{options}")
    lines.append("learner.loss=NAME:")
    lines += [f"  {name:<14} {entry.help}" for name, entry in LOSSES.items()]
    lines.append("--data NAME:")
    lines += [f"  {name:<14} {entry.help}" for name, entry in DATASETS.items()]
    return "\n".join(lines) + "\n"


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < --config < flags < key=value overrides, built once.

    With ``--resume RUN_DIR`` the base is the configuration stored in the run's checkpoint
    instead of the defaults; ``train`` then compares the two and refuses what a resume may
    not change (:mod:`nocollapse.rundir.resume`).
    """
    overrides = merge(parse_overrides(args.overrides),
                      parse_overrides(environment_overrides()))
    requested = merge(read_yaml(args.config) if args.config else {},
                      merge(_flags(args), overrides))
    if args.resume:
        base = stored_config(args.resume, requested.get("out"))
        return load_config(base=merge(base, {**requested, "out": str(Path(args.resume))}))
    # The file sits between the defaults and the command line: flags and overrides win.
    config = load_config(base=requested if args.config else merge(CPU_DEFAULT, requested))
    if args.out is None and "out" not in overrides:
        config.out = str(_free_run_dir(Path(config.out), config.to_dict()))
    return config


def environment_overrides() -> list[str]:
    """``key=value`` overrides from ``NOCOLLAPSE_OVERRIDES`` (space-separated), applied over
    the command line's (the same key: the variable's wins): a whole session's runs made
    tiny (the docs' tests) without editing the commands. Said on stderr when set."""
    found = shlex.split(os.environ.get(OVERRIDES_VARIABLE, ""))
    if found:
        print(f"nocollapse: {OVERRIDES_VARIABLE} adds {' '.join(found)}", file=sys.stderr)
    return found


def _flags(args: argparse.Namespace) -> ConfigDict:
    """The command's own flags as config keys."""
    flags: ConfigDict = {}
    if args.method:
        flags["method"] = args.method
    if args.data:
        flags.setdefault("data", {})["name"] = args.data
    if args.data_dir is not None:
        flags.setdefault("data", {})["data_dir"] = args.data_dir
    if args.epochs is not None:
        flags["epochs"] = args.epochs
    if args.out is not None:
        flags["out"] = args.out
    if getattr(args, "stop_on_collapse", False):
        flags["monitor"] = {"stop_on_collapse": True}
    return flags


def _free_run_dir(path: Path, config: ConfigDict | None = None) -> Path:
    """``path``, or ``path-2``, ``path-3``... when it already holds a run (finished, or
    running now) or files that are not ``config``'s run: reruns never clash."""
    candidate, n = path, 1
    while (checkpoint_path(candidate).exists() or is_locked(candidate)
           or (config is not None
               and foreign_entries(candidate, {**config, "out": str(candidate)}))):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the last checkpoint kept and the command that continues."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        result = train(config, resume=bool(args.resume), quiet=args.quiet)
    except KeyboardInterrupt as stop:
        print(interrupted_message(Path(config.out), _extension_args(args)), file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    if result.stopped == ALREADY_FINISHED:
        restored = (" Its summary.json, lost to a stop after the final checkpoint, was written "
                    "again from that checkpoint; nothing else was changed."
                    if result.summary_restored else " Nothing was changed.")
        hint = result.extend_hint or f"--epochs {result.epoch + 1}"
        print(f"nocollapse train: the run in {result.run_dir} is already finished (step "
              f"{result.step}, epoch {result.epoch}).{restored} To train it longer: "
              f"nocollapse train --resume {result.run_dir} {hint}")
        return 0
    if not args.quiet:
        print_result(result)
    if getattr(args, "diagnose", False):
        _diagnose(Path(config.out), args.quiet)
    return 0


def _diagnose(run_dir: Path, quiet: bool) -> None:
    """``train --diagnose``: the diagnosis of a run that warned (said so when it did not)."""
    from nocollapse.cli.diagnose import print_diagnosis
    from nocollapse.diagnose import DiagnoseRequest, run_diagnosis
    from nocollapse.rundir.checkpoint import presuspect_path

    if not presuspect_path(run_dir).is_file():
        print(f"nocollapse train --diagnose: {run_dir} logged no suspect step (no snapshot): "
              "nothing to diagnose")
        return
    result = run_diagnosis(DiagnoseRequest(run_dir))
    if not quiet:
        print_diagnosis(result)


def _extension_args(args: argparse.Namespace) -> str:
    """The options of a resume that trains longer (``--epochs``, ``max_steps``): the
    continuing command repeats them, or a finished run's checkpoint would answer "already
    finished" when stopped before the new steps' first checkpoint."""
    if not args.resume:
        return ""
    changes = merge(read_yaml(args.config) if args.config else {},
                    parse_overrides(args.overrides))
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    shown = []
    if "epochs" in changes:
        shown.append(f"--epochs {changes['epochs']}")
    if "max_steps" in changes:
        value = changes["max_steps"]
        shown.append(f"max_steps={'null' if value is None else value}")
    return "".join(f" {part}" for part in shown)


def interrupted_message(run_dir: Path, extension: str = "") -> str:
    """What Ctrl-C leaves: the last checkpoint, and the command that continues from it."""
    if checkpoint_path(run_dir).exists():
        return (f"nocollapse train: interrupted; {run_dir} keeps its last checkpoint. Continue "
                f"with: nocollapse train --resume {run_dir}{extension}")
    return (f"nocollapse train: interrupted before the first checkpoint; start again with "
            f"--out {run_dir}")


def print_result(result: TrainResult, console: Console | None = None) -> None:
    """The standard evaluation (full splits) with its baselines, as a rich table."""
    console = console or Console()
    # a run its time cap (or max_steps, or the collapse warning) stopped early says so first
    how = (f"EARLY: {result.note}" if result.note else
           f"{result.stopped}, {result.step} of {result.planned_steps} steps")
    title = f"nocollapse train: {result.run_dir} ({how}, {result.seconds:.0f} s)"
    if result.evaluation is not None:
        console.print(evaluation_table(result.evaluation, title, "trained encoder",
                                       result.note))
        return
    table = Table(title=title, caption=result.note)
    table.add_column("encoder")
    table.add_column("k-NN accuracy", justify="right")
    table.add_row("trained", "n/a (no labelled test split)")
    console.print(table)
