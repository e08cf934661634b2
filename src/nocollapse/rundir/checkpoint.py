"""Checkpoints: written atomically, loaded without running code, verified before use.

``checkpoints/last.pt`` is replaced by a rename only after the new file is
complete (``runio.atomic_write_bytes``), so a crash or a full disk during a save
leaves the previous good checkpoint in place.

Loading never runs code from the file: a checkpoint holds only tensors and plain
values (dicts, lists, numbers, strings; the random states are stored as tensors),
and it is read with ``torch.load(weights_only=True)``, which refuses anything
else. Before that, every member of the zip archive ``torch.save`` writes is read
back against its CRC-32, so a flipped byte anywhere in a tensor is refused too.
"""

from __future__ import annotations

import io
import pickle
import random
import re
import zipfile
import zlib
from pathlib import Path
from typing import cast

import numpy as np
import torch

from nocollapse.errors import NocollapseError, OutputError
from nocollapse.runio import CHECKPOINT_DIR, LAST_CHECKPOINT, atomic_write_bytes
from nocollapse.runio.records import CHECKPOINT_KEYS, Checkpoint, RngState

# Every key a training run saves; a file lacking one is not a (complete) nocollapse checkpoint.
REQUIRED_KEYS = CHECKPOINT_KEYS
_FIX = "Restore it from a backup, or start the run again without --resume"


class CheckpointError(NocollapseError):
    """A checkpoint that is missing, damaged, unsafe, or not a nocollapse checkpoint."""


def checkpoint_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/checkpoints/last.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


# the training state at the log before the run's first suspect one (nocollapse diagnose)
PRESUSPECT_CHECKPOINT = "presuspect.pt"


def presuspect_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/checkpoints/presuspect.pt``: the snapshot ``nocollapse diagnose`` branches."""
    return Path(run_dir) / CHECKPOINT_DIR / PRESUSPECT_CHECKPOINT


def serialize_checkpoint(state: Checkpoint) -> bytes:
    """``state`` as the bytes :func:`save_checkpoint` writes (a copy: later steps leave it)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def write_checkpoint_bytes(path: str | Path, data: bytes) -> Path:
    """Bytes from :func:`serialize_checkpoint`, written atomically to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


def save_checkpoint(path: str | Path, state: Checkpoint) -> Path:
    """Serialise ``state`` with ``torch.save`` and write it atomically to ``path``.

    ``state`` must hold tensors and plain values only (see :func:`rng_state`), so
    that :func:`load_checkpoint` can read it back with ``weights_only=True``.
    """
    path = Path(path)
    try:
        atomic_write_bytes(path, serialize_checkpoint(state))
    except OutputError as error:
        kept = (f"the previous checkpoint {path} is unchanged" if path.exists()
                else "no checkpoint was written")
        raise OutputError(f"{error}; {kept}") from error
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (a run directory or a file).

    Raises :class:`CheckpointError` naming the file and the fix when it is missing,
    truncated, fails its CRC check, holds anything but tensors and plain values,
    or lacks a key a training run saves. Nothing in the file is executed.
    """
    path = Path(path)
    if path.is_dir():
        path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; a run writes one at the end of each checkpoint interval "
            "(checkpoint_every epochs). Check the run directory, or start a new run without "
            "--resume")
    verify_checksums(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise CheckpointError(f"checkpoint {path} is corrupt ({error}). {_FIX}") from error
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds an object other than tensors and plain "
            f"values{what}, which could run code when loaded; nothing was run. nocollapse "
            "writes no such object (checkpoints of earlier nocollapse builds, which stored "
            "numpy random states, are refused too). Do not use a file you did not write; "
            f"{_FIX[0].lower()}{_FIX[1:]}") from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            AttributeError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error}). "
            f"{_FIX}") from error
    return _check_keys(path, state)


def verify_checksums(path: Path) -> None:
    """Read every member of the checkpoint's zip archive against its stored CRC-32."""
    try:
        with zipfile.ZipFile(path) as archive:
            _refuse_inflating_members(path, archive)
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            zlib.error) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt (not a complete zip archive as "
            f"torch.save writes: {error}). It was not written completely (disk full, or copied "
            f"while being written). {_FIX}") from error
    if damaged is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its member {damaged!r} does not match the CRC-32 "
            f"stored with it (the file was changed after it was written). {_FIX}")


def _refuse_inflating_members(path: Path, archive: zipfile.ZipFile) -> None:
    """``torch.save`` stores every member uncompressed: a compressed member, or members
    declaring more bytes than the file holds, would inflate beyond it (a zip bomb)."""
    length, declared = path.stat().st_size, 0
    for info in archive.infolist():
        declared += info.file_size
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise CheckpointError(
                f"checkpoint {path} was refused: its member {info.filename[:80]!r} is "
                f"compressed ({info.compress_size} bytes declaring {info.file_size}); "
                "torch.save stores members uncompressed, so nocollapse did not write it and "
                f"nothing was inflated. {_FIX}")
    if declared > length:
        raise CheckpointError(
            f"checkpoint {path} was refused: its members declare {declared} bytes, more than "
            f"the file's {length}; it is damaged or not a torch.save archive. {_FIX}")


def _check_keys(path: Path, state: object) -> Checkpoint:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a nocollapse training checkpoint (it holds a "
                              f"{type(state).__name__}); pass the run directory that wrote it")
    missing = sorted(REQUIRED_KEYS - set(state))
    if missing:
        raise CheckpointError(f"{path} is not a complete nocollapse training checkpoint "
                              f"(missing {missing}); pass the run directory that wrote it")
    if not isinstance(state["config"], dict) or not isinstance(state["step"], int):
        raise CheckpointError(f"{path} is not a nocollapse training checkpoint (its 'config' "
                              "or 'step' has the wrong type)")
    # the other values are checked where they are used (a resume refuses a misfit)
    return cast(Checkpoint, state)


def rng_state(generator: torch.Generator | None = None) -> RngState:
    """Every random state a run consumes: torch (CPU, CUDA), numpy, python, the augmentation's.

    As tensors and plain values only, so the checkpoint loads with ``weights_only=True``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state: RngState = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: RngState, generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"],
                         saved["has_gauss"], saved["cached"]))
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()),
                     python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
