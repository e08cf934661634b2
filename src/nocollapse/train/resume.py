"""What ``--resume`` may change: the run's own configuration, plus options that keep the maths.

A resumed run takes its configuration from its checkpoint (``config.yaml`` may be
edited or deleted); an override that would change what is trained -- the method,
the data, the seed, a learning rate, the batch size, ... -- is refused, naming the
keys and the values the run was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nocollapse.errors import ConfigError
from nocollapse.train.checkpoint import checkpoint_path, load_checkpoint
from nocollapse.train.config import TrainConfig, merge

# Options that change how long, where or how observably a run trains, not what it computes.
# (data.data_dir: where the same data set lies now, as for evaluate --data-dir)
FREE_KEYS = frozenset({"time_budget_s", "out", "data.data_dir", "device.accelerator",
                       "device.compile",
                       "device.threads", "monitor.stop_on_collapse"})
# Options a resume may raise (train longer) but not lower.
EXTENDABLE_KEYS = frozenset({"epochs", "max_steps"})
_MISSING = object()
ALREADY_FINISHED = "already finished"  # TrainResult.stopped of a resume with nothing to do


def config_for_resume(run_dir: str | Path, changes: dict[str, Any]) -> TrainConfig:
    """The configuration stored in ``RUN_DIR``'s checkpoint with ``changes`` applied.

    ``changes`` (a nested dict, as :func:`~nocollapse.train.config.parse_overrides`
    returns) may only touch :data:`FREE_KEYS` and raise :data:`EXTENDABLE_KEYS`;
    anything else is refused by :func:`check_resume_changes`.
    """
    run_dir = _require_run_dir(run_dir)
    out = changes.get("out")
    if out is not None and Path(str(out)).resolve() != run_dir.resolve():
        raise ConfigError(f"--resume {run_dir} with out={out}: a resumed run stays in its own "
                          "directory; copy the run directory first to continue it elsewhere")
    saved = load_checkpoint(run_dir)["config"]
    config = TrainConfig.from_dict(merge(saved, {**changes, "out": str(run_dir)}))
    check_resume_changes(saved, config.to_dict(), run_dir)
    return config


def check_resume_changes(saved: dict[str, Any], requested: dict[str, Any],
                         run_dir: str | Path) -> None:
    """Refuse every difference between the two configurations a resume may not make.

    ``saved`` is read through :class:`TrainConfig` first, so a key a later version added
    (absent from an older checkpoint) counts as its default, not as a change.
    """
    old, new = flatten(TrainConfig.from_dict(saved).to_dict()), flatten(requested)
    refused = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if before == after or key in FREE_KEYS or _extends(key, before, after):
            continue
        shown = "unset" if before is _MISSING else repr(before)
        refused.append(f"{key}={'unset' if after is _MISSING else repr(after)} "
                       f"(the run has {shown})")
    if refused:
        raise ConfigError(
            f"--resume {run_dir} cannot change what the run trains: {'; '.join(refused)}. A "
            "resumed run keeps its configuration; it may only change "
            f"{', '.join(sorted(FREE_KEYS - {'out'}))} and raise "
            f"{' or '.join(sorted(EXTENDABLE_KEYS))}. Start a new run with --out for the rest")


def _extends(key: str, before: object, after: object) -> bool:
    if key not in EXTENDABLE_KEYS or after is _MISSING or before is _MISSING:
        return False
    if after is None:  # no step limit: epochs decide
        return key == "max_steps"
    return (isinstance(before, int | float) and isinstance(after, int | float)
            and after >= before)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (every mapping, free-form ones too)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):  # an empty mapping sets nothing
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_for_resume(config: TrainConfig) -> dict[str, Any]:
    """The checkpoint of the run in ``config.out``, once ``config`` is checked against it."""
    run_dir = _require_run_dir(config.out)
    saved = load_checkpoint(checkpoint_path(run_dir))
    check_resume_changes(saved["config"], config.to_dict(), run_dir)
    return saved


def check_planned_steps(saved: dict[str, Any], config: TrainConfig, per_epoch: int) -> None:
    """Refuse a resume whose epochs/max_steps plan fewer steps than the run had planned
    (``epochs=0 max_steps=400``, then ``--epochs 2``: a raise of epochs, but 8 steps)."""
    from nocollapse.train.setup import total_steps  # setup builds models: imported late

    before = total_steps(TrainConfig.from_dict(saved), per_epoch)
    after = total_steps(config, per_epoch)
    if after < before:
        raise ConfigError(
            f"epochs={config.epochs} max_steps={config.max_steps} plan {after} steps, fewer "
            f"than the {before} the run planned (epochs={saved.get('epochs')} "
            f"max_steps={saved.get('max_steps')}); to train longer raise both to at least "
            f"its plan, e.g. {extend_hint(saved, before + per_epoch, per_epoch)}")


def extend_hint(saved: dict[str, Any], steps: int, per_epoch: int) -> str:
    """The options that make a run with configuration ``saved`` plan ``steps`` steps."""
    epochs = -(-steps // per_epoch)
    if saved.get("max_steps") is None:
        return f"--epochs {epochs}"
    if saved.get("epochs") == 0:
        return f"max_steps={steps}"
    return f"--epochs {epochs} max_steps={steps}"


def check_counters(saved: dict[str, Any], per_epoch: int) -> None:
    """The checkpoint's step, epoch and batch are a position in this run's epochs
    (``step = epoch * per_epoch + batch``, ``0 <= batch < per_epoch``); ValueError if not."""
    counters = {key: saved[key] for key in ("step", "epoch", "batch", "window_steps")}
    for key, value in counters.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key}={value!r}, not a count")
    step, epoch, batch = counters["step"], counters["epoch"], counters["batch"]
    if batch >= per_epoch or step != epoch * per_epoch + batch:
        raise ValueError(f"step {step}, epoch {epoch}, batch {batch} are no position in "
                         f"epochs of {per_epoch} steps")


def check_optimizer_layout(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """The saved optimiser state has this optimiser's groups of parameters; ValueError if not."""
    groups = saved["param_groups"]
    sizes = [len(group["params"]) for group in groups]
    expected = [len(group["params"]) for group in optimizer.param_groups]
    if sizes != expected:
        raise ValueError(f"the optimiser state has parameter groups of {sizes}, this run "
                         f"{expected}")


def is_finished(saved: dict[str, Any], total_steps: int) -> bool:
    """A run that ended (not stopped by its time budget) and that is not being extended."""
    return bool(saved.get("finished")) and saved["step"] >= total_steps


def _require_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        problem = "is a file" if run_dir.exists() else "does not exist"
        raise ConfigError(f"--resume {run_dir}: {problem}; pass the run directory (the folder "
                          "holding checkpoints/last.pt) of the run to continue")
    return run_dir
