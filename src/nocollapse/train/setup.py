"""Building a run's pieces from its config: data, learner, optimiser, Fabric, run directory."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch

from nocollapse.data import (
    DATASETS,
    ImageDataset,
    idx,
    load_dataset,
    make_augment,
    preset_for_images,
)
from nocollapse.errors import ConfigError, MissingDataError, OutputError
from nocollapse.methods import Learner, SiameseLearner
from nocollapse.rundir.checkpoint import checkpoint_path, load_checkpoint
from nocollapse.rundir.lock import refuse_foreign_entries
from nocollapse.rundir.resume import check_resume_changes, require_run_dir
from nocollapse.runio import ensure_dir
from nocollapse.runio.records import Checkpoint, ConfigDict
from nocollapse.train.config import TrainConfig
from nocollapse.train.lars import LARS
from nocollapse.train.precision import resolve_precision
from nocollapse.train.schedule import WarmupCosine

if TYPE_CHECKING:  # imported when a run starts: it is slow to import
    from lightning_fabric import Fabric

# (config, in_channels, image_size) -> the learner; tests pass small stand-ins.
LearnerFactory = Callable[[TrainConfig, int, int], Learner]
L = TypeVar("L", bound=Learner)


@dataclass
class RunData:
    """Training and held-out images (uint8, on the run's device) and the preset used."""

    train: ImageDataset
    test: ImageDataset | None
    preset: str


# Decoded splits kept for the process (a sweep worker's cells, a cell's training and its
# label-free metrics and baseline read the same files): (name, data_dir, split, options)
# -> (the data files' sizes and modification times, the split). A changed file is decoded
# again; a split over CACHE_MAX_BYTES, or a folder of more than CACHE_MAX_FILES files
# (an image folder), is not kept.
_DECODED: dict[tuple[object, ...], tuple[object, ImageDataset]] = {}
CACHE_MAX_BYTES, CACHE_MAX_FILES, CACHE_SPLITS = 1 << 30, 64, 4


def load_split(name: str, data_dir: str | None, split: str, **options: int) -> ImageDataset:
    """``load_dataset(name, data_dir, split, **options)``, decoded once per process while
    its files are unchanged (the caller must not change the returned tensors in place)."""
    key = (name, data_dir, split, tuple(sorted(options.items())))
    files = _files_signature(data_dir)
    found = _DECODED.get(key)
    if found is not None and files is not None and found[0] == files:
        return found[1]
    data = load_dataset(name, data_dir, split, **options)
    if files is not None and data.images.nbytes <= CACHE_MAX_BYTES:
        while len(_DECODED) >= CACHE_SPLITS:
            _DECODED.pop(next(iter(_DECODED)))
        _DECODED[key] = (files, data)
    return data


def _files_signature(data_dir: str | None) -> tuple[tuple[str, int, int], ...] | None:
    """(name, size, mtime) of the data files: ``data_dir`` itself, or the files directly in
    it (no folder: the built-in Fashion-MNIST folder's, whose absence means the bundled
    digits); None (do not cache) for a folder with subfolders or too many files."""
    if data_dir is None:
        folder = idx.FASHION_MNIST_DIR
        return (("", 0, 0),) if not folder.is_dir() else _files_signature(str(folder))
    try:
        path = Path(data_dir)
        if path.is_file():
            stat = path.stat()
            return ((path.name, stat.st_size, stat.st_mtime_ns),)
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
        if len(entries) > CACHE_MAX_FILES or any(e.is_dir() for e in entries):
            return None
        return tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries)
    except OSError:
        return None


def load_run_data(config: TrainConfig) -> RunData:
    """The configured data set's train split (and test split when it has one), subset applied."""
    options = dataset_options(config)
    train = _subset(load_split(config.data.name, config.data.data_dir, "train", **options),
                    config.data.subset)
    try:
        test = _subset(load_split(config.data.name, config.data.data_dir, "test", **options),
                       config.data.test_subset)
    except MissingDataError:  # a damaged test split (bad labels, classes) still stops the run
        test = None  # an image folder without a test split: no k-NN monitor
    if len(train) < config.data.batch_size:
        raise ConfigError(f"data.batch_size={config.data.batch_size} exceeds the {len(train)} "
                          f"training images of {train.name}; lower data.batch_size")
    return RunData(train, test, preset_for_images(train.images))


