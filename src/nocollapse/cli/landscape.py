"""``nocollapse landscape``: the per-mode quartic landscape of a linear SSL encoder.

Prints a per-mode table (data variance, augmentation variance, alpha, beta,
learned ``w^2`` or "collapsed"), and writes ``landscape.csv``, ``landscape.png``
(the per-mode loss curves ``L_i(w) = alpha_i w^2 + beta_i w^4``) and ``config.yaml``.
Every argument is checked before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from nocollapse.errors import (
    ConfigError,
    check_in_range,
    check_nonnegative,
    check_positive,
    quoted,
)
from nocollapse.report.figures import figure_png
from nocollapse.report.theory_figures import landscape_figure
from nocollapse.runio import atomic_write_bytes, atomic_write_text, ensure_dir, write_config
from nocollapse.theory.landscape import (
    AUGMENTATION_MODELS,
    LOSSES,
    QuarticLandscape,
    gradient_descent,
    make_landscape,
)

DEFAULT_DIM, DEFAULT_DECAY = 8, 0.7
MAX_DIM = 10_000  # modes, from --dim or --spectrum
MAX_CHECK_DIM = 64  # gradient-descent check stays under a few seconds up to here


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "landscape",
        help="per-mode quartic loss landscape: which modes a linear encoder learns",
        description="Per-mode quartic landscape L = sum_i alpha_i w_i^2 + beta_i w_i^4 of a "
        "linear encoder (docs/theory.md#ziyin2023): mode i is learned iff alpha_i < 0.",
    )
    parser.add_argument("--loss", default="spectral", help=f"one of {', '.join(LOSSES)}")
    parser.add_argument("--gamma", type=float, default=0.5, help="weight decay (>= 0)")
    parser.add_argument("--aug", type=float, default=0.1, help="augmentation variance (>= 0)")
    parser.add_argument(
        "--aug-model", default="additive",
        help=f"one of {', '.join(AUGMENTATION_MODELS)}. additive: views have variance "
        "a_i + aug; marginal: views keep the data variance and share a_i = d_i - aug "
        "(stronger augmentation collapses modes)",
    )
    parser.add_argument("--spectrum", help='data variances, e.g. "1,0.5,0.25"')
    parser.add_argument("--dim", type=int, help=f"number of modes (default {DEFAULT_DIM})")
    parser.add_argument(
        "--decay", type=float, help=f"data variances decay^i (default {DEFAULT_DECAY})"
    )
    parser.add_argument("--check", action="store_true",
                        help="also run full-matrix gradient descent (GD) and show its w^2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --check run")
    parser.add_argument("--out", type=Path, default=Path("runs/landscape"))
    parser.set_defaults(func=run)


def parse_spectrum(args: argparse.Namespace) -> np.ndarray:
    """Data variances from ``--spectrum`` or from ``--dim``/``--decay``, validated."""
    if args.spectrum is not None:
        if args.dim is not None or args.decay is not None:
            raise ConfigError("give either --spectrum or --dim/--decay, not both")
        if args.spectrum.count(",") >= MAX_DIM:  # counted before anything is split
            raise ConfigError(f"--spectrum has {args.spectrum.count(',') + 1} values; at most "
                              f"{MAX_DIM} (as --dim)")
        parts = [p.strip() for p in args.spectrum.split(",") if p.strip()]
        if not parts:
            raise ConfigError(
                f"--spectrum {quoted(args.spectrum)} is empty; give comma-separated positive "
                'variances, e.g. --spectrum "1,0.5,0.25"'
            )
        try:
            return np.array([float(p) for p in parts])
        except ValueError as error:
            raise ConfigError(
                f"--spectrum {quoted(args.spectrum)} is not a list of numbers ({error}); "
                'e.g. --spectrum "1,0.5,0.25"'
            ) from None
    dim = DEFAULT_DIM if args.dim is None else args.dim
    decay = DEFAULT_DECAY if args.decay is None else args.decay
    check_in_range("--dim", dim, 1, MAX_DIM)
    check_positive("--decay", decay)
    check_in_range("--decay", decay, 0.0, 1.0)
    return decay ** np.arange(dim, dtype=float)


def run(args: argparse.Namespace) -> int:
    spectrum = parse_spectrum(args)
    check_nonnegative("--gamma", args.gamma)
    check_nonnegative("--aug", args.aug)
    land = make_landscape(spectrum, args.aug, args.gamma, args.loss, args.aug_model)
    if args.check and land.n_modes > MAX_CHECK_DIM:
        raise ConfigError(f"--check supports up to {MAX_CHECK_DIM} modes, got {land.n_modes}")
    descent = gradient_descent(land, seed=args.seed).mode_w2 if args.check else None
    console = Console()
    console.print(_table(land, spectrum, descent))
    console.print(
        f"learned rank {land.learned_rank()} of {land.n_modes} "
        f"(a mode is learned iff alpha_i = gamma - 2 a_i < 0)"
    )
    ensure_dir(args.out)
    atomic_write_text(args.out / "landscape.csv", _csv(land, spectrum, descent))
    atomic_write_bytes(args.out / "landscape.png", figure_png(landscape_figure(land)))
    write_config(args.out, {
        "command": "landscape", "loss": args.loss, "gamma": args.gamma, "aug": args.aug,
        "aug_model": args.aug_model, "spectrum": spectrum.tolist(), "check": args.check,
        "seed": args.seed, "learned_rank": land.learned_rank(),
    })
    console.print(f"wrote {args.out / 'landscape.csv'} and {args.out / 'landscape.png'}")
    return 0


def _table(land: QuarticLandscape, spectrum: np.ndarray, descent: np.ndarray | None) -> Table:
    table = Table(title=f"per-mode quartic landscape ({land.loss}, gamma={land.gamma:g})",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    shared = not np.allclose(land.a, spectrum)  # marginal model: a_i = d_i - sigma_i
    # Short headers so that the table fits an 80-column terminal.
    columns = ["mode", "data var", *(["shared a"] if shared else []), "aug var", "alpha",
               "beta", "learned w^2", *(["GD w^2"] if descent is not None else [])]
    for column in columns:
        table.add_column(column, justify="right", min_width=9 if column == "learned w^2" else None)
    for i, w2 in enumerate(land.learned_w2()):
        row = [str(i), f"{spectrum[i]:.3g}", *([f"{land.a[i]:.3g}"] if shared else []),
               f"{land.sigma[i]:.3g}", f"{land.alpha[i]:+.3g}", f"{land.beta[i]:.3g}",
               f"{w2:.3g}" if w2 > 0 else "[red]collapsed[/]"]
        if descent is not None:
            row.append(f"{descent[i]:.3g}")
        table.add_row(*row)
    return table


def _csv(land: QuarticLandscape, spectrum: np.ndarray, descent: np.ndarray | None) -> str:
    header = "mode,data_variance,shared_variance,augmentation_variance,alpha,beta,learned_w2,status"
    lines = [header + (",gradient_descent_w2" if descent is not None else "")]
    for i, w2 in enumerate(land.learned_w2()):
        fields = [i, spectrum[i], land.a[i], land.sigma[i], land.alpha[i], land.beta[i], w2,
                  "learned" if w2 > 0 else "collapsed"]
        if descent is not None:
            fields.append(descent[i])
        lines.append(",".join(f"{f:.10g}" if isinstance(f, float) else str(f) for f in fields))
    return "\n".join(lines) + "\n"
