"""STL-10 from the published binary files (``stl10_binary/``).

Each image is 3*96*96 bytes stored channel by channel and, within a channel,
column-major (MATLAB order): byte ``c*9216 + x*96 + y`` is pixel (row y, column x).
Labels are bytes 1..10. The unlabeled split (100 000 images, 2.7 GB) is read
through a memory map in chunks, so peak memory is one copy of the data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nocollapse.data.dataset import (
    ImageDataset,
    check_memory,
    check_split,
    require_dir,
    require_file,
)
from nocollapse.errors import DataError

STL10_SPLITS: tuple[str, ...] = ("train", "test", "unlabeled", "train+unlabeled")
_IMAGE_BYTES = 3 * 96 * 96
_CHUNK = 4096
_HOW = ("Download http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz, unpack it with "
        "`tar xzf` (it creates stl10_binary/) and pass the folder that contains "
        "stl10_binary/ (or stl10_binary/ itself) as --data-dir.")


def _count_images(path: Path) -> int:
    size = path.stat().st_size
    if size == 0 or size % _IMAGE_BYTES:
        raise DataError(f"STL-10 file {path} has {size} bytes, not a positive multiple of "
                        f"{_IMAGE_BYTES} (one 96x96x3 image): truncated or corrupt")
    return size // _IMAGE_BYTES


def _read_images(path: Path, out: torch.Tensor) -> None:
    """Fill ``out`` (N, 3, 96, 96) uint8, row-major, from a column-major ``*_X.bin`` file."""
    n = out.shape[0]
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, 3, 96, 96))
    for start in range(0, n, _CHUNK):
        # The file's (x, y) axes are (column, row): swap them to get (row, column).
        chunk = np.asarray(raw[start:start + _CHUNK]).transpose(0, 1, 3, 2)
        out[start:start + _CHUNK] = torch.from_numpy(np.ascontiguousarray(chunk))
    del raw


def _read_labels(path: Path, n: int) -> torch.Tensor:
    held = path.stat().st_size  # one byte a label: checked before reading
    if held != n:
        raise DataError(f"STL-10 label file {path} holds {held} labels for {n} images")
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"STL-10 label file {path} has labels outside 1..10")
    return torch.from_numpy(labels - 1)


def _classes(folder: Path) -> list[str]:
    path = folder / "class_names.txt"
    if not path.is_file():
        return [str(k) for k in range(10)]
    if path.stat().st_size > 64 * 1024:  # ten short names
        return [str(k) for k in range(10)]
    text = path.read_bytes().decode("utf-8", "replace")  # a damaged byte shows as U+FFFD
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return names if len(names) == 10 else [str(k) for k in range(10)]


def _load_parts(folder: Path, parts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the named parts, concatenated into one preallocated tensor."""
    files = [require_file(folder / f"{part}_X.bin", "stl10", _HOW) for part in parts]
    counts = [_count_images(f) for f in files]
    check_memory(f"stl10: {', '.join(str(f) for f in files)} ({sum(counts)} images)",
                 sum(counts) * _IMAGE_BYTES, "Check the files (a sparse or damaged file?)")
    images = torch.empty((sum(counts), 3, 96, 96), dtype=torch.uint8)
    labels = []
    start = 0
    for part, path, n in zip(parts, files, counts, strict=True):
        _read_images(path, images[start:start + n])
        start += n
        if part == "unlabeled":
            labels.append(torch.full((n,), -1, dtype=torch.int64))
        else:
            labels.append(_read_labels(require_file(folder / f"{part}_y.bin", "stl10", _HOW), n))
    return images, torch.cat(labels)


def load_stl10(root: str | Path | None, split: str = "train") -> ImageDataset:
    """Load STL-10: uint8 (N, 3, 96, 96); labels 0..9, or -1 for unlabeled images.

    ``split`` is ``train`` (5000), ``test`` (8000), ``unlabeled`` (100 000) or
    ``train+unlabeled`` (the usual self-supervised pre-training set).
    """
    check_split(split, STL10_SPLITS)
    if root is None:
        raise DataError(f"stl10: no data folder given. {_HOW}")
    root = require_dir(Path(root), "stl10", "stl10_binary/", _HOW)
    folder = root if (root / "test_X.bin").is_file() or (root / "train_X.bin").is_file() \
        else root / "stl10_binary"
    require_dir(folder, "stl10", "train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
                "unlabeled_X.bin, class_names.txt", _HOW)
    images, labels = _load_parts(folder, split.split("+"))
    return ImageDataset(name="stl10", images=images, labels=labels, classes=_classes(folder))