def dataset_options(config: TrainConfig) -> dict[str, int]:
    """The loader options of the configured data set: ``size`` (``data.image_size``) for
    a data set whose registry entry takes one (image folders), nothing otherwise."""
    entry = DATASETS.get(config.data.name)
    return {"size": config.data.image_size} if entry and "size" in entry.options else {}


def _subset(data: ImageDataset, size: int | None) -> ImageDataset:
    if size is None or size >= len(data):
        return data
    return ImageDataset(data.name, data.images[:size], data.labels[:size], data.classes)


def default_learner(config: TrainConfig, in_channels: int, image_size: int) -> SiameseLearner:
    """``SiameseLearner`` from the config's resolved (already validated) ``learner``."""
    return SiameseLearner(config.learner, in_channels, image_size)


def build_learner(factory: Callable[[TrainConfig, int, int], L], config: TrainConfig,
                  in_channels: int, image_size: int) -> L:
    """``factory(config, ...)``, with a learner the options cannot build as a ConfigError."""
    try:
        return factory(config, in_channels, image_size)
    except (RuntimeError, MemoryError, ValueError, TypeError, OverflowError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"cannot build the {config.method} learner from its learner.* "
                          f"options ({_first_line(error)}); check the learner.* sizes "
                          "(proj_dim, proj_hidden_dim, pred_hidden_dim)") from error


# learner modules a branch may add or drop (a predictor restored, a target made): their
# weights start fresh; any other key missing from, or foreign to, the checkpoint is refused
BRANCHABLE_MODULES = ("predictor.", "tracker.", "target_net.")


def load_initial_weights(learner: torch.nn.Module, path: str) -> None:
    """The learner weights of the checkpoint ``path`` (``init_from``), as a ConfigError when
    they do not fit this learner beyond a predictor or target added or dropped."""
    saved = load_checkpoint(path)
    try:
        result = learner.load_state_dict(saved["model"], strict=False)
    except RuntimeError as error:
        raise ConfigError(f"init_from={path}: its weights do not fit this learner "
                          f"({_first_line(error)})") from error
    foreign = [key for key in (*result.missing_keys, *result.unexpected_keys)
               if not key.startswith(BRANCHABLE_MODULES)]
    if foreign:
        raise ConfigError(f"init_from={path}: its weights do not fit this learner "
                          f"({len(foreign)} keys differ, e.g. {foreign[0]}); only the "
                          "predictor or the target may be added or dropped")


def build_augment(config: TrainConfig, preset: str) -> torch.nn.Module:
    """The augmentation preset with ``data.augment`` overrides; bad options as a ConfigError."""
    try:
        return make_augment(preset, **config.data.augment)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"data.augment={config.data.augment} cannot build the augmentation "
                          f"({_first_line(error)}); see docs/data.md for the options and their "
                          "ranges") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def steps_per_epoch(config: TrainConfig, num_images: int, world_size: int) -> int:
    """Optimiser steps per epoch: each rank sees ``num_images / world_size``, last batch dropped."""
    per_rank = num_images // world_size
    steps = per_rank // config.data.batch_size
    if steps == 0:
        raise ConfigError(f"{num_images} images over {world_size} processes give no full batch "
                          f"of data.batch_size={config.data.batch_size}; lower it")
    return steps


def total_steps(config: TrainConfig, per_epoch: int) -> int:
    planned = per_epoch * config.epochs
    if config.max_steps is not None:
        planned = config.max_steps if config.epochs == 0 else min(planned, config.max_steps)
    return planned


def build_optimizer(config: TrainConfig, learner: Learner, total: int,
                    per_epoch: int) -> tuple[torch.optim.Optimizer, WarmupCosine]:
    """SGD or LARS over the learner's parameter groups, with the warm-up + cosine schedule."""
    optim = config.optim
    groups = learner.parameter_groups(optim.weight_decay, optim.predictor_lr_scale)
    if optim.name == "lars":
        optimizer: torch.optim.Optimizer = LARS(groups, lr=optim.lr, momentum=optim.momentum,
                                                weight_decay=optim.weight_decay,
                                                eta=optim.lars_eta)
    else:
        optimizer = fast_sgd(groups, lr=optim.lr, momentum=optim.momentum,
                             weight_decay=optim.weight_decay)
    warmup = min(math.ceil(optim.warmup_epochs * per_epoch), total)
    scheduler = WarmupCosine(optimizer, total, warmup, optim.lr, optim.final_lr, optim.cosine)
    return optimizer, scheduler


