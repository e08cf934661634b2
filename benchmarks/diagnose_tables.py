"""Tables and diagnoses of ``diagnose_validation.py`` (see its docstring)."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# The random-init backbone's RankMe on the first 1024 training images (small_convnet_2x2,
# seed 0: every case's initial backbone), measured once with sweep.cell's protocol.
INIT_RANKME = 156.7
DIAGNOSE_STEPS = 50


def run_diagnoses(out: Path, cases: dict[str, Any], workers: int,
                  steps: int = DIAGNOSE_STEPS) -> None:
    from nocollapse.diagnose import DiagnoseRequest, run_diagnosis

    for name, (_, _, cause, group) in cases.items():
        run = out / "runs" / name
        snapshot = run / "checkpoints" / "presuspect.pt"
        if cause is None or group != "tune" or not snapshot.is_file():
            continue
        start = time.monotonic()
        try:
            result = run_diagnosis(DiagnoseRequest(run, steps=steps, workers=workers))
        except Exception as error:
            print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)
            continue
        print(f"{name}: control reproduced {result['control_reproduced']}, top "
              f"{result['top']} ({result['top_cause']}), ranking {result['ranking']}, "
              f"{result['cell_seconds']} cell-s, {time.monotonic() - start:.0f} s wall",
              flush=True)


BEFORE = "630eca1"  # main before issue 28's changes: today's rules of the issue


def _git_show(commit: str, path: str, out: Path) -> Path:
    import subprocess

    target = out / f"before-{Path(path).name}"
    text = subprocess.run(["git", "show", f"{commit}:{path}"], check=True, capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1]).stdout
    target.write_text(text)
    return target


def _old_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("old_warnings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_warnings"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _replay(records: list[dict], warning: Any) -> dict | None:
    for record in records:
        line = warning.update(int(record["step"]), {k: record[k] for k in (
            "collapse_level", "effective_rank", "sigma2_est") if k in record})
        if line is not None:
            return dict(line)
    return None


def _old_context(config: dict, records: list[dict], step: int) -> dict:
    context: dict[str, Any] = {"weight_decay": config["optim"]["weight_decay"],
                               "predictor": config["learner"]["predictor"],
                               "stop_gradient": config["learner"]["stop_gradient"]}
    recent = [r for r in records if r["step"] <= step and "tau_est" in r][-10:]
    if recent:
        context.update(sigma2=statistics.median(r["sigma2_est"] for r in recent),
                       tau=statistics.median(r["tau_est"] for r in recent), estimated=True)
        scales = [r["scale_est"] for r in recent if "scale_est" in r]
        if scales:
            context["data_scale"] = statistics.median(scales)
    return context


def _short(cause: str) -> str:
    return cause.split(":")[0].split(" (")[0][:60]


def detection_rows(out: Path, cases: dict[str, Any]) -> list[list[str]]:
    import yaml

    from nocollapse.monitor import MonitorConfig
    from nocollapse.monitor.warnings import EarlyWarning, likely_causes
    from nocollapse.runio import read_metrics
    from nocollapse.sweep.outcome import classify, refine_outcome

    old = _old_module(_git_show(BEFORE, "src/nocollapse/monitor/warnings.py", out))
    rows = []
    for name, (_, _, cause, group) in cases.items():
        run = out / "runs" / name
        config = yaml.safe_load((run / "config.yaml").read_text())
        records = [r for r in read_metrics(run / "metrics.jsonl") if "effective_rank" in r]
        before = old.EarlyWarning(0.8, 1.5, 3, {}, rank_drop=0.25)
        fired_old = _replay(records, before)
        old_causes = "-"
        if fired_old is not None:
            try:
                old_causes = "; ".join(_short(c) for c in old.likely_causes(
                    _old_context(config, records, fired_old["step"])))
            except Exception as error:
                old_causes = f"CRASH {type(error).__name__}"
        monitor = MonitorConfig()
        context = {"weight_decay": config["optim"]["weight_decay"],
                   "lr": config["optim"]["lr"], "predictor": config["learner"]["predictor"],
                   "stop_gradient": config["learner"]["stop_gradient"],
                   "reference_rank": records[0]["init_effective_rank"],
                   "batch_rows": 2 * config["data"]["batch_size"],
                   "embedding_dim": config["learner"]["proj_dim"]}
        after = EarlyWarning(monitor.collapse_threshold, monitor.min_effective_rank,
                             monitor.patience, context, rank_drop=monitor.rank_drop,
                             reference_rank=records[0]["init_effective_rank"],
                             sigma2_floor=monitor.sigma2_floor,
                             reference_drop=monitor.reference_drop)
        fired_new = None
        for record in records:
            line = after.update(int(record["step"]), record)
            if line is not None and fired_new is None:
                recent = [r["sigma2_est"] for r in records
                          if r["step"] <= record["step"]][-10:]
                after.context["sigma2"] = statistics.median(recent)
                fired_new = {**line, "likely_causes": likely_causes(after.context)}
        tail = records[-3:]
        level = statistics.median(r["collapse_level"] for r in tail)
        rank = statistics.median(r["effective_rank"] for r in tail)
        peak = max(r["effective_rank"] for r in records)
        outcome_old = classify(False, level, rank, peak)
        outcome = json.loads((run / "outcome.json").read_text())
        outcome_new = refine_outcome({"outcome": outcome_old, "rankme": outcome["rankme"],
                                      "init_rankme": INIT_RANKME})
        rows.append([name, group, cause or "- (default)",
                     "learned" if outcome_old == "not collapsed" else outcome_old,
                     "-" if fired_old is None else str(fired_old["step"]), old_causes,
                     str(outcome_new), f"{outcome['rankme']:.0f}",
                     "-" if fired_new is None else str(fired_new["step"]),
                     "-" if fired_new is None else "; ".join(
                         _short(c) for c in fired_new["likely_causes"])])
    return rows


def diagnosis_rows(out: Path, cases: dict[str, Any]) -> list[list[str]]:
    from nocollapse.diagnose import DiagnoseRequest
    from nocollapse.diagnose.run import judge_again

    rows = []
    for name, (_, _, cause, group) in cases.items():
        run = out / "runs" / name
        if cause is None or group != "tune" or not (run / "diagnosis" / "spec.json").is_file():
            continue
        steps = json.loads((run / "diagnosis" / "spec.json").read_text())["steps"]
        result = judge_again(DiagnoseRequest(run, steps=steps, workers=2))
        branches = {b["name"]: b for b in result["branches"]}
        known = [b["name"] for b in result["branches"] if b["cause"] == cause]
        ranking = result["ranking"]
        rows.append([name, cause, f"{result['from_step']} (+{steps})",
                     str(result["control_reproduced"]),
                     str(result["top"]), ", ".join(ranking) or "-",
                     "yes" if result["top_cause"] == cause else "no",
                     "yes" if any(k in ranking for k in known) else "no",
                     str(len(branches)), f"{result['cell_seconds']:.0f}",
                     f"{result['wall_seconds']:.0f}"])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def print_tables(out: Path, cases: dict[str, Any], random_knn: float, se2: float) -> None:
    detection = _table(["case", "set", "known cause", "class before", "warned before",
                        "causes named before", "class after", "RankMe", "warned after",
                        "causes named after"], detection_rows(out, cases))
    diagnosis = _table(["case", "known cause", "from step (+horizon)", "control reproduced",
                        "top branch",
                        "averting (by margin)", "top = cause", "cause averts", "branches",
                        "cell-s", "wall s"], diagnosis_rows(out, cases))
    text = f"{detection}\n\n{diagnosis}\n"
    (out / "tables.md").write_text(text)
    print(text)
