"""What ``--resume`` may change: the run's own configuration, plus options that keep the maths.

A resumed run takes its configuration from its checkpoint (``config.yaml`` may be
edited or deleted): :func:`stored_config` is the base the requested configuration is
built on, once, and :func:`check_resume_changes` compares the two in one place (the
loop calls it through ``train.setup.load_for_resume``). An override that would change
what is trained -- the method, the data, the seed, a learning rate, the batch size,
... -- is refused, naming the keys and the values the run was trained with.

Everything here works on configurations as plain dicts (``TrainConfig.to_dict()``):
the training config is built a layer above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nocollapse.errors import ConfigError
from nocollapse.models import non_finite
from nocollapse.rundir.checkpoint import CheckpointError, load_checkpoint
from nocollapse.runio.records import Checkpoint, ConfigDict

# Options that change how long, where or how observably a run trains, not what it computes.
# (data.data_dir: where the same data set lies now, as for evaluate --data-dir)
FREE_KEYS = frozenset({"time_budget_s", "out", "data.data_dir", "device.accelerator",
                       "device.compile",
                       "device.threads", "monitor.stop_on_collapse"})
# Options a resume may raise (train longer) but not lower.
EXTENDABLE_KEYS = frozenset({"epochs", "max_steps"})
_MISSING = object()
ALREADY_FINISHED = "already finished"  # TrainResult.stopped of a resume with nothing to do


def stored_config(run_dir: str | Path, out: object = None) -> ConfigDict:
    """The configuration stored in ``RUN_DIR``'s checkpoint: what a resume builds on.

    ``out`` (a requested ``out``, if any) must be ``RUN_DIR`` itself: a resumed run stays
    in its own directory.
    """
    run_dir = require_run_dir(run_dir)
    if out is not None and Path(str(out)).resolve() != run_dir.resolve():
        raise ConfigError(f"--resume {run_dir} with out={out}: a resumed run stays in its own "
                          "directory; copy the run directory first to continue it elsewhere")
    return load_checkpoint(run_dir)["config"]


def check_resume_changes(stored: ConfigDict, requested: ConfigDict,
                         run_dir: str | Path) -> None:
    """Refuse every difference between the two configurations a resume may not make.

    ``stored`` is the run's configuration read back through the training config, so a
    key a later version added (absent from an older checkpoint) holds its default and
    counts as no change.
    """
    old, new = flatten(stored), flatten(requested)
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


def flatten(values: ConfigDict, prefix: str = "") -> ConfigDict:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (every mapping, free-form ones too)."""
    flat: ConfigDict = {}
    for key, value in values.items():
        if isinstance(value, dict):  # an empty mapping sets nothing
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_planned_steps(stored: ConfigDict, requested: ConfigDict, before: int,
                        after: int, per_epoch: int) -> None:
    """Refuse a resume whose epochs/max_steps plan fewer steps (``after``) than the run had
    planned (``before``): ``epochs=0 max_steps=400``, then ``--epochs 2``: a raise of
    epochs, but 8 steps."""
    if after < before:
        raise ConfigError(
            f"epochs={requested.get('epochs')} max_steps={requested.get('max_steps')} plan "
            f"{after} steps, fewer than the {before} the run planned "
            f"(epochs={stored.get('epochs')} max_steps={stored.get('max_steps')}); to train "
            "longer raise both to at least its plan, e.g. "
            f"{extend_hint(stored, before + per_epoch, per_epoch)}")


def extend_hint(saved: ConfigDict, steps: int, per_epoch: int) -> str:
    """The options that make a run with configuration ``saved`` plan ``steps`` steps."""
    epochs = -(-steps // per_epoch)
    if saved.get("max_steps") is None:
        return f"--epochs {epochs}"
    if saved.get("epochs") == 0:
        return f"max_steps={steps}"
    return f"--epochs {epochs} max_steps={steps}"


def check_counters(saved: Checkpoint, per_epoch: int) -> None:
    """The checkpoint's step, epoch and batch are a position in this run's epochs
    (``step = epoch * per_epoch + batch``, ``0 <= batch < per_epoch``); ValueError if not."""
    step, epoch, batch = saved["step"], saved["epoch"], saved["batch"]
    counters = (("step", step), ("epoch", epoch), ("batch", batch),
                ("window_steps", saved["window_steps"]))
    for key, value in counters:  # read from a file: typed, but not yet checked
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key}={value!r}, not a count")
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


def check_finite_state(saved: Checkpoint, path: str | Path) -> None:
    """Refuse a checkpoint whose weights or optimiser state hold NaN or infinite values.

    A run never writes one (the loop checks the loss before every checkpoint), so such a
    file is damaged; a resume from it would only diverge, so it is refused (CheckpointError
    naming the first such tensor) before the run directory is touched.
    """
    optimizer_state = saved["optimizer"].get("state", {})
    tensors = [(f"model {name!r}", value) for name, value in saved["model"].items()]
    tensors += [(f"optimizer state {key!r} of parameter {index}", value)
                for index, state in optimizer_state.items() if isinstance(state, dict)
                for key, value in state.items()]
    first = next(non_finite(tensors), None)
    if first is not None:
        where, bad = first
        raise CheckpointError(
            f"checkpoint {path} holds {bad} NaN or infinite value(s) in {where}; a run "
            "never saves a diverged state, so the file is damaged. Nothing was changed: "
            "restore the run from a copy, or start it again without --resume")


def is_finished(saved: Checkpoint, total_steps: int) -> bool:
    """A run that ended (not stopped by its time budget) and that is not being extended."""
    return bool(saved.get("finished")) and saved["step"] >= total_steps


def require_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        problem = "is a file" if run_dir.exists() else "does not exist"
        raise ConfigError(f"--resume {run_dir}: {problem}; pass the run directory (the folder "
                          "holding checkpoints/last.pt) of the run to continue")
    return run_dir
