"""MNIST and Fashion-MNIST in the published IDX format (raw or gzip-compressed).

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 = unsigned
byte), the number of dimensions -- then one int32 per dimension, then the data.
Images are ``idx3`` (N, 28, 28), labels ``idx1`` (N,).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from nocollapse.data.dataset import (
    ImageDataset,
    check_labels,
    check_memory,
    check_split,
    first_existing,
    require_dir,
)
from nocollapse.errors import DataError, MissingDataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(d) for d in range(10)]
_PREFIX = {"train": "train", "test": "t10k"}
_HOW = {
    "fashion-mnist": "Install it with `apt-get install dataset-fashion-mnist` (files go to "
    f"{FASHION_MNIST_DIR}) or put the four published files (from "
    "github.com/zalandoresearch/fashion-mnist) in the folder passed as --data-dir.",
    "mnist": "Put the four published MNIST files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; "
    "raw or .gz) in the folder passed as --data-dir.",
}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions; DataError if malformed.

    The header is read first and its size checked against this machine's memory; then
    exactly that many bytes are read (a gzip stream is never inflated beyond them).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    header = 4 + 4 * ndim
    expected_magic = 0x0800 + ndim
    try:
        with opener(path, "rb") as f:
            head = f.read(header)
            if len(head) < header:
                raise DataError(f"IDX file {path} is truncated: {len(head)} bytes, header "
                                f"needs {header}")
            magic = int.from_bytes(head[:4], "big")
            if magic != expected_magic:
                raise DataError(
                    f"IDX file {path} has magic number 0x{magic:08x}, expected "
                    f"0x{expected_magic:08x} (unsigned bytes, {ndim} dimensions); is it the "
                    "right file, or a corrupt download?")
            dims = [int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            size = math.prod(dims)  # exact: numpy's product would overflow for a forged header
            check_memory(f"IDX file {path} (header {tuple(dims)})", size)
            data = f.read(size)
            longer = bool(f.read(1))
    except (OSError, EOFError, zlib.error) as exc:  # a corrupt or truncated gzip archive
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) != size or longer:
        held = f"more than {size}" if longer else str(len(data))
        raise DataError(
            f"IDX file {path} holds {held} data bytes, its header {tuple(dims)} says {size}: "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _find(folder: Path, stem: str, name: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise MissingDataError(f"{name}: missing file {folder / stem}[.gz]. {_HOW[name]}")


def load_idx_dataset(name: str, root: str | Path | None, split: str = "train") -> ImageDataset:
    """Load ``fashion-mnist`` or ``mnist`` from ``root``: uint8 (N, 1, 28, 28), labels 0..9.

    ``root`` may be the folder holding the files or a torchvision-style parent
    (``root/raw``, ``root/FashionMNIST/raw``, ``root/MNIST/raw``). Fashion-MNIST's
    ``root`` defaults to Debian's ``/usr/share/datasets/fashion-mnist``.
    """
    check_split(split)
    if root is None:
        if name != "fashion-mnist":
            raise DataError(f"{name}: no data folder given. {_HOW[name]}")
        root = FASHION_MNIST_DIR
    root = require_dir(Path(root), name, "the four IDX files", _HOW[name])
    sub = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    candidates = [root, root / "raw", root / sub / "raw", root / sub]
    prefix = _PREFIX[split]
    folder = (first_existing(candidates, f"{prefix}-images-idx3-ubyte.gz")
              or first_existing(candidates, f"{prefix}-images-idx3-ubyte") or root)
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte", name), 3)
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte", name), 1)
    if len(images) != len(labels):
        raise DataError(
            f"{name}: {folder} has {len(images)} {split} images but {len(labels)} labels"
        )
    classes = FASHION_CLASSES if name == "fashion-mnist" else MNIST_CLASSES
    check_labels(name, folder, labels, len(classes))
    return ImageDataset(
        name=name,
        images=torch.from_numpy(images.copy()).unsqueeze(1).contiguous(),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=list(classes),
    )