def fast_sgd(groups: list[dict[str, object]], lr: float, momentum: float,
             weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD with the fused kernel (one pass over all parameters; on this CPU half the time of
    the per-tensor loop, ``benchmarks/bench_backbones.py``), else torch's default."""
    try:
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def should_compile(choice: str, device: torch.device) -> bool:
    """``device.compile``: "true", "false", or "auto" = compile on CUDA only."""
    return choice == "true" or (choice == "auto" and device.type == "cuda")


# What Lightning's multi-node cluster environments (SLURM, torchelastic, LSF, MPI) read.
CLUSTER_VARIABLES = ("SLURM_NTASKS", "NODE_RANK", "MASTER_ADDR", "TORCHELASTIC_RUN_ID",
                     "LSB_JOBID", "OMPI_COMM_WORLD_SIZE", "GROUP_RANK")


def make_fabric(config: TrainConfig) -> Fabric:
    """A launched Lightning Fabric for the configured accelerator, devices and precision."""
    from lightning_fabric import Fabric

    device = config.device
    if device.num_nodes > 1 and not any(name in os.environ for name in CLUSTER_VARIABLES):
        raise ConfigError(
            f"device.num_nodes={device.num_nodes}, but this process was not started by a "
            "multi-node launcher (no SLURM_NTASKS, NODE_RANK, MASTER_ADDR, LSB_JOBID or "
            "OMPI_COMM_WORLD_SIZE in the environment): it would wait forever for the other "
            "nodes. Start one process per node with srun or torchrun, or set "
            "device.num_nodes=1")
    if device.threads is not None:
        torch.set_num_threads(device.threads)
    try:
        fabric = Fabric(accelerator=device.accelerator, devices=device.devices,
                        num_nodes=device.num_nodes, strategy=device.strategy,
                        precision=device.precision)  # type: ignore[arg-type]
        fabric.launch()
    except Exception as error:  # Lightning's own exception types vary between versions
        raise ConfigError(f"the device settings (device.accelerator={device.accelerator}, "
                          f"device.devices={device.devices}, device.strategy={device.strategy}, "
                          f"device.precision={device.precision}) cannot be used here "
                          f"({_first_line(error)})") from error
    return fabric


def prepare_run_dir(config: TrainConfig, resume: bool) -> Path:
    """The run directory, created for a fresh run (which refuses one already holding a run)."""
    run_dir = Path(config.out)
    if resume:
        return run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"--out {run_dir} is a file, not a folder; choose another path")
    if checkpoint_path(run_dir).exists():
        raise ConfigError(f"{run_dir} already holds a run (checkpoints/last.pt); continue it with "
                          f"--resume {run_dir}, or choose another directory with --out")
    refuse_foreign_entries(run_dir, config.to_dict())
    return ensure_dir(run_dir, "run directory")


def with_resolved_precision(config: TrainConfig, stored: ConfigDict | None = None
                            ) -> tuple[TrainConfig, str]:
    """``config`` with ``device.precision`` resolved to a Fabric value, and why
    (:mod:`nocollapse.train.precision`); resuming a run (``stored``: its configuration),
    ``auto`` is the precision it was trained in."""
    choice = config.device.precision
    stored_device = stored.get("device") if stored is not None else None
    if choice == "auto" and isinstance(stored_device, dict) and stored_device.get("precision"):
        resolved, why = str(stored_device["precision"]), "auto: as the run being resumed"
    else:
        resolved, why = resolve_precision(choice, config.device.accelerator)
    if resolved == choice:
        return config, why
    device = dataclasses.replace(config.device, precision=resolved)
    return dataclasses.replace(config, device=device), why


def load_for_resume(config: TrainConfig) -> Checkpoint:
    """The checkpoint of the run in ``config.out``, once ``config`` is checked against the
    configuration stored in it (:func:`check_against_stored`)."""
    saved = load_checkpoint(require_run_dir(config.out))
    config, _ = with_resolved_precision(config, saved["config"])
    check_against_stored(config, saved["config"], config.out)
    return saved


def check_against_stored(config: TrainConfig, stored: ConfigDict,
                         run_dir: str | Path) -> None:
    """Refuse what a resume of ``run_dir`` may not change in its ``stored`` configuration
    (:func:`~nocollapse.rundir.resume.check_resume_changes`); ``stored`` is read through
    :class:`TrainConfig` first, so a key a later version added counts as its default."""
    check_resume_changes(TrainConfig.from_dict(stored).to_dict(), config.to_dict(), run_dir)
