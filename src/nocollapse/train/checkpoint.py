"""Checkpoints: written atomically, read back with a clear error when damaged.

``checkpoints/last.pt`` is replaced by a rename only after the new file is
complete (``runio.atomic_write_bytes``), so a crash or a full disk during a save
leaves the previous good checkpoint in place.
"""

from __future__ import annotations

import io
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nocollapse.errors import NocollapseError
from nocollapse.runio import CHECKPOINT_DIR, LAST_CHECKPOINT, atomic_write_bytes


class CheckpointError(NocollapseError):
    """A checkpoint that is missing, truncated or not a nocollapse checkpoint."""


def checkpoint_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/checkpoints/last.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialise ``state`` with ``torch.save`` and write it atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` naming the file and the fix when it is
    missing, truncated or corrupt, or lacks the keys a training run saves.
    """
    path = Path(path)
    if path.is_dir():
        path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; a run writes one at the end of each checkpoint interval "
            "(checkpoint_every epochs). Check the run directory, or start a new run without "
            "--resume")
    try:
        # weights_only=False: the checkpoint holds numpy and python RNG states. Only load
        # checkpoints you wrote yourself (torch.load unpickles).
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            OSError) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error}). "
            "It was not written completely (disk full, or copied while being written). Restore "
            "it from a backup, or start the run again without --resume") from error
    missing = {"model", "step", "config"} - set(state) if isinstance(state, dict) else {"model"}
    if missing:
        raise CheckpointError(f"{path} is not a nocollapse training checkpoint (missing "
                              f"{sorted(missing)}); pass the run directory that wrote it")
    return state


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a run consumes: torch (CPU, CUDA), numpy, python, the augmentation's."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
