"""A sweep directory's report: the empirical phase diagram, or curves, and a markdown table.

Two or more axes: ``phase_diagram.png``, the first two axes as a grid (first axis
across, second up), each cell coloured by its outcome class and annotated with its
final k-NN; where one of the two axes is ``optim.weight_decay`` the theory's boundary
``eta_c`` is drawn over it, from the cells' estimated ``sigma2`` and ``tau`` (medians over
the learned cells of each value of the other axis; the table says which). One axis:
``sweep_curves.png`` (k-NN, and the label-free metrics, along the axis). Beside the
figure: ``sweep_report.md``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

import numpy as np

from nocollapse.diagnostics import critical_eta
from nocollapse.errors import NocollapseError
from nocollapse.report.figures import new_figure, save_figure
from nocollapse.report.sweep_table import checked_table, read_table
from nocollapse.runio import (
    CELL_OUTCOME_FILE,
    CONFIG_FILE,
    SWEEP_CELLS_DIR,
    SWEEP_SPEC_FILE,
    SWEEP_TABLE_FILE,
    atomic_write_text,
    ensure_dir,
    load_yaml,
    read_json_record,
)
from nocollapse.runio.records import CellRecord, JSONValue, SweepTable, is_finite_number

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.patches import Rectangle

WEIGHT_DECAY = "optim.weight_decay"
# the outcome classes that are no collapse (nocollapse.sweep.outcome.HEALTHY: report sits below)
HEALTHY = ("learned", "not collapsed")
OUTCOME_COLOURS = {"learned": "#4daf4a", "not collapsed": "#a6d96a",
                   "dimensional collapse": "#ff7f00", "complete collapse": "#e41a1c",
                   "diverged": "#984ea3", "failed": "#999999", "not finished": "#f2f2f2"}
NOT_FINISHED = "not finished"  # a cell of an unfinished sweep's grid without its outcome
REPORT_FILE = "sweep_report.md"
MAX_INCHES = 40.0  # the phase diagram's largest side


def is_sweep_dir(path: str | Path) -> bool:
    """A sweep's folder: its table (``sweep.json``, when it finished) or its spec."""
    return (Path(path) / SWEEP_TABLE_FILE).is_file() or (Path(path) / SWEEP_SPEC_FILE).is_file()


class BoundaryPoint(TypedDict, total=False):
    """``eta_c`` at one value of the other axis (``eta_c`` None: no learned cell there)."""

    value: JSONValue
    eta_c: float | None
    sigma2: float
    tau: float
    scale: float | None
    cells: list[str]


class Boundary(TypedDict, total=False):
    other_axis: str | None
    points: list[BoundaryPoint]
    # over every learned cell: drawn on the rows that have no learned cell of their own
    pooled_eta_c: float | None


def load_table(sweep_dir: Path) -> SweepTable:
    """``sweep.json`` checked and bounded (:func:`~nocollapse.report.sweep_table.read_table`),
    or, for a sweep that has not written it yet, :func:`unfinished_table`."""
    if not (sweep_dir / SWEEP_TABLE_FILE).is_file():
        return checked_table(unfinished_table(sweep_dir), sweep_dir / SWEEP_SPEC_FILE)
    return read_table(sweep_dir)


