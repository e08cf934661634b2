"""``nocollapse evaluate RUN_DIR``: k-NN and linear probe on a trained run's frozen encoder."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from nocollapse.errors import check_positive
from nocollapse.train.evaluate_run import EVALUATION_FILE, evaluate_run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="k-NN and linear-probe accuracy of a trained run",
        description="Load RUN_DIR/checkpoints/last.pt and measure the frozen encoder: weighted "
        "k-NN (cosine, k and temperature from the run's config) and a linear probe trained on "
        f"standardised features. Writes RUN_DIR/{EVALUATION_FILE}. With neither --knn nor "
        "--linear, both are run.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by train")
    parser.add_argument("--knn", action="store_true", help="k-NN accuracy")
    parser.add_argument("--linear", action="store_true", help="linear-probe accuracy")
    parser.add_argument("--probe-epochs", type=int, default=100,
                        help="L-BFGS iterations of the linear probe (default 100)")
    parser.add_argument("--all-data", action="store_true",
                        help="use the full train/test splits, not the run's subsets")
    parser.add_argument("--data-dir", help="folder holding the run's data set, when it has "
                        "moved since training (default: the run's data.data_dir)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_positive("--probe-epochs", args.probe_epochs)
    both = not args.knn and not args.linear
    result = evaluate_run(args.run_dir, knn=args.knn or both, linear=args.linear or both,
                          probe_epochs=args.probe_epochs, all_data=args.all_data,
                          device=args.device, data_dir=args.data_dir)
    table = Table(title=f"nocollapse evaluate: {args.run_dir} (step {result['step']}, "
                  f"{result['train_images']} train / {result['test_images']} test images)")
    table.add_column("evaluation")
    table.add_column("accuracy", justify="right")
    for key, name in (("knn_accuracy", "k-NN"), ("linear_accuracy", "linear probe")):
        if key in result:
            table.add_row(name, f"{100 * result[key]:.2f} %")
    Console().print(table)
    return 0
