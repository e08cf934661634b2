"""Figures shared by the reproductions (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nocollapse.runio import atomic_write_bytes
from nocollapse.theory.result import Comparison


def _save(fig: plt.Figure, path: Path) -> None:
    """PNG at ``path`` by temp-then-rename, then free the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_comparisons(panels: Mapping[str, Comparison], path: Path, log_y: bool = False) -> Path:
    """One panel per comparison: simulated eigenvalues as markers, theory as lines."""
    fig, axes = _grid(len(panels))
    for ax, (title, comp) in zip(axes, panels.items(), strict=False):
        colours = plt.cm.viridis(np.linspace(0, 0.9, comp.simulated.shape[1]))
        stride = max(1, len(comp.times) // 40)
        for j, colour in enumerate(colours):
            ax.plot(comp.times, comp.theory[:, j], color=colour, lw=1.2)
            ax.plot(comp.times[::stride], comp.simulated[::stride, j], "o", ms=2.5,
                    color=colour, alpha=0.8)
        ax.set(title=title, xlabel="t (ODE time)", ylabel=comp.quantity)
        if log_y:
            ax.set_yscale("log")
    fig.suptitle("markers: simulation, lines: theory")
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, *, xlabel: str,
                ylabel: str, title: str, vlines: Mapping[str, float] | None = None,
                log_y: bool = False) -> Path:
    """Named ``(x, y)`` curves on one axis, with optional labelled vertical lines."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, (x, y) in curves.items():
        ax.plot(x, y, "o-", ms=3, label=label)
    for label, x in (vlines or {}).items():
        ax.axvline(x, color="grey", ls="--", lw=1)
        ax.annotate(label, (x, 0.95), xycoords=("data", "axes fraction"), rotation=90,
                    ha="right", va="top", fontsize=8, color="grey")
    if log_y:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_phase(x: np.ndarray, y: np.ndarray, collapsed: np.ndarray, boundary: np.ndarray | None,
               path: Path, *, xlabel: str, ylabel: str, title: str) -> Path:
    """Simulated collapse region as an image, the analytic boundary as a line over it."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.imshow(collapsed.astype(float), origin="lower", aspect="auto", cmap="Greys", vmin=0,
              vmax=1.6, extent=(x[0], x[-1], y[0], y[-1]))
    if boundary is not None:
        ax.plot(boundary[:, 0], boundary[:, 1], "r-", lw=1.5, label="analytic boundary")
        ax.legend(fontsize=8, loc="upper right")
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(x[0], x[-1]), ylim=(y[0], y[-1]),
           title=f"{title}\n(grey: simulated collapse)")
    fig.tight_layout()
    _save(fig, path)
    return path