def unfinished_table(sweep_dir: Path) -> SweepTable:
    """The table of a sweep still running (or stopped): ``sweep.yaml``'s axes and the cells
    done so far (each ``cells/NAME/outcome.json``, its axis values read from the cell's
    ``config.yaml``); no Spearman correlations until the sweep writes ``sweep.json``."""
    try:
        spec = load_yaml((sweep_dir / SWEEP_SPEC_FILE).read_text(encoding="utf-8"),
                         str(sweep_dir / SWEEP_SPEC_FILE))
    except (OSError, UnicodeDecodeError) as error:
        raise NocollapseError(f"{sweep_dir / SWEEP_SPEC_FILE} cannot be read ({error})") \
            from None
    axes_found = spec.get("axes") if isinstance(spec, dict) else None
    if not isinstance(axes_found, list) or not all(
            isinstance(a, list) and len(a) == 2 and isinstance(a[1], list) for a in axes_found):
        raise NocollapseError(f"{sweep_dir / SWEEP_SPEC_FILE} is not a sweep spec (no axes)")
    axes = [(str(key), list(values)) for key, values in axes_found]
    checked_table({"axes": [list(axis) for axis in axes], "cells": []},
                  sweep_dir / SWEEP_SPEC_FILE)  # bounded before the cells are read
    cells: list[CellRecord] = []
    folder = sweep_dir / SWEEP_CELLS_DIR
    for cell_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
        record = read_json_record(cell_dir / CELL_OUTCOME_FILE)
        config = _cell_config(cell_dir)
        if record is None or config is None:
            continue  # not finished
        assignment: dict[str, object] = {key: _dotted(config, key) for key, _ in axes}
        cells.append({**cast(CellRecord, record), "axes": assignment})
    if not cells:
        planned = math.prod(len(values) for _, values in axes)
        raise NocollapseError(f"sweep {sweep_dir} has no finished cell yet (0 of {planned}; "
                              "each writes cells/NAME/outcome.json when done); run report "
                              "again later")
    return {"axes": axes, "cells": cells, "outcome_thresholds": {}, "spearman_with_knn": {}}


