"""Export a run's trained backbone (online encoder, or the target network) for use elsewhere.

``export_run(RUN_DIR)`` reads ``checkpoints/last.pt`` (``weights_only``, CRC-checked),
rebuilds the learner from the saved config, copies the chosen backbone's weights into a
plain backbone of the same architecture and writes it with its JSON description
(:mod:`nocollapse.models.export`). Every check runs before anything is written.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from torch import nn

from nocollapse import __version__
from nocollapse.data import DATASETS, PRESETS
from nocollapse.errors import ConfigError, check_choice
from nocollapse.methods import SiameseLearner
from nocollapse.models import build_backbone, non_finite
from nocollapse.models.export import FORMATS, description_path, save_backbone
from nocollapse.rundir.checkpoint import load_checkpoint
from nocollapse.runio import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOCK_FILE,
    METRICS_FILE,
    SWEEP_CELLS_DIR,
    SWEEP_SPEC_FILE,
    SWEEP_TABLE_FILE,
    latest_evaluation,
)
from nocollapse.train import setup
from nocollapse.train.config import TrainConfig

EXPORT_DIR = "export"  # the one folder of a run directory export writes into
# (marker, outputs): a folder holding the marker and one of the outputs is a run or sweep
MANAGED_MARKERS = ((CONFIG_FILE, (CHECKPOINT_DIR, METRICS_FILE, LOCK_FILE)),
                   (SWEEP_SPEC_FILE, (SWEEP_CELLS_DIR, SWEEP_TABLE_FILE, LOCK_FILE)))


def default_export_path(run_dir: str | Path, fmt: str = "safetensors",
                        target: bool = False) -> Path:
    """``RUN_DIR/export/backbone.safetensors`` (``backbone-target``, ``.pt`` as chosen)."""
    name = "backbone-target" if target else "backbone"
    return Path(run_dir) / EXPORT_DIR / f"{name}{FORMATS[fmt]}"


def export_run(run_dir: str | Path, out: str | Path | None = None, fmt: str = "safetensors",
               target: bool = False, data_dir: str | Path | None = None,
               force: bool = False) -> Path:
    """Write the run's backbone to ``out`` (default :func:`default_export_path`) and its
    description beside it; returns the weights file's path.

    ``target``: the target network's backbone (BYOL-style EMA runs), not the online one.
    ``data_dir`` replaces the run's ``data.data_dir`` (read for the image geometry).
    ``force``: replace an existing export at ``out`` (without it, an existing weights file
    or description is refused).
    Raises a :class:`~nocollapse.errors.NocollapseError` naming the problem, before any file
    is written, for a bad format or output name, an output inside a run or sweep directory
    other than its ``export/`` folder, an existing file without ``force``, a missing or
    damaged checkpoint, weights that are not finite, or a run without a target network.
    """
    check_choice("--format", fmt, tuple(FORMATS))
    run_dir = Path(run_dir)
    path = Path(out) if out is not None else default_export_path(run_dir, fmt, target)
    _check_output(path, fmt, run_dir, force)
    saved = load_checkpoint(run_dir, map_location="cpu")
    config = TrainConfig.from_dict(saved["config"])
    if data_dir is not None:
        config.data = dataclasses.replace(config.data, data_dir=str(data_dir))
    data = setup.load_run_data(config)
    c, h, _ = data.train.image_shape
    learner = setup.build_learner(setup.default_learner, config, c, h)
    learner.load_state_dict(saved["model"])
    source = _source_backbone(learner, config, target)
    backbone, feat_dim = build_backbone(config.learner.backbone, c, h)
    backbone.load_state_dict(source.state_dict())
    backbone.eval()
    _refuse_non_finite(backbone, run_dir, saved["step"])
    preset = PRESETS[data.preset]
    description = {
        "architecture": {"name": config.learner.backbone,
                         "args": {"in_channels": c, "image_size": h}},
        "input": {"channels": c, "size": h, "dtype": "float32", "layout": "NCHW",
                  "pixels": "uint8 values / 255, then (x - mean) / std per channel",
                  "source_pixels": source_pixels(data.train.name, config.data.name)},
        "normalization": {"preset": data.preset, "mean": list(preset["mean"]),
                          "std": list(preset["std"])},
        "output": {"features": feat_dim},
        "source": {"run_dir": str(run_dir), "method": config.method,
                   "network": "target" if target else "online", "step": saved["step"],
                   "epoch": saved["epoch"], "data": data.train.name,
                   "nocollapse": __version__},
        "evaluation": latest_evaluation(run_dir),
    }
    save_backbone(backbone, description, path, fmt)
    return path


def source_pixels(loaded: str, configured: str) -> str:
    """How the run's data set (by the loaded name: ``default`` loads Fashion-MNIST or
    the digits) turned its files into uint8 images."""
    entry = DATASETS.get(loaded) or DATASETS.get(configured)
    return f"{loaded}: {entry.pixels}" if entry is not None else f"{loaded}: not described"


def _check_output(path: Path, fmt: str, run_dir: Path, force: bool) -> None:
    suffix = FORMATS[fmt]
    if path.suffix != suffix:
        raise ConfigError(f"--out {path} must end in {suffix} for --format {fmt} (its "
                          f"description goes beside it as {path.name}.json)")
    for candidate in (path, description_path(path)):
        if candidate.is_dir():
            raise ConfigError(f"--out {path}: {candidate} is a folder; choose a file name")
    resolved = path.resolve()  # a link on the way cannot lead into a run's own files
    managed = _managed_folder(resolved, run_dir.resolve())
    if managed is not None and resolved.relative_to(managed).parts[0] != EXPORT_DIR:
        raise ConfigError(f"--out {path} is inside {managed}, a nocollapse run or sweep "
                          f"directory, whose files export never writes; write it to "
                          f"{managed / EXPORT_DIR}/ or outside the directory")
    if not force:
        for candidate in (path, description_path(path)):
            if os.path.lexists(candidate):
                raise ConfigError(f"--out {path}: {candidate} already exists; pass --force "
                                  "to replace it, or choose another file name")


def _managed_folder(path: Path, run_dir: Path) -> Path | None:
    """The nearest folder above ``path`` that is ``run_dir`` or looks like a run or sweep
    directory (its marker file and one of its outputs), or None."""
    for folder in path.parents:
        if folder == run_dir or any(
                (folder / marker).exists() and any((folder / o).exists() for o in outputs)
                for marker, outputs in MANAGED_MARKERS):
            return folder
    return None


def _refuse_non_finite(backbone: nn.Module, run_dir: Path, step: int) -> None:
    bad = next(non_finite(backbone.state_dict().items()), None)
    if bad is not None:
        raise ConfigError(f"{run_dir}'s checkpoint (step {step}) holds weights that are "
                          f"not finite ({bad[0]}: NaN or inf; the run diverged); nothing "
                          "was exported")


def _source_backbone(learner: SiameseLearner, config: TrainConfig, target: bool) -> nn.Module:
    if not target:
        return learner.backbone
    if learner.target_net is None:
        raise ConfigError(
            f"--target: this {config.method} run has no separate target network (its "
            f"learner.target is {config.learner.target!r}: the target is the online encoder "
            "with a stop-gradient); export without --target")
    target_net = learner.target_net
    assert isinstance(target_net, nn.Sequential)  # (backbone, projector), built by the learner
    return target_net[0]

