"""``nocollapse diagnose``: branch a collapsed run from its snapshot, one change per branch.

:func:`run_diagnosis` validates everything first (the run, its snapshot, every branch's
configuration, the launcher), then trains the branches through the sweep's launcher
(:mod:`nocollapse.sweep.launch`: a local process pool or a Slurm job array), each a run
directory ``RUN_DIR/diagnosis/<branch>/``, judges each against the run's warning
thresholds (:mod:`nocollapse.diagnose.verdict`) and writes ``diagnosis.json`` and
``diagnosis.md`` there. A rerun with the same settings reuses finished branches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from nocollapse.diagnose.branches import (
    DIAGNOSIS_DIR,
    Snapshot,
    branch_config,
    find_snapshot,
    read_logs,
    run_facts,
)
from nocollapse.diagnose.interventions import CONTROL, branch_folder, select
from nocollapse.diagnose.report import write_reports
from nocollapse.diagnose.verdict import AVERTS, COLLAPSES, FAILED, judge
from nocollapse.errors import ConfigError
from nocollapse.monitor import MonitorConfig
from nocollapse.runio import METRICS_FILE, atomic_write_text, ensure_dir, iter_metrics
from nocollapse.runio.records import CellRecord, ConfigDict, JSONObject, JSONValue
from nocollapse.sweep.cell import read_outcome
from nocollapse.sweep.launch import SlurmOptions, check_slurm, launch_local, launch_slurm
from nocollapse.sweep.spec import cores
from nocollapse.train.config import TrainConfig

DEFAULT_STEPS = 200
SPEC_FILE = "spec.json"  # RUN_DIR/diagnosis/spec.json: what the branches were trained with


@dataclass
class DiagnoseRequest:
    """One diagnosis: the run, where to start, how long, which branches, how to launch."""

    run_dir: Path
    from_step: int | None = None
    steps: int = DEFAULT_STEPS
    workers: int = 1
    launcher: str = "local"
    only: list[str] = field(default_factory=list)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)


def plan(request: DiagnoseRequest) -> tuple[Snapshot, list[tuple[str, str, str, ConfigDict]]]:
    """The snapshot and ``(name, cause, rationale, config values)`` per branch; writes nothing."""
    run_dir = request.run_dir
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a run directory")
    if (run_dir / DIAGNOSIS_DIR).is_symlink():
        raise ConfigError(f"{run_dir / DIAGNOSIS_DIR} is a symbolic link; a diagnosis writes "
                          "only inside the run directory")
    if request.steps < 1:
        raise ConfigError(f"--steps {request.steps} must be >= 1")
    if request.launcher not in ("local", "slurm"):
        raise ConfigError(f"--launcher {request.launcher!r} is not one of local, slurm")
    if request.launcher == "slurm":
        check_slurm(request.slurm)
    elif request.workers < 1 or request.workers > cores():
        raise ConfigError(f"--workers {request.workers} must be between 1 and the {cores()} "
                          "cores here")
    snapshot = find_snapshot(run_dir, request.from_step)
    logs = read_logs(run_dir, snapshot.step)
    facts = run_facts(snapshot, logs)
    branches = []
    threads = (request.slurm.cpus_per_task if request.launcher == "slurm"
               else max(1, cores() // request.workers))
    for intervention in select(facts, request.only):
        values = branch_config(run_dir, snapshot, facts, intervention, request.steps)
        values["device"]["threads"] = threads
        try:
            values = TrainConfig.from_dict(values).to_dict()
        except ConfigError as error:
            raise ConfigError(f"branch {intervention.name!r}: {error}") from None
        branches.append((intervention.name, intervention.cause, intervention.rationale, values))
    return snapshot, branches


def run_diagnosis(request: DiagnoseRequest) -> JSONObject:
    """Train the branches, judge them, write ``diagnosis.json`` / ``.md``; returns the record."""
    snapshot, branches = plan(request)
    out = request.run_dir / DIAGNOSIS_DIR
    spec = {"from_step": snapshot.step, "steps": request.steps}
    _check_spec(out, spec)
    ensure_dir(out, "diagnosis folder")
    atomic_write_text(out / SPEC_FILE, json.dumps(spec))
    records: dict[str, CellRecord] = {}
    start = time.monotonic()

    def on_done(record: CellRecord) -> None:
        records[str(record["name"])] = record

    jobs = [(values, name) for name, _, _, values in branches]
    if request.launcher == "slurm":
        launch_slurm(jobs, out, request.slurm, on_done)
    else:
        launch_local(jobs, request.workers, on_done)
    wall = time.monotonic() - start
    result = _judge_all(request, snapshot, branches, records, wall)
    write_reports(out, result)
    return result


def judge_again(request: DiagnoseRequest) -> JSONObject:
    """The verdicts of a finished diagnosis recomputed from its branches' logs (the run's
    thresholds as this version reads them); rewrites diagnosis.json / .md, trains nothing."""
    snapshot, branches = plan(request)
    out = request.run_dir / DIAGNOSIS_DIR
    _check_spec(out, {"from_step": snapshot.step, "steps": request.steps})
    records: dict[str, CellRecord] = {}
    for name, _, _, values in branches:
        done = read_outcome(Path(str(values["out"])), name)
        if done is not None:
            records[name] = done
    previous = out / "diagnosis.json"
    wall = 0.0
    if previous.is_file():
        try:
            wall = float(json.loads(previous.read_text()).get("wall_seconds") or 0.0)
        except (ValueError, TypeError, AttributeError):
            wall = 0.0
    result = _judge_all(request, snapshot, branches, records, wall)
    write_reports(out, result)
    return result


def _check_spec(out: Path, spec: dict[str, int]) -> None:
    path = out / SPEC_FILE
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())
    except ValueError:
        stored = None
    if stored != spec:
        raise ConfigError(f"{out} holds branches of another diagnosis ({stored}); remove that "
                          "folder to diagnose again with other settings")


def _judge_all(request: DiagnoseRequest, snapshot: Snapshot,
               branches: list[tuple[str, str, str, ConfigDict]],
               records: dict[str, CellRecord], wall: float) -> JSONObject:
    monitor = TrainConfig.from_dict(snapshot.config).monitor
    logs = read_logs(request.run_dir, snapshot.step)
    rows: list[JSONObject] = []
    for name, cause, rationale, values in branches:
        record = records.get(name, {})
        row: JSONObject = {"name": name, "cause": cause, "rationale": rationale,
                           "folder": f"{DIAGNOSIS_DIR}/{branch_folder(name)}",
                           "seconds": record.get("seconds")}
        if record.get("outcome") == "failed":
            row.update(status=FAILED, error=record.get("error"))
        else:
            row.update(_verdict_row(Path(str(values["out"])), monitor, logs.peak_before,
                                    logs.reference_rank))
        rows.append(row)
    control = next((r for r in rows if r["name"] == CONTROL), None)
    reproduced = control is not None and control.get("status") == COLLAPSES
    for row in rows:
        if row["name"] != CONTROL and row.get("status") == "healthy":
            row["status"] = AVERTS if reproduced else "healthy (control did not collapse)"
    averting = sorted((r for r in rows if r.get("status") == AVERTS), key=_by_margin)
    cell_seconds = sum(float(s) for r in rows if isinstance(s := r.get("seconds"), int | float))
    return {"run": str(request.run_dir), "from_step": snapshot.step, "steps": request.steps,
            "warning_step": logs.warning_step, "reference_rank": logs.reference_rank,
            "peak_rank_before": logs.peak_before, "control_reproduced": reproduced,
            "ranking": [r["name"] for r in averting],
            "top": averting[0]["name"] if averting else None,
            "top_cause": averting[0]["cause"] if averting else None,
            "branches": list[JSONValue](rows), "workers": request.workers,
            "launcher": request.launcher,
            "cell_seconds": round(cell_seconds, 1), "wall_seconds": round(wall, 1)}


def _by_margin(row: JSONObject) -> float:
    margin = row.get("margin")
    return -float(margin) if isinstance(margin, int | float) else 0.0


def _verdict_row(branch_dir: Path, monitor: MonitorConfig, peak: float,
                 reference: float | None) -> JSONObject:
    path = branch_dir / METRICS_FILE
    records = list(iter_metrics(path)) if path.is_file() else []
    verdict = judge(records, monitor, peak, reference)
    return {"status": COLLAPSES if verdict.collapsed else "healthy",
            "warning_step": verdict.warning_step, "margin": verdict.margin,
            "effective_rank": verdict.effective_rank, "collapse_level": verdict.collapse_level,
            "sigma2_est": verdict.sigma2, "logs": verdict.logs}
