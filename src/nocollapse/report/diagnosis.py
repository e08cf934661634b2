"""A run's diagnosis (``RUN_DIR/diagnosis``, written by ``nocollapse diagnose``) in the report:
each branch's effective rank beside the control's and the run's own, and diagnosis.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nocollapse.report.figures import new_figure, save_figure
from nocollapse.report.runs import Run
from nocollapse.runio import METRICS_FILE, iter_metrics
from nocollapse.runio.records import is_finite_number

DIAGNOSIS_DIR, DIAGNOSIS_JSON, DIAGNOSIS_MD = "diagnosis", "diagnosis.json", "diagnosis.md"
Attempt = Callable[[str, Path, bool, str], None]


def _ranks(path: Path, offset: float = 0.0) -> tuple[list[float], list[float]]:
    if not path.is_file():
        return [], []
    steps, ranks = [], []
    for record in iter_metrics(path):
        step, rank = record.get("step"), record.get("effective_rank")
        if is_finite_number(step) and is_finite_number(rank) and not record.get("final"):
            steps.append(float(step) + offset)
            ranks.append(float(rank))
    return steps, ranks


def diagnosis_section(run: Run, out: Path, attempt: Attempt) -> str:
    """The figure ``<label>-diagnosis.png`` and the report.md section ("" without a diagnosis)."""
    folder = run.path / DIAGNOSIS_DIR
    if folder.is_symlink() or not (folder / DIAGNOSIS_JSON).is_file():
        return ""
    try:
        result = json.loads((folder / DIAGNOSIS_JSON).read_text())
    except ValueError:
        return f"## {run.label}: diagnosis\n\n{DIAGNOSIS_JSON} is unreadable: not drawn.\n"
    start = float(result.get("from_step") or 0)
    figure, axes = new_figure()
    ax = axes[0, 0]
    steps, ranks = _ranks(run.path / METRICS_FILE)
    ax.plot(steps, ranks, color="0.6", lw=1.5, label="the run")
    drawn = bool(steps)
    for branch in result.get("branches", []):
        name = str(branch.get("name"))
        relative = str(branch.get("folder", "")).split("/")[-1]
        xs, ys = _ranks(folder / relative / METRICS_FILE, offset=start)
        if not xs:
            continue
        control = name == "control"
        ax.plot(xs, ys, color="black" if control else None, lw=2.2 if control else 1.2,
                label=f"{name} ({branch.get('status')})")
        drawn = True
    ax.axvline(start, color="0.3", ls=":", lw=1)
    ax.set_xlabel("step (branches from the snapshot)")
    ax.set_ylabel("effective rank")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    path = out / f"{run.label}-diagnosis.png"
    if drawn:
        save_figure(figure, path)
    attempt(f"{run.label}: diagnosis branches' effective rank beside the control", path, drawn,
            "no branch logged an effective rank")
    text = (folder / DIAGNOSIS_MD).read_text() if (folder / DIAGNOSIS_MD).is_file() else ""
    body = "\n".join(text.splitlines()[1:]).strip()  # without its own title
    return f"## {run.label}: diagnosis\n\n{body}\n"
