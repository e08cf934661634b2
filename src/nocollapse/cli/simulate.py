"""``nocollapse simulate``: a theory model's matrix simulation against its reduced ODE.

Runs the model's ``run_comparison`` (``nocollapse.theory.registry.THEORY_MODELS``) and
writes ``config.yaml``, ``metrics.jsonl`` (one line per time point: ``t``, ``simulated``,
``theory`` and the model's extras) and ``eigenvalues.png``, then prints the final
eigenvalues per mode. Every argument is checked before anything is written.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from nocollapse.errors import (
    ConfigError,
    check_choice,
    check_in_range,
    check_nonnegative,
    check_positive,
    check_seed,
)
from nocollapse.report.figures import figure_png
from nocollapse.report.theory_figures import eigenvalue_figure
from nocollapse.runio import MetricsWriter, atomic_write_bytes, ensure_dir, write_config
from nocollapse.theory.registry import THEORY_MODELS, theory_loss_names
from nocollapse.theory.result import Comparison, SimulationParams

AUGMENT = ("target", "both")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a theory model and compare with its eigenmode ODE",
        description="Full-matrix simulation of a linear non-contrastive model against the "
        "reduced eigenmode ODE started from the same state (docs/theory.md). "
        "Options left out take the model's defaults.",
    )
    parser.add_argument("--model", default="tian2021",
                        help=f"one of {', '.join(THEORY_MODELS)}")
    parser.add_argument("--loss", help=f"one of {', '.join(theory_loss_names())} (loss table "
                        "names, each model accepts those it has a theory for; model default if "
                        "omitted)")
    parser.add_argument("--augment", help="halvagal2023: which views carry the noise, 'target' "
                        "(the authors' code, default) or 'both' (the paper's statement)")
    parser.add_argument("--eta", type=float, help="weight decay (>= 0)")
    parser.add_argument("--sigma2", type=float, help="augmentation variance (>= 0)")
    parser.add_argument("--alpha-p", type=float, help="predictor learning-rate ratio (>= 0)")
    parser.add_argument("--beta", type=float, help="EMA rate of the target (>= 0; omit: SimSiam)")
    parser.add_argument("--steps", type=int, help="number of steps (> 0)")
    parser.add_argument("--lr", type=float, help="step size, ODE time per step (> 0)")
    parser.add_argument("--n1", type=int, help="input dimension (> 0)")
    parser.add_argument("--n2", type=int, help="output dimension (> 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, help="output directory (default runs/simulate-MODEL)")
    parser.set_defaults(func=run)


def params_from_args(args: argparse.Namespace) -> SimulationParams:
    """Validated :class:`SimulationParams` (raises ConfigError naming the bad value)."""
    check_choice("--model", args.model, tuple(THEORY_MODELS))
    if args.loss is not None:
        check_choice("--loss", args.loss, theory_loss_names())
    if args.augment is not None:
        check_choice("--augment", args.augment, AUGMENT)
    for name in ("eta", "sigma2", "alpha_p", "beta"):
        value = getattr(args, name)
        if value is not None:
            check_nonnegative("--" + name.replace("_", "-"), value)
    for name in ("steps", "lr", "n1", "n2"):
        value = getattr(args, name)
        if value is not None:
            check_positive("--" + name, value)
    check_seed("--seed", args.seed)
    if args.steps is not None:
        check_in_range("--steps", args.steps, 1, MAX_STEPS)  # a run of hours at most
    return SimulationParams(
        model=args.model, loss=args.loss, augment=args.augment, eta=args.eta, sigma2=args.sigma2,
        alpha_p=args.alpha_p, beta=args.beta, steps=args.steps, lr=args.lr, n1=args.n1,
        n2=args.n2, seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    out = args.out if args.out is not None else Path(f"runs/simulate-{params.model}")
    check_memory(params)
    model = THEORY_MODELS[params.model]
    start = time.perf_counter()
    try:
        # a diverging step overflows before it breaks down: the error below says so, once
        with np.errstate(over="ignore", invalid="ignore"):
            comp = model.run_comparison(params)  # raises ConfigError before writing anything
    except (np.linalg.LinAlgError, FloatingPointError, OverflowError) as error:
        raise ConfigError(f"the {params.model} simulation broke down ({type(error).__name__}: "
                          f"{error}); the step is probably too large for these parameters "
                          f"(--lr {params.lr}): lower --lr") from error
    wall = time.perf_counter() - start
    ensure_dir(out)
    write_config(out, {
        "command": "simulate", **{k: v for k, v in vars(params).items()},
        "quantity": comp.quantity, "collapse_threshold": comp.collapse_threshold,
        "resolved": comp.params, "wall_time_s": round(wall, 3),
    })
    write_metrics(out, comp)
    atomic_write_bytes(out / "eigenvalues.png", figure_png(eigenvalue_figure(comp)))
    console = Console()
    console.print(final_table(comp))
    console.print(f"wall time {wall:.2f} s; wrote {out}/metrics.jsonl, eigenvalues.png")
    return 0


# Snapshots a model keeps (at most ~200 recorded times, plus the start) and the
# inputs a step draws: the simulated state is O(snapshots * n2 * (n1 + n2)) floats.
SNAPSHOTS = 202
SAMPLES = 512
# The most steps a simulation takes (a few minutes of RK4 on the default sizes).
MAX_STEPS = 1_000_000


def memory_estimate(n1: int, n2: int) -> int:
    """Bytes a simulation of ``n1`` inputs, ``n2`` outputs holds at least (float64)."""
    floats = (SNAPSHOTS * (n1 * n2 + 3 * n2 * n2) + 8 * (n1 * n1 + n1 * n2 + n2 * n2)
              + 4 * SAMPLES * (n1 + n2))
    return 8 * floats


def check_memory(params: SimulationParams) -> None:
    """Refuse sizes whose estimated memory exceeds half of this machine's RAM."""
    if params.n1 is None and params.n2 is None:
        return
    n1, n2 = params.n1 or 1, params.n2 or 1
    need = memory_estimate(n1, n2)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have // 2:
        raise ConfigError(f"--n1 {params.n1} --n2 {params.n2} would need about "
                          f"{need / 2**30:.1f} GiB (the simulation keeps ~{SNAPSHOTS} snapshots "
                          f"of its matrices); this machine has {have / 2**30:.1f} GiB. Use "
                          "smaller dimensions")


