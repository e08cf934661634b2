"""A diagnosis's inputs: the run's snapshot, its facts, and each branch's configuration.

Every branch starts from the snapshot's learner weights (``init_from``) at the learning
rate (and EMA rate) the run had there, held constant for ``steps`` steps (no warm-up, no
cosine: the horizon is a piece of the run, not a new schedule), with a fresh optimiser,
the run's seed and monitor thresholds, no final evaluation and no snapshot of its own;
the intervention then changes its one thing (:mod:`nocollapse.diagnose.interventions`).
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from pathlib import Path

from nocollapse.data.presets import augmentation_preset, make_augment
from nocollapse.diagnose.interventions import AUGMENT_OPS, Intervention, RunFacts, branch_folder
from nocollapse.errors import ConfigError
from nocollapse.rundir.checkpoint import load_checkpoint, presuspect_path
from nocollapse.runio import METRICS_FILE, iter_metrics
from nocollapse.runio.records import ConfigDict, JSONObject, is_finite_number
from nocollapse.train.config import TrainConfig

DIAGNOSIS_DIR = "diagnosis"
ESTIMATE_LOGS = 10  # logs before the snapshot whose median sigma2_est the facts quote


@dataclass(frozen=True)
class Snapshot:
    """Where the branches start: the checkpoint (None: the random-init weights), its step."""

    path: Path | None
    step: int
    config: ConfigDict  # the run's configuration, as its checkpoint stores it


@dataclass(frozen=True)
class RunLogs:
    """What the verdict compares a branch against: the run's own figures."""

    records: list[JSONObject]  # the run's diagnostics records (effective_rank logged)
    reference_rank: float | None  # the random-init encoder's (init_effective_rank)
    peak_before: float  # the run's highest effective rank up to the snapshot
    warning_step: int | None  # the run's first warning


def find_snapshot(run_dir: Path, from_step: int | None) -> Snapshot:
    """The pre-collapse snapshot (``from_step``: its step, or 0 for the random-init weights)."""
    path = presuspect_path(run_dir)
    if from_step == 0:
        source = path if path.is_file() else run_dir
        config = load_checkpoint(source)["config"]
        return Snapshot(None, 0, config)
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} has no pre-collapse snapshot ({path}): the run logged no suspect "
            "step, or was trained with presuspect_snapshot=false or by an older nocollapse. "
            "--from-step 0 branches from the random-init weights instead")
    saved = load_checkpoint(path)
    step = int(saved["step"])
    if from_step is not None and from_step != step:
        raise ConfigError(f"--from-step {from_step}: {run_dir} keeps a snapshot at step {step} "
                          "only (and 0: the random-init weights)")
    return Snapshot(path, step, saved["config"])


def read_logs(run_dir: Path, snapshot_step: int) -> RunLogs:
    records = [r for r in iter_metrics(run_dir / METRICS_FILE)
               if is_finite_number(r.get("effective_rank"))] \
        if (run_dir / METRICS_FILE).is_file() else []
    reference = next((float(v) for r in records
                      if is_finite_number(v := r.get("init_effective_rank"))), None)
    before = [float(r["effective_rank"]) for r in records  # type: ignore[arg-type]
              if _step(r) <= snapshot_step]
    warning_path = run_dir / "warnings.jsonl"
    first = next(iter(iter_metrics(warning_path)), {}) if warning_path.is_file() else {}
    step = first.get("step")
    return RunLogs(records, reference, max(before, default=0.0),
                   int(step) if is_finite_number(step) else None)


def _step(record: JSONObject) -> float:
    step = record.get("step")
    return float(step) if is_finite_number(step) else -1.0


def run_facts(snapshot: Snapshot, logs: RunLogs) -> RunFacts:
    """The facts the interventions read, at the snapshot's step."""
    config = TrainConfig.from_dict(snapshot.config)
    at = [r for r in logs.records if _step(r) <= snapshot.step] or logs.records[:1]
    lr = _logged(at, "lr", config.optim.lr)
    target = config.learner.target
    tau = _logged(at, "tau", config.learner.base_tau) if target == "ema" else None
    sigma2s = [float(v) for r in at[-ESTIMATE_LOGS:] if is_finite_number(v := r.get("sigma2_est"))]
    if snapshot.step == 0:
        lr, tau = config.optim.lr, (config.learner.base_tau if target == "ema" else None)
    return RunFacts(
        method=config.method, predictor=str(config.learner.predictor),
        stop_gradient=bool(config.learner.stop_gradient), target=str(target),
        base_tau=tau, lr=lr, weight_decay=config.optim.weight_decay,
        batch_size=config.data.batch_size, augment=dict(config.data.augment),
        augment_ops=augment_ops(config), sigma2=statistics.median(sigma2s) if sigma2s else None)


def _logged(records: list[JSONObject], key: str, default: float) -> float:
    values = [float(v) for r in records if is_finite_number(v := r.get(key))]
    return values[-1] if values else float(default)


def augment_ops(config: TrainConfig) -> tuple[str, ...]:
    """The augmentation ops the run's views use, strongest first (:data:`AUGMENT_OPS`)."""
    augment = make_augment(augmentation_preset(config.data.name), **config.data.augment)
    used = {
        "solarize": augment.solarize_p > 0, "erase": augment.erase_p > 0,
        "blur": augment.blur_p > 0,
        "jitter": augment.jitter_p > 0 and any(v > 0 for v in augment.jitter),
        "grayscale": augment.gray_p > 0 and augment.channels == 3,
        "crop": tuple(augment.crop_scale) != (1.0, 1.0), "flip": augment.flip_p > 0}
    return tuple(name for name, _, _ in AUGMENT_OPS if used[name])


def branch_config(run_dir: Path, snapshot: Snapshot, facts: RunFacts,
                  intervention: Intervention, steps: int) -> ConfigDict:
    """The branch's configuration values (checked by the caller through TrainConfig)."""
    values = copy.deepcopy(snapshot.config)
    values["out"] = str(run_dir / DIAGNOSIS_DIR / branch_folder(intervention.name))
    values["init_from"] = None if snapshot.path is None else str(snapshot.path)
    values["max_steps"], values["epochs"], values["time_budget_s"] = steps, 10**6, None
    values["presuspect_snapshot"] = False
    values["optim"].update(lr=facts.lr, warmup_epochs=0.0, cosine=False)
    if facts.base_tau is not None:
        values["learner"].update(base_tau=facts.base_tau, final_tau=facts.base_tau)
    values["eval"].update(knn_every=0, final=False, baselines=[], random_baseline=False,
                          embedding_points=0, linear_probe=False)
    values["monitor"].update(spectra=False, tensorboard=False, stop_on_collapse=False,
                             grace_steps=0)
    intervention.change(values, facts)
    return values
