"""``report.md``: the figures of a report and a table of final figures per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nocollapse.report.runs import Run, final_value, metric_key

TABLE_METRICS = ("loss", "knn_accuracy", "collapse_level", "effective_rank")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _last_position(run: Run) -> str:
    """Last step (training: the summary's, which counts the steps after the last logged
    line) or time (simulation) reached, or '-'."""
    ended = run.summary.get("step")
    if run.kind == "training" and isinstance(ended, int) and not isinstance(ended, bool):
        return f"step {ended}"
    for key in ("t", "step", "epoch"):
        values = [r[key] for r in run.metrics if isinstance(r.get(key), int | float)]
        if values:
            return f"{key} {values[-1]:g}"
    return "-"


def final_table(runs: Sequence[Run]) -> str:
    """Markdown table: one row per run with the last logged value of each metric."""
    header = ["run", "kind", "status", "reached", *TABLE_METRICS, "warnings"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.label, run.kind, run.status, _last_position(run)]
        cells += [_fmt(final_value(run, m)) for m in TABLE_METRICS]
        cells.append(str(len(run.warnings)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(
    runs: Sequence[Run],
    figures: Sequence[tuple[str, Path]],
    skipped: Sequence[str],
    out_dir: Path,
    theory: Sequence[str] = (),
) -> str:
    """The text of ``report.md``.

    ``figures``: (caption, path) pairs already written; ``skipped``: one note per
    figure that could not be drawn and why; ``theory``: per-run sections of
    :mod:`nocollapse.report.theory_run` (markdown), under "Theory read off the runs".
    """
    parts = ["# nocollapse report", ""]
    parts.append("Runs: " + ", ".join(f"`{run.label}` ({run.path})" for run in runs))
    parts += ["", "## Final figures", "", final_table(runs), ""]
    warned = [(run, w) for run in runs for w in run.warnings]
    if warned:
        parts += ["## Collapse warnings", ""]
        for run, warning in warned:
            message = warning.get("message") or warning.get("reason") or "collapse warning"
            parts.append(f"- `{run.label}` step {warning.get('step', '?')}: {message}")
            causes = warning.get("likely_causes")
            if isinstance(causes, list):  # hand-damaged files: only strings are quoted
                parts += [f"  - likely: {cause[:400]}" for cause in causes
                          if isinstance(cause, str)]
        parts.append("")
    if theory:
        parts += ["## Theory read off the runs", "", *theory]
    parts += ["## Figures", ""]
    for caption, path in figures:
        rel = path.relative_to(out_dir) if path.is_relative_to(out_dir) else path
        parts += [f"### {caption}", "", f"![{caption}]({rel.as_posix()})", ""]
    notes = [f"`{run.label}`: {note}" for run in runs for note in run.notes] + list(skipped)
    if notes:
        parts += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    parts += ["## Logged keys", ""]
    for run in runs:
        keys = sorted({k for r in run.metrics for k in r})
        found = [m for m in TABLE_METRICS if metric_key(run, m)]
        parts.append(
            f"- `{run.label}`: {', '.join(keys) or 'none'} (plotted: {', '.join(found) or 'none'})"
        )
    return "\n".join(parts) + "\n"