def metric_records(comp: Comparison) -> list[dict[str, object]]:
    """One JSON-ready dict per time point: ``t``, ``simulated``, ``theory``, extras."""
    records = []
    for i, t in enumerate(comp.times):
        record: dict[str, object] = {
            "t": float(t), "simulated": comp.simulated[i].tolist(),
            "theory": comp.theory[i].tolist(),
        }
        for key, series in comp.extras.items():
            value = np.asarray(series)[i]
            record[key] = value.tolist() if np.ndim(value) else float(value)
        records.append(record)
    return records


def write_metrics(out: Path, comp: Comparison) -> None:
    """Write ``metrics.jsonl`` afresh (a re-run into the same directory replaces it)."""
    with MetricsWriter(out, append=False) as writer:
        for record in metric_records(comp):
            writer.write(record)


def final_table(comp: Comparison) -> Table:
    """Rich table of the final eigenvalue per mode, theory vs simulation."""
    table = Table(title=f"{comp.model}: final {comp.quantity}", box=box.SIMPLE_HEAD)
    for column in ("mode", "theory", "simulation", "rel. error", "status"):
        table.add_column(column, justify="left" if column == "status" else "right")
    errors = comp.final_relative_error()
    collapsed = comp.collapsed_modes()
    for j in range(comp.simulated.shape[1]):
        table.add_row(
            str(j), f"{comp.theory[-1, j]:.5g}", f"{comp.simulated[-1, j]:.5g}",
            f"{errors[j]:.2e}", "collapsed" if collapsed[j] else "learned",
        )
    return table