def _cell_config(cell_dir: Path) -> dict[str, object] | None:
    try:
        loaded = load_yaml((cell_dir / CONFIG_FILE).read_text(encoding="utf-8"),
                           str(cell_dir / CONFIG_FILE))
    except (OSError, UnicodeDecodeError, NocollapseError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _dotted(config: Mapping[str, object], key: str) -> JSONValue:
    found: object = config
    for part in key.split("."):
        found = found.get(part) if isinstance(found, Mapping) else None
    return cast(JSONValue, found)


def build_sweep_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the figure and ``sweep_report.md``; returns the paths written."""
    sweep_dir = Path(sweep_dir)
    table = load_table(sweep_dir)
    out = ensure_dir(Path(out_dir) if out_dir is not None else sweep_dir / "report",
                     "report folder")
    axes = [axis[0] for axis in table["axes"]]
    boundary = eta_c_boundary(table)
    name = "phase_diagram.png" if len(axes) >= 2 else "sweep_curves.png"
    text = render_markdown(table, boundary, name)  # first: a table it cannot read writes nothing
    if len(axes) >= 2:
        figure_path = plot_phase_diagram(table, boundary, out / name)
    else:
        figure_path = plot_curves(table, boundary, out / name)
    markdown = out / REPORT_FILE
    atomic_write_text(markdown, text)
    return [figure_path, markdown]


def _values(table: SweepTable, index: int) -> list[JSONValue]:
    return list(table["axes"][index][1])


def _cell_index(table: SweepTable, keys: Sequence[str]
                ) -> Callable[[Sequence[object]], CellRecord | None]:
    """A lookup of the first cell with the given values of ``keys`` (one pass over the
    cells, not one per grid point)."""
    index: dict[str, CellRecord] = {}
    for cell in table["cells"]:
        index.setdefault(_values_key([cell.get("axes", {}).get(k) for k in keys]), cell)
    return lambda values: index.get(_values_key(values))


def _values_key(values: Sequence[object]) -> str:
    return json.dumps(list(values), sort_keys=True, default=str)


def eta_c_boundary(table: SweepTable) -> Boundary | None:
    """``eta_c`` per value of the other axis (or one value for a one-axis sweep), or None.

    Each from the medians of ``sigma2_est`` and ``tau_est`` over the learned cells with
    that value (the estimators need a non-collapsed batch); cells used are named.
    """
    keys = [axis[0] for axis in table["axes"]]
    if WEIGHT_DECAY not in keys[:2]:
        return None
    other = next((k for k in keys[:2] if k != WEIGHT_DECAY), None)
    groups = _values(table, keys.index(other)) if other else [None]
    points: list[BoundaryPoint] = []
    for value in groups:
        cells = [c for c in table["cells"] if c.get("outcome") in HEALTHY
                 and (other is None or c.get("axes", {}).get(other) == value)
                 and is_finite_number(c.get("sigma2_est")) and is_finite_number(c.get("tau_est"))]
        if not cells:
            points.append({"value": value, "eta_c": None, "cells": []})
            continue
        sigma2, tau, scale = median_estimates(cells)
        points.append({"value": value, "eta_c": _eta_c(sigma2, tau, scale),
                       "sigma2": sigma2, "tau": tau, "scale": scale,
                       "cells": [c.get("name", "") for c in cells]})
    learned = [c for c in table["cells"] if c.get("outcome") in HEALTHY
               and is_finite_number(c.get("sigma2_est")) and is_finite_number(c.get("tau_est"))]
    pooled = None
    if learned:
        sigma2, tau, scale = median_estimates(learned)
        pooled = _eta_c(sigma2, tau, scale)
    return {"other_axis": other, "points": points, "pooled_eta_c": pooled}


def _eta_c(sigma2: float, tau: float, scale: float | None) -> float | None:
    """The theory's eta_c, or None where forged estimates give no positive finite value."""
    eta_c = critical_eta(sigma2, tau, scale or 1.0) if sigma2 > -1 else math.nan
    return eta_c if 0 < eta_c < math.inf else None


def median_estimates(cells: Sequence[Mapping[str, object]]
                     ) -> tuple[float, float, float | None]:
    """Medians of the cells' ``sigma2_est``, ``tau_est`` and ``scale_est`` (None: no cell
    logged the data's scale, and ``eta_c`` is read at ``x = 1``); every cell has finite
    ``sigma2_est`` and ``tau_est``."""
    sigma2 = statistics.median(_number(c["sigma2_est"]) for c in cells)
    tau = statistics.median(_number(c["tau_est"]) for c in cells)
    scales = [float(scale) for c in cells
              if is_finite_number(scale := c.get("scale_est")) and scale > 0]
    return sigma2, tau, statistics.median(scales) if scales else None


def _position(eta: float, decays: list[float]) -> float:
    """Where ``eta`` falls on the categorical weight-decay axis (log-interpolated index)."""
    logs = np.log10(np.maximum(np.asarray(decays, dtype=float), 1e-300))
    return float(np.interp(math.log10(eta), logs, np.arange(len(decays)),
                           left=-0.5, right=len(decays) - 0.5))


def plot_phase_diagram(table: SweepTable, boundary: Boundary | None,
                       path: Path) -> Path:
    keys = [axis[0] for axis in table["axes"]]
    xs, ys = _values(table, 0), _values(table, 1)
    # at most MAX_INCHES a side: a grid of many values is drawn smaller, never larger
    figure, grid = new_figure(figsize=(min(1.2 * len(xs) + 3.0, MAX_INCHES),
                                       min(0.9 * len(ys) + 2.0, MAX_INCHES)))
    ax = grid[0, 0]
    fixed = {k: table["axes"][i][1][0] for i, k in enumerate(keys) if i >= 2}
    cell_at = _cell_index(table, keys)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            cell = cell_at([x, y, *fixed.values()])
            outcome = (cell or {}).get("outcome", "failed") if cell is not None \
                else NOT_FINISHED
            ax.add_patch(_rectangle(i, j, OUTCOME_COLOURS.get(outcome, "#999999")))
            knn = (cell or {}).get("knn")
            ax.text(i, j, f"{knn:.3f}" if is_finite_number(knn) else "-", ha="center", va="center",
                    fontsize=9)
    if boundary is not None and WEIGHT_DECAY in keys[:2]:
        _draw_boundary(ax, boundary, keys, xs, ys)
    ax.set_xticks(range(len(xs)), [f"{v:g}" if is_finite_number(v) else str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" if is_finite_number(v) else str(v) for v in ys])
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    ax.set_xlabel(keys[0])
    ax.set_ylabel(keys[1])
    title = "outcome by cell (colour), final k-NN (number)"
    if fixed:
        title += f"; {', '.join(f'{k}={v}' for k, v in fixed.items())}"
    ax.set_title(title, fontsize=9)
    from matplotlib.patches import Patch

    planned = len(xs) * len(ys)
    handles: list[Artist] = [Patch(color=c, label=o) for o, c in OUTCOME_COLOURS.items()
               if any(cell.get("outcome") == o for cell in table["cells"])
               or (o == NOT_FINISHED and len(table["cells"]) < planned)]
    if boundary is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", linestyle="--", label="theory eta_c"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(figure, path)


def _rectangle(i: int, j: int, colour: str) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((i - 0.5, j - 0.5), 1.0, 1.0, color=colour, alpha=0.75)


def _draw_boundary(ax: Axes, boundary: Boundary, keys: list[str], xs: list[JSONValue],
                   ys: list[JSONValue]) -> None:
    """eta_c per value of the other axis, as a dashed line across the grid, with a tick on
    every row (a row without a learned cell of its own: the sweep's pooled eta_c, dotted)
    and its value written at the row's edge, clear of the cells' numbers."""
    decay_on_x = keys[0] == WEIGHT_DECAY
    decays = [_number(v) for v in (xs if decay_on_x else ys)]
    others = ys if decay_on_x else xs
    if min(decays) <= 0:
        return
    pooled = boundary.get("pooled_eta_c")
    line, guessed = [], []
    for k, value in enumerate(others):
        point = next((p for p in boundary["points"] if p.get("value") == value), None)
        eta_c = None if point is None else point.get("eta_c")
        if eta_c is not None:
            line.append((_position(eta_c, decays), k, eta_c))
        elif pooled is not None:
            guessed.append((_position(pooled, decays), k, pooled))
    marker = "|" if decay_on_x else "_"
    for points, style in ((line, "k--"), (guessed, "k:")):
        if not points:
            continue
        along, across = [a for a, _, _ in points], [b for _, b, _ in points]
        xy = (along, across) if decay_on_x else (across, along)
        ax.plot(*xy, style, marker=marker, markersize=14)
    for a, b, eta in [*line, *guessed]:
        # a boundary outside the grid sits on its edge, its value written beside it
        edge = "< " if a <= -0.5 else "> " if a >= len(decays) - 0.5 else ""
        label = f"{edge}eta_c {eta:.2g}" + (" (pooled)" if (a, b, eta) in guessed else "")
        if decay_on_x:  # in the top band of the row: the cell's number is at its centre
            ax.annotate(label, (a, b + 0.46), xytext=(3, 0), textcoords="offset points",
                        fontsize=7, va="top", ha="left")
        else:  # at the column's left edge, above the number when the line crosses it
            y = a if abs(a - round(a)) > 0.2 else round(a) + 0.12
            ax.annotate(label, (b - 0.48, y), xytext=(0, 2), textcoords="offset points",
                        fontsize=7, va="bottom", ha="left")


def plot_curves(table: SweepTable, boundary: Boundary | None, path: Path) -> Path:
    key, values = table["axes"][0][0], _values(table, 0)
    figure, grid = new_figure(1, 2, figsize=(10.0, 4.0))
    cell_at = _cell_index(table, [key])
    cells: list[CellRecord] = [cell_at([v]) or {} for v in values]
    numeric = all(is_finite_number(v) for v in values)
    xs = [_number(v) for v in values] if numeric else [float(i) for i in range(len(values))]
    left, right = grid[0, 0], grid[0, 1]
    knn = [_number(c.get("knn"), np.nan) for c in cells]
    left.plot(xs, knn, "k-", alpha=0.4)
    for x, y, c in zip(xs, knn, cells, strict=True):
        left.scatter([x], [y], color=OUTCOME_COLOURS.get(c.get("outcome", "failed"), "#999"),
                     zorder=3, label=c.get("outcome"))
    random_init = next((c.get("random_init_knn") for c in cells
                        if is_finite_number(c.get("random_init_knn"))), None)
    if random_init is not None:
        left.axhline(random_init, color="grey", linestyle=":", label="random-init encoder")
    left.set_ylabel("final k-NN accuracy")
    for metric in ("rankme", "effective_rank", "lidar"):
        right.plot(xs, [_number(_field(c, metric), np.nan) for c in cells],
                   marker="o", label=metric)
    right.set_ylabel("label-free metric")
    for ax in (left, right):
        ax.set_xlabel(key)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(xs, [str(v) for v in values])
        points = boundary["points"] if boundary is not None else []
        eta_c = points[0].get("eta_c") if points else None
        if key == WEIGHT_DECAY and eta_c:
            ax.axvline(eta_c, color="black", linestyle="--", label="theory eta_c")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
    return save_figure(figure, path)


def render_markdown(table: SweepTable, boundary: Boundary | None,
                    figure_name: str) -> str:
    keys = [axis[0] for axis in table["axes"]]
    planned = math.prod(len(values) for _, values in table["axes"])
    lines = ["# Sweep report", ""]
    if len(table["cells"]) < planned:
        lines += [f"Unfinished sweep: {len(table['cells'])} of {planned} cells done (drawn as "
                  "'not finished' otherwise); the Spearman correlations come with sweep.json "
                  "when it ends.", ""]
    lines += [f"![{figure_name}]({figure_name})", "",
             "| " + " | ".join([*keys, "outcome", "k-NN", "RankMe", "alpha-ReQ", "LiDAR",
                                "eff. rank", "collapse level", "first warning"]) + " |",
             "|" + "---|" * (len(keys) + 8)]
    for cell in table["cells"]:
        warning = (f"step {cell['warning_step']}: {cell.get('warning_reason')}"
                   if cell.get("warning_step") is not None else "-")
        row = [str(cell.get("axes", {}).get(k)) for k in keys]
        row += [str(cell.get("outcome")), _fmt(cell.get("knn")), _fmt(cell.get("rankme"), ".1f"),
                _fmt(cell.get("alpha_req"), ".2f"), _fmt(cell.get("lidar"), ".1f"),
                _fmt(cell.get("effective_rank"), ".2f"), _fmt(cell.get("collapse_level")),
                warning]
        lines.append("| " + " | ".join(row) + " |")
    random_init = next((c.get("random_init_knn") for c in table["cells"]
                        if is_finite_number(c.get("random_init_knn"))), None)
    lines += ["", f"Random-init encoder k-NN (same protocol): {_fmt(random_init)}.", "",
              "Spearman correlation with the final k-NN across the cells:", ""]
    for metric, value in table.get("spearman_with_knn", {}).items():
        rho = value.get("rho")
        lines.append(f"- {metric}: {_fmt(rho, '.2f') if rho is not None else 'n/a'} "
                     f"({value.get('cells')} cells)")
    if boundary is not None:
        lines += ["", "Theory boundary eta_c = x tau^2 / (4 (1 + sigma^2)) from the learned "
                  "cells' estimates (medians; x = 1 where no cell logged the data's scale):",
                  ""]
        for point in boundary["points"]:
            where = (f"{boundary['other_axis']}={point['value']}" if boundary["other_axis"]
                     else "all cells")
            eta_c = point.get("eta_c")
            pooled = boundary.get("pooled_eta_c")
            if eta_c is None:
                lines.append(f"- {where}: no learned cell with estimates" + (
                    f"; drawn at the pooled eta_c = {pooled:.4g} of all learned cells "
                    "(dotted)" if pooled is not None else ""))
            else:
                scale = point.get("scale")
                lines.append(f"- {where}: eta_c = {eta_c:.4g} (sigma2 "
                             f"{point['sigma2']:.3g}, tau {point['tau']:.3g}, x "
                             f"{_fmt(scale, '.3g') if scale else '1 (not logged)'}; cells: "
                             f"{', '.join(point.get('cells', []))})")
    return "\n".join(lines) + "\n"


def _fmt(value: object, spec: str = ".3f") -> str:
    return format(float(value), spec) if is_finite_number(value) else "-"


def _number(value: object, default: float = math.nan) -> float:
    """``value`` as a float when it is a finite number, else ``default``."""
    return float(value) if is_finite_number(value) else default


def _field(record: Mapping[str, object], key: str) -> object:
    return record.get(key)
