"""PNG figures drawn from loaded runs (see :mod:`nocollapse.report.runs`).

Every figure is ``FIGSIZE`` inches at ``DPI`` (640 x 400 pixels) so reports look
alike; each function returns ``False`` and draws nothing when its data is absent.
Figures use matplotlib's object API with the Agg canvas: no global pyplot state,
no display needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nocollapse.report.runs import (
    BASELINE_LABELS,
    Run,
    metric_key,
    number,
    record_epoch,
    series,
)
from nocollapse.runio import atomic_write_bytes
from nocollapse.runio.records import JSONObject

if TYPE_CHECKING:  # for the annotation only
    from nocollapse.report.theory_run import PredictorSpectrum

FIGSIZE = (6.4, 4.0)
DPI = 100
MAX_MODES = 64  # lines per eigenvalue plot; more are unreadable and slow to draw

# spectra.jsonl keys (written by nocollapse.monitor) -> plot titles.
SPECTRA_TITLES = {
    "F_eigenvalues": "eigenvalues of F_hat (embedding correlation, running)",
    "Wp_eigenvalues": "eigenvalues of the predictor Wp (symmetric part)",
    "Z_eigenvalues": "eigenvalues of the batch embedding correlation",
}
METRIC_LABELS = {
    "loss": "loss",
    "knn_accuracy": "k-NN accuracy",
    "collapse_level": "collapse level (0 healthy, 1 collapsed)",
    "effective_rank": "effective rank",
}


def new_figure(nrows: int = 1, ncols: int = 1,
               figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, np.ndarray]:
    """A figure on its own Agg canvas (no pyplot, no backend switch) and its axes grid."""
    figure = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def save_figure(figure: Figure, path: Path, tight: bool = True) -> Path:
    """Write ``figure`` as a PNG at ``DPI`` to ``path`` by temp-then-rename (a symlink
    there is replaced, never followed; its folder is created)."""
    atomic_write_bytes(path, figure_png(figure, tight))
    return path


def figure_png(figure: Figure, tight: bool = True) -> bytes:
    """``figure`` as PNG bytes at ``DPI`` (for writing atomically)."""
    if tight:
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # no bbox="tight": keep the pixel size fixed
    return buffer.getvalue()



def plot_metric(runs: Sequence[Run], metric: str, path: Path) -> bool:
    """One scalar metric (a name of ``runs.METRIC_KEYS``) against step/t, runs overlaid."""
    figure, axes = new_figure()
    ax = axes[0, 0]
    drawn = 0
    x_name = "step"
    for run in runs:
        key = metric_key(run, metric)
        if key is None:
            continue
        xs, ys, x_name = series(run.metrics, key)
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=run.label)
        drawn += 1
    if not drawn:
        return False
    ax.set_xlabel(x_name)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    ax.set_title(METRIC_LABELS.get(metric, metric))
    save_figure(figure, path)
    return True


def _matrix_rows(records: list[JSONObject], key: str, x_key: str
                 ) -> tuple[list[float], np.ndarray]:
    """Stack per-record eigenvalue lists into (records, modes), padding with NaN."""
    rows = [(number(r.get(x_key), i), found) for i, r in enumerate(records)
            if isinstance(found := r.get(key), list)]
    if not rows:
        return [], np.empty((0, 0))
    width = max(len(values) for _, values in rows)
    table = np.full((len(rows), width), np.nan)
    for i, (_, values) in enumerate(rows):
        table[i, : len(values)] = [v if isinstance(v, int | float) else np.nan for v in values]
    return [x for x, _ in rows], table


def _mode_lines(ax: Axes, xs: list[float], table: np.ndarray, style: str = "-",
                label: str = "") -> None:
    """Draw |eigenvalue| per mode on a log axis, coloured by mode index.

    A mode that is ever negative (possible for the predictor's spectrum) is dotted.
    """
    modes = min(table.shape[1], MAX_MODES)
    colours = mode_colours(modes)
    for j in range(modes):
        column = table[:, j]
        values = np.abs(column)
        values[values <= 0] = np.nan  # log scale: a collapsed (exact zero) mode leaves the plot
        line = ":" if np.nanmin(column, initial=0.0) < 0 else style
        ax.plot(xs, values, line, color=colours[j], lw=1.0, label=label if j == 0 else None)
    ax.set_yscale("log")


def mode_colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(j / max(n - 1, 1)) for j in range(n)]


def plot_eigen_trajectories(run: Run, key: str, path: Path) -> bool:
    """Eigenvalue trajectories from ``spectra.jsonl`` (one line per mode, log scale)."""
    xs, table = _matrix_rows(run.spectra, key, "epoch")
    if table.size == 0 or not np.isfinite(table).any():
        return False
    figure, axes = new_figure()
    ax = axes[0, 0]
    _mode_lines(ax, xs, table)
    ax.set_xlabel("epoch")
    ax.set_ylabel("|eigenvalue| (dotted: negative)" if np.nanmin(table) < 0 else "eigenvalue")
    shown = min(table.shape[1], MAX_MODES)
    note = f" (top {shown} of {table.shape[1]})" if shown < table.shape[1] else ""
    ax.set_title(f"{run.label}: {SPECTRA_TITLES.get(key, key)}{note}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    save_figure(figure, path)
    return True


def plot_simulation(run: Run, path: Path) -> bool:
    """Simulated (solid) and theoretical (dashed) mode trajectories of a simulation run."""
    xs, simulated = _matrix_rows(run.metrics, "simulated", "t")
    if simulated.size == 0:
        return False
    figure, axes = new_figure()
    ax = axes[0, 0]
    _mode_lines(ax, xs, simulated, "-", "simulated")
    txs, theory = _matrix_rows(run.metrics, "theory", "t")
    if theory.size:
        _mode_lines(ax, txs, theory, "--", "theory")
        ax.legend(fontsize=8)
    ax.set_xlabel("t")
    ax.set_ylabel(str(run.config.get("quantity", "|eigenvalue| per mode")), fontsize=8)
    ax.set_title(f"{run.label}: simulated vs theory, one line per mode", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    save_figure(figure, path)
    return True


def scalar_keys(records: list[JSONObject], exclude: Sequence[str] = ()) -> list[str]:
    """Keys holding a finite number in some record, minus axes and ``exclude``, in order."""
    skip = {"t", "step", "epoch", "final", *exclude}
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in skip and isinstance(value, int | float) and not isinstance(value, bool):
                keys.setdefault(key, None)
    return [k for k in keys if any(np.isfinite(_float(r.get(k))) for r in records)]


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def plot_extras(run: Run, path: Path, exclude: Sequence[str] = (), limit: int = 6) -> bool:
    """Up to ``limit`` further scalar series of a run (simulation extras), one panel each."""
    keys = scalar_keys(run.metrics, exclude)[:limit]
    if not keys:
        return False
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    figure, axes = new_figure(rows, cols)
    for index, ax in enumerate(axes.flat):
        if index >= len(keys):
            ax.set_visible(False)
            continue
        xs, ys, x_name = series(run.metrics, keys[index])
        ax.plot(xs, ys)
        ax.set_title(keys[index], fontsize=8)
        ax.set_xlabel(x_name, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    figure.suptitle(f"{run.label}: further logged series", fontsize=9)
    save_figure(figure, path)
    return True


def alignment_epochs(run: Run, wanted: Sequence[int] | None = None, count: int = 3) -> list[int]:
    """Epochs with a saved alignment matrix: ``wanted`` ones, else first, middle, last."""
    available = [record_epoch(r, i) for i, r in enumerate(run.spectra) if r.get("alignment")]
    if wanted:
        return [e for e in wanted if e in available]
    if len(available) <= count:
        return available
    picks = {available[round(i * (len(available) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def plot_alignment(run: Run, epochs: Sequence[int], path: Path) -> bool:
    """Heat maps of ``|u_i^T v_j|`` (eigenvectors of F_hat vs Wp) at the given epochs."""
    by_epoch = {
        record_epoch(r, i): r["alignment"] for i, r in enumerate(run.spectra) if r.get("alignment")
    }
    epochs = [e for e in epochs if e in by_epoch]
    if not epochs:
        return False
    figure, axes = new_figure(1, len(epochs))
    image = None
    for ax, epoch in zip(axes[0], epochs, strict=True):
        matrix = np.abs(np.asarray(by_epoch[epoch], dtype=float))
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="magma", interpolation="nearest")
        ax.set_title(f"epoch {epoch}", fontsize=9)
        ax.set_xlabel("Wp eigenvector j", fontsize=8)
        if ax is axes[0, 0]:
            ax.set_ylabel("F eigenvector i", fontsize=8)
        ax.tick_params(labelsize=7)
    if image is not None:
        figure.colorbar(image, ax=list(axes[0]), shrink=0.8, label="|u_i^T v_j|")
    figure.suptitle(f"{run.label}: eigen-alignment of F_hat and Wp", fontsize=10)
    save_figure(figure, path, tight=False)  # colorbar spans axes: tight_layout would warn
    return True


def knn_curve(run: Run) -> tuple[list[float], list[float]]:
    """(training seconds, k-NN accuracy) of a run's in-training k-NN records.

    The seconds are the loop's ``train_seconds`` (monitoring time left out); the final
    record (full splits) is drawn as a marker by :func:`plot_learning_curves` instead.
    """
    points = [(number(r.get("train_seconds"), math.nan), float(knn)) for r in run.metrics
              if "train_seconds" in r and isinstance(knn := r.get("knn_accuracy"), int | float)
              and not r.get("final")]
    return [x for x, _ in points], [y for _, y in points]


def final_figures(run: Run) -> tuple[float | None, dict[str, float]]:
    """The run's final k-NN (full splits) and its baselines' k-NN, from ``summary.json``."""
    evaluation = run.evaluation
    if evaluation is None:
        return None, {}
    headline = evaluation.get("headline", "knn_k200")
    final = (evaluation.get("trained") or {}).get(headline)
    baselines = {name: float(values[headline])
                 for name, values in (evaluation.get("baselines") or {}).items()
                 if isinstance(values, dict) and isinstance(values.get(headline), int | float)}
    return (float(final) if isinstance(final, int | float) else None), baselines


def plot_learning_curves(runs: Sequence[Run], path: Path) -> bool:
    """k-NN accuracy against training wall time, runs overlaid, baselines as horizontal lines.

    Lines: the in-training k-NN (``eval.knn_every``, monitor subsets); filled markers:
    each run's final k-NN on the full splits at its total time; dashed horizontal lines:
    the baselines of the first run that has them (the same data and backbone).
    """
    figure, axes = new_figure()
    ax = axes[0, 0]
    drawn = 0
    for run in runs:
        xs, ys = knn_curve(run)
        final, _ = final_figures(run)
        if not xs and final is None:
            continue
        line = ax.plot(xs, ys, label=run.label)[0] if xs else None
        if final is not None:
            seconds = number(run.summary.get("seconds"), 0.0) or (xs[-1] if xs else 0.0)
            colour = line.get_color() if line is not None else None
            ax.plot([seconds], [final], "o", color=colour,
                    label=None if line is not None else run.label)
        drawn += 1
    if not drawn:
        return False
    baselines = next((b for b in (final_figures(r)[1] for r in runs) if b), {})
    for index, (name, value) in enumerate(sorted(baselines.items(), key=lambda kv: kv[1])):
        ax.axhline(value, ls="--", lw=1, color=f"C{7 + index % 3}",
                   label=f"{BASELINE_LABELS.get(name, name)} ({100 * value:.1f} %)")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("k-NN accuracy")
    ax.set_title("k-NN accuracy vs wall time (dot: final, full test split)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(figure, path)
    return True


def plot_predictor_spectrum(run: Run, spectra: Sequence[PredictorSpectrum], path: Path
                            ) -> bool:
    """``p_j`` against ``s_j`` (log-log) per epoch, the fitted power law and DirectPred's line.

    ``spectra``: :class:`nocollapse.report.theory_run.PredictorSpectrum` items. The
    DirectPred line is ``p = sqrt(s / s_max)`` (its formula with ``eps = 0``).
    """
    spectra = [item for item in spectra if np.any(item.s > 0) and np.any(item.p > 0)]
    if not spectra:
        return False
    figure, axes = new_figure(1, len(spectra))
    for ax, item in zip(axes[0], spectra, strict=True):
        keep = (item.s > 0) & (item.p > 0)
        ax.loglog(item.s[keep], item.p[keep], "o", ms=3, color="tab:blue", label="p_j")
        grid = np.geomspace(item.s[keep].min(), item.s[keep].max(), 50)
        ax.loglog(grid, np.sqrt(grid / item.s.max()), "--", color="grey", lw=1,
                  label="DirectPred sqrt(s/s_max)")
        if item.fit is not None:
            fit = item.fit
            ax.loglog(grid, fit.prefactor * grid**fit.exponent, "-", color="tab:red", lw=1.2,
                      label=f"fit k={fit.exponent:.2f}, R^2={fit.r2:.2f}")
        ax.set_title(f"epoch {item.epoch}", fontsize=9)
        ax.set_xlabel("s_j (eigenvalue of F_hat)", fontsize=8)
        if ax is axes[0, 0]:
            ax.set_ylabel("p_j = u_j^T Wp u_j", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    figure.suptitle(f"{run.label}: predictor spectrum in F_hat's eigenbasis", fontsize=10)
    save_figure(figure, path)
    return True
