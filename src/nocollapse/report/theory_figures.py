"""Figures of the theory: simulation against theory, curves, phase diagrams, landscapes.

Drawn with the same conventions as :mod:`nocollapse.report.figures` (object API on
an Agg canvas, ``DPI``): nothing global changes on import. Functions return the
:class:`~matplotlib.figure.Figure`; write it with ``save_figure`` or ``figure_png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from nocollapse.report.figures import mode_colours, new_figure, save_figure
from nocollapse.theory.landscape import QuarticLandscape
from nocollapse.theory.phase import PhaseDiagram
from nocollapse.theory.result import Comparison


def comparisons_figure(panels: Mapping[str, Comparison], log_y: bool = False) -> Figure:
    """One panel per comparison: simulated eigenvalues as markers, theory as lines."""
    n = len(panels)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = new_figure(rows, cols, figsize=(5.5 * cols, 3.8 * rows))
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (title, comp) in zip(axes.flat, panels.items(), strict=False):
        colours = mode_colours(comp.simulated.shape[1])
        stride = max(1, len(comp.times) // 40)
        for j, colour in enumerate(colours):
            ax.plot(comp.times, comp.theory[:, j], color=colour, lw=1.2)
            ax.plot(comp.times[::stride], comp.simulated[::stride, j], "o", ms=2.5,
                    color=colour, alpha=0.8)
        ax.set(title=title, xlabel="t (ODE time)", ylabel=comp.quantity)
        if log_y:
            ax.set_yscale("log")
    fig.suptitle("markers: simulation, lines: theory")
    return fig


def plot_comparisons(panels: Mapping[str, Comparison], path: Path, log_y: bool = False) -> Path:
    """:func:`comparisons_figure` written to ``path``."""
    return save_figure(comparisons_figure(panels, log_y), path)


def plot_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, *, xlabel: str,
                ylabel: str, title: str, vlines: Mapping[str, float] | None = None,
                log_y: bool = False) -> Path:
    """Named ``(x, y)`` curves on one axis, with optional labelled vertical lines."""
    fig, axes = new_figure(figsize=(6.5, 4.2))
    ax = axes[0, 0]
    for label, (x, y) in curves.items():
        ax.plot(x, y, "o-", ms=3, label=label)
    for label, position in (vlines or {}).items():
        ax.axvline(position, color="grey", ls="--", lw=1)
        ax.annotate(label, (position, 0.95), xycoords=("data", "axes fraction"), rotation=90,
                    ha="right", va="top", fontsize=8, color="grey")
    if log_y:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def phase_figure(d: PhaseDiagram, title: str = "tian2021 phase diagram") -> Figure:
    """Final ``p`` as an image, collapsed cells dark, the analytic boundary in red."""
    fig, axes = new_figure(figsize=(5.6, 4.4))
    ax = axes[0, 0]
    extent = (d.x[0], d.x[-1], d.y[0], d.y[-1])
    image = ax.imshow(np.where(d.collapsed, np.nan, d.final_p), origin="lower", extent=extent,
                      aspect="auto", cmap="viridis")
    ax.imshow(np.where(d.collapsed, 1.0, np.nan), origin="lower", extent=extent,
              aspect="auto", cmap=ListedColormap(["#303030"]), vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="final p (learned cells)")
    if d.boundary is not None:
        ax.plot(d.boundary[:, 0], d.boundary[:, 1], "r-", lw=2, label="analytic boundary")
        ax.legend(fontsize=8, loc="upper right")
    ax.set(xlim=(d.x[0], d.x[-1]), ylim=(d.y[0], d.y[-1]), xlabel=d.x_name, ylabel=d.y_name)
    ax.set_title(f"{title} (dark: collapsed)", fontsize=9)
    return fig


def eigenvalue_figure(comp: Comparison) -> Figure:
    """Simulation as markers, theory as lines, one colour per mode (log scale when wide)."""
    sim, th = np.abs(comp.simulated), np.abs(comp.theory)
    positive = np.concatenate([sim[sim > 0], th[th > 0]])
    log = positive.size > 0 and positive.max() / max(positive.min(), 1e-300) > 100
    fig, axes = new_figure(figsize=(6.4, 4.2))
    ax = axes[0, 0]
    colours = mode_colours(sim.shape[1])
    every = max(1, len(comp.times) // 25)
    for j in range(sim.shape[1]):
        ax.plot(comp.times, th[:, j], "-", color=colours[j], lw=1.2)
        ax.plot(comp.times[::every], sim[::every, j], "o", color=colours[j], ms=3.5, mfc="none")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(positive.min(), positive.max() * 1e-8))
    ax.plot([], [], "k-", label="theory (reduced ODE)")
    ax.plot([], [], "ko", mfc="none", label="simulation")
    ax.legend(fontsize=8)
    ax.set_xlabel("t")
    ax.set_ylabel(comp.quantity + (" (abs)" if log else ""))
    ax.set_title(f"{comp.model}: simulation vs theory, one colour per mode", fontsize=9)
    return fig


def landscape_figure(land: QuarticLandscape) -> Figure:
    """Each mode's quartic loss ``L_i(w)``, its minima marked; collapsed modes dashed."""
    w2 = land.learned_w2()
    reach = 1.6 * float(np.sqrt(w2.max())) if w2.max() > 0 else 1.0
    w = np.linspace(-reach, reach, 401)
    curves = land.mode_loss(w)
    fig, axes = new_figure(figsize=(7, 4.5))
    ax = axes[0, 0]
    colours = mode_colours(land.n_modes)
    for i, curve in enumerate(curves):
        style = "-" if w2[i] > 0 else "--"
        ax.plot(w, curve, style, color=colours[i], label=f"mode {i} (a={land.a[i]:.3g})")
        if w2[i] > 0:
            root = np.sqrt(w2[i])
            ax.plot([-root, root], [-(land.alpha[i] ** 2) / (4 * land.beta[i])] * 2, "o",
                    color=colours[i])
    low = float(min(curves.min(), 0.0))
    ax.set_ylim(1.2 * low - 0.05, max(-0.5 * low, 0.1) + 0.05)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("w_i")
    ax.set_ylabel("L_i(w) = alpha_i w^2 + beta_i w^4")
    ax.set_title(f"per-mode quartic landscape: gamma={land.gamma:g}, "
                 f"rank {land.learned_rank()}/{land.n_modes} (dashed: collapsed)")
    ax.legend(fontsize=7, ncol=2)
    return fig
