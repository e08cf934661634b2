"""The in-memory data set every loader returns, and shared checks for the loaders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nocollapse.errors import DataError, MissingDataError, check_choice

SPLITS: tuple[str, ...] = ("train", "test")


@dataclass
class ImageDataset:
    """Images as one uint8 tensor, ready to be indexed in batches and augmented on device.

    ``images``: uint8, shape (N, C, H, W), contiguous. ``labels``: int64, shape (N,),
    ``-1`` for unlabeled images (STL-10's unlabeled split). ``classes[k]`` names label k.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        # A loader bug here would surface much later as a confusing shape error in training.
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"{self.name}: images must be uint8 (N, C, H, W), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"{self.name}: labels must be int64 ({self.images.shape[0]},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if not self.images.is_contiguous():
            self.images = self.images.contiguous()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)


def check_split(split: str, splits: tuple[str, ...] = SPLITS) -> str:
    """Refuse an unknown split, listing the valid ones."""
    return check_choice("split", split, splits)


def require_dir(root: Path, name: str, expected: str, how: str) -> Path:
    """Return ``root`` if it is a folder, else a DataError saying what belongs there."""
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"{name}: folder {root} {problem}; expected it to hold {expected}. {how}")
    return root


def require_file(path: Path, name: str, how: str) -> Path:
    """Return ``path`` if it is a file, else a DataError naming it and how to get it."""
    if not path.is_file():
        listing = ""
        if path.parent.is_dir():
            present = sorted(p.name for p in path.parent.iterdir())[:10]
            listing = f" (the folder holds: {', '.join(present) or 'nothing'})"
        raise MissingDataError(f"{name}: missing file {path}{listing}. {how}")
    return path


def first_existing(candidates: list[Path], marker: str) -> Path | None:
    """The first candidate folder that contains ``marker`` (a file or folder name)."""
    for folder in candidates:
        if (folder / marker).exists():
            return folder
    return None


def available_memory() -> int:
    """Bytes of this machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(what: str, need: int, fix: str = "") -> None:
    """Refuse, before anything is read or allocated, data needing over half this machine's
    memory (``need`` bytes)."""
    have = available_memory()
    if need > have // 2:
        raise DataError(f"{what} would need about {need / 2**30:.1f} GiB of memory; this "
                        f"machine has {have / 2**30:.1f} GiB{'. ' + fix if fix else ''}")


def check_labels(name: str, where: Path | str, labels: np.ndarray, classes: int) -> None:
    """Refuse labels outside ``0 .. classes - 1`` (they would silently skew every accuracy)."""
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise DataError(f"{name}: labels in {where} run from {int(labels.min())} to "
                        f"{int(labels.max())}; the data set has {classes} classes "
                        f"(0..{classes - 1}). The files are damaged or of another data set")
