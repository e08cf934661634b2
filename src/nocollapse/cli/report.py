"""``nocollapse report RUN_DIR [RUN_DIR ...] [--out DIR]``: figures and report.md from runs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="draw figures and report.md from run directories (nothing is rerun)",
        description="Read training or simulation run directories (complete, in progress or "
        "crashed) and write PNG figures plus report.md.",
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

    report = build_report(args.run_dirs, args.out, args.epochs)
    print(f"wrote {len(report.files)} file(s) to {report.out_dir}:")
    for path in report.files:
        print(f"  {path}")
    for note in report.skipped:
        print(f"  note: {note}")
    return 0
