"""``nocollapse evaluate RUN_DIR``: k-NN and linear probe on a trained run's frozen encoder."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from nocollapse.errors import check_positive
from nocollapse.evaluate import BASELINES, EvalProgress
from nocollapse.posthoc.evaluate_run import EVALUATION_FILE, evaluate_run
from nocollapse.report.runs import BASELINE_LONG_LABELS
from nocollapse.runio.records import Evaluation


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="k-NN and linear-probe accuracy of a trained run, with baselines",
        description="Load RUN_DIR/checkpoints/last.pt and measure the frozen encoder by the "
        "standard protocol: the full train split as k-NN bank and probe training set, the full "
        "test split as queries; weighted k-NN (cosine, k from the run's config and k=20) and a "
        "linear probe on standardised features. --baselines adds raw pixels, the random-init "
        "encoder and a supervised upper bound (same backbone, cross-entropy), measured the same "
        f"way and cached per data set. Writes RUN_DIR/{EVALUATION_FILE}.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by train")
    parser.add_argument("--knn", action="store_true",
                        help="k-NN only: skip the linear probe (and its baseline rows)")
    parser.add_argument("--baselines", action="store_true",
                        help="raw pixels, random init and supervised rows (cached)")
    parser.add_argument("--probe-epochs", type=int, default=100,
                        help="L-BFGS iterations of the linear probe (default 100)")
    parser.add_argument("--data-dir", help="folder holding the run's data set, when it has "
                        "moved since training (default: the run's data.data_dir)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_positive("--probe-epochs", args.probe_epochs)
    result = evaluate_run(args.run_dir, linear=not args.knn,
                          probe_epochs=args.probe_epochs, baselines=args.baselines,
                          device=args.device, data_dir=args.data_dir,
                          progress=EvalProgress())
    title = f"nocollapse evaluate: {args.run_dir} (step {result['step']})"
    Console().print(evaluation_table(result, title, "trained encoder"))
    return 0


def evaluation_table(evaluation: Evaluation, title: str, trained: str = "trained",
                     note: str | None = None) -> Table:
    """The standard protocol's table: the encoder and its baselines, one row each."""
    protocol = evaluation["protocol"]
    caption = note
    pending_baselines = evaluation.get("pending_baselines", {})
    if pending_baselines:
        pending = " and ".join(pending_baselines)
        caption = "; ".join(filter(None, [note, f"{pending}: not run by default (it trains as "
                                          "long as the run); the command in its row measures "
                                          "it, cached after"]))
    table = Table(title=title, caption=caption)
    table.add_column(f"features ({evaluation['train_images']} train / "
                     f"{evaluation['test_images']} test images)")
    columns = [(f"knn_k{k}", f"k-NN k={k}") for k in protocol["knn_k"]]
    if protocol.get("linear", True):
        columns.append(("linear_probe", "linear probe"))
    for _, header in columns:
        table.add_column(header, justify="right")
    rows = [(trained + (f" ({note})" if note else ""), evaluation["trained"])]
    rows += [(BASELINE_LONG_LABELS[name] + (" [cached]" if values.get("cached") else ""), values)
             for name, values in evaluation["baselines"].items() if name in BASELINES]
    for label, values in rows:
        table.add_row(label, *(_percent(values.get(key)) for key, _ in columns))
    for name, command in pending_baselines.items():
        table.add_row(f"{name}: {command}", *("not run" for _ in columns))
    return table


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"
