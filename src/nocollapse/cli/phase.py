"""``nocollapse phase``: collapse phase diagram of the tian2021 dynamics over two parameters.

Writes ``phase.png`` (simulated collapse region as an image, analytic boundary over it),
``phase.csv`` (one row per cell) and ``config.yaml``, and prints how many cells away
from the boundary agree with the analytic prediction. Arguments are checked first.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nocollapse.errors import check_finite, check_nonnegative, check_positive, check_seed
from nocollapse.report.figures import figure_png
from nocollapse.report.theory_figures import phase_figure
from nocollapse.runio import atomic_write_bytes, atomic_write_text, ensure_dir, write_config
from nocollapse.theory.phase import AXES, MODELS, PhaseDiagram, phase_diagram

DEFAULT_GRID = {"reduced": 200, "matrix": 16}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "phase",
        help="collapse / no-collapse phase diagram over two parameters (tian2021)",
        description="Integrate the tian2021 eigenmode ODE (or the matrix flow) on a grid of "
        "two parameters and compare the collapsed region with eta_c = 1/(4(1+sigma2)) and "
        "p*_-(eta) (docs/theory.md#tian2021).",
    )
    parser.add_argument("--x", default="eta", help=f"x parameter, one of {', '.join(AXES)}")
    parser.add_argument("--y", default="sigma2", help=f"y parameter, one of {', '.join(AXES)}")
    parser.add_argument("--x-range", type=float, nargs=2, metavar=("A", "B"))
    parser.add_argument("--y-range", type=float, nargs=2, metavar=("A", "B"))
    parser.add_argument("--grid", type=int, help="cells per axis (default 200 reduced, 16 matrix)")
    parser.add_argument("--model", default="reduced", help=f"one of {', '.join(MODELS)}")
    for name, text in (("eta", "weight decay"), ("sigma2", "augmentation variance"),
                       ("alpha-p", "predictor rate ratio"), ("beta", "EMA rate (omit: SimSiam)"),
                       ("p0", "initial p (default 1/(1+sigma2))"), ("s0", "initial s")):
        parser.add_argument(f"--{name}", type=float, help=f"fixed {text} (>= 0)")
    parser.add_argument("--t-end", type=float, default=200.0, help="integration time (> 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the matrix start")
    parser.add_argument("--out", type=Path, help="output directory (default runs/phase-X-Y)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fixed: dict[str, float | None] = {}
    for name in ("eta", "sigma2", "alpha_p", "beta", "p0", "s0"):
        value = getattr(args, name)
        if value is not None:
            fixed[name] = check_nonnegative("--" + name.replace("_", "-"), value)
    check_positive("--t-end", args.t_end)
    check_seed("--seed", args.seed)
    for name in ("x_range", "y_range"):
        for value in getattr(args, name) or ():
            check_finite("--" + name.replace("_", "-"), value)
    grid = DEFAULT_GRID.get(args.model, 1) if args.grid is None else args.grid
    start = time.perf_counter()
    diagram = phase_diagram(args.x, args.y, args.x_range, args.y_range, grid, model=args.model,
                            fixed=fixed, t_end=args.t_end, seed=args.seed)
    wall = time.perf_counter() - start
    out = args.out if args.out is not None else Path(f"runs/phase-{args.x}-{args.y}")
    ensure_dir(out)
    agree, total = diagram.agreement()
    write_config(out, {
        "command": "phase", "x": args.x, "y": args.y, "x_range": diagram.x[[0, -1]],
        "y_range": diagram.y[[0, -1]], "grid": grid, "model": args.model,
        "fixed": diagram.fixed, "t_end": args.t_end, "seed": args.seed,
        "agree": agree, "cells_away_from_boundary": total, "wall_time_s": round(wall, 3),
    })
    atomic_write_text(out / "phase.csv", phase_csv(diagram))
    atomic_write_bytes(out / "phase.png", figure_png(phase_figure(diagram)))
    print(f"{grid}x{grid} {args.model} grid in {wall:.2f} s; "
          f"collapsed cells: {int(diagram.collapsed.sum())} of {diagram.collapsed.size}")
    if diagram.predicted is None:
        print("no analytic boundary for these axes (EMA or off-parabola start)")
    elif total:
        print(f"agreement with the analytic boundary: {agree} of {total} cells "
              f"({100 * agree / total:.1f}%) at least 2 cells from the boundary")
    else:
        print("every cell lies within 2 cells of the analytic boundary: use a finer --grid")
    print(f"wrote {out / 'phase.png'} and {out / 'phase.csv'}")
    return 0


def phase_csv(d: PhaseDiagram) -> str:
    """CSV rows ``x, y, final_p, collapsed, predicted`` (predicted empty when none)."""
    lines = [f"{d.x_name},{d.y_name},final_p,collapsed,predicted"]
    for i, yv in enumerate(d.y):
        for j, xv in enumerate(d.x):
            pred = "" if d.predicted is None else str(int(d.predicted[i, j]))
            lines.append(f"{xv:.6g},{yv:.6g},{d.final_p[i, j]:.6g},"
                         f"{int(d.collapsed[i, j])},{pred}")
    return "\n".join(lines) + "\n"
