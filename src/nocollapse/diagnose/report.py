"""``diagnosis.json`` and ``diagnosis.md``: the branches, their verdicts, the ranking."""

from __future__ import annotations

import json
from pathlib import Path

from nocollapse.runio import atomic_write_text
from nocollapse.runio.records import JSONObject, JSONValue

DIAGNOSIS_JSON, DIAGNOSIS_MD = "diagnosis.json", "diagnosis.md"
COLUMNS = ["branch", "tests", "status", "margin", "first warning", "eff. rank", "level",
           "sigma2_est", "seconds"]


def _fmt(value: JSONValue | None, spec: str = ".3g") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return format(value, spec)


def table_rows(result: JSONObject) -> list[list[str]]:
    """One row per branch, averting ones first by margin, the control, then the rest."""
    branches = result.get("branches")
    rows = [b for b in branches if isinstance(b, dict)] if isinstance(branches, list) else []
    ranking = result.get("ranking") if isinstance(result.get("ranking"), list) else []
    assert isinstance(ranking, list)
    order = {name: i for i, name in enumerate(ranking)}
    rows.sort(key=lambda r: (order.get(str(r.get("name")), len(order)),
                             r.get("name") != "control"))
    return [[str(r.get("name")), str(r.get("cause")), str(r.get("status")),
             _fmt(r.get("margin"), ".2f"), _fmt(r.get("warning_step"), "d"),
             _fmt(r.get("effective_rank"), ".1f"), _fmt(r.get("collapse_level"), ".3f"),
             _fmt(r.get("sigma2_est"), ".3f"), _fmt(r.get("seconds"), ".0f")] for r in rows]


def verdict_line(result: JSONObject) -> str:
    """The diagnosis in one sentence."""
    if not result.get("control_reproduced"):
        return ("The collapse did not reproduce: the control branch stayed on the healthy side "
                "of the warning's thresholds, so no branch can be said to avert it (a longer "
                "--steps, or a snapshot closer to the warning, may).")
    ranking = result.get("ranking")
    if not ranking or not isinstance(ranking, list):
        return ("The control collapsed again and no branch averted it: none of the tested "
                "causes alone explains the collapse.")
    return (f"The control collapsed again; {len(ranking)} branch(es) averted it. Most likely "
            f"cause: {result.get('top_cause')} (branch '{result.get('top')}', the largest "
            "margin inside the warning's thresholds).")


def markdown(result: JSONObject) -> str:
    rows = table_rows(result)
    lines = [f"# Diagnosis of {result.get('run')}", "",
             f"Branches from step {result.get('from_step')} (the run's first warning: step "
             f"{_fmt(result.get('warning_step'), 'd')}), {result.get('steps')} steps each, "
             f"launcher {result.get('launcher')}, {result.get('workers')} worker(s): "
             f"{_fmt(result.get('cell_seconds'), '.0f')} cell-seconds, "
             f"{_fmt(result.get('wall_seconds'), '.0f')} s wall.", "",
             verdict_line(result), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "A branch *averts* the collapse when the run's own warning, replayed on its "
              "logs (the run's thresholds, its highest effective rank up to the snapshot and "
              "its random-init reference), neither fires within the horizon nor finds its "
              "last logs suspect, while the control's does; margin: the smallest factor by "
              "which its final figures stay inside the thresholds (docs/diagnose.md)."]
    branches = result.get("branches")
    if isinstance(branches, list):
        lines += ["", "Rationales:", ""]
        lines += [f"- {b.get('name')}: {b.get('rationale')}" for b in branches
                  if isinstance(b, dict)]
    return "\n".join(lines) + "\n"


def write_reports(out: Path, result: JSONObject) -> None:
    atomic_write_text(out / DIAGNOSIS_JSON, json.dumps(result, indent=2))
    atomic_write_text(out / DIAGNOSIS_MD, markdown(result))
