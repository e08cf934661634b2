"""``nocollapse report RUN_DIR [RUN_DIR ...] [--out DIR]``: figures and report.md from runs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="draw figures and report.md from run directories (nothing is rerun)",
        description="Read training or simulation run directories (complete, in progress or "
        "crashed) and write PNG figures plus report.md. Given a sweep directory "
        "(nocollapse sweep), draw its phase diagram (two axes) or curves (one axis) and "
        "sweep_report.md.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: RUN_DIR/report for one run, ./report for several)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=None,
        metavar="E",
        help="epochs at which to draw the eigen-alignment matrix (default: first, middle, last)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nocollapse.report import build_report
    from nocollapse.report.sweep import build_sweep_report, is_sweep_dir

    if len(args.run_dirs) == 1 and is_sweep_dir(args.run_dirs[0]):
        files = build_sweep_report(args.run_dirs[0], args.out)
        print(f"wrote {len(files)} file(s) to {files[0].parent}:")
        for path in files:
            print(f"  {path}")
        return 0

    report = build_report(args.run_dirs, args.out, args.epochs)
    print(f"wrote {len(report.files)} file(s) to {report.out_dir}:")
    for path in report.files:
        print(f"  {path}")
    for note in report.skipped:
        print(f"  note: {note}")
    return 0
