"""CIFAR-10 and CIFAR-100 from their published "python version" pickle batches.

Each batch is a pickled dict with ``data`` (N, 3072) uint8 rows -- 1024 red, then
1024 green, then 1024 blue values, each row-major 32x32 -- and ``labels``
(CIFAR-10) or ``fine_labels`` (CIFAR-100). Pickle runs code from the file, so
only point this at archives you downloaded from the official page.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nocollapse.data.dataset import ImageDataset, check_split, require_dir, require_file
from nocollapse.errors import DataError

_LAYOUT = {
    # name: (unpacked folder, train files, test files, meta file, label key, names key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                ["test_batch"], "batches.meta", b"labels", b"label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta",
                 b"fine_labels", b"fine_label_names"),
}
_URL = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}


def _how(name: str) -> str:
    folder = _LAYOUT[name][0]
    return (f"Download {_URL[name]}, unpack it with `tar xzf` (it creates {folder}/) and pass "
            f"the folder that contains {folder}/ (or {folder}/ itself) as --data-dir.")


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read CIFAR pickle {path}: {exc} (truncated or not a "
                        "CIFAR batch?)") from exc
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR file {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if b"data" not in batch or label_key not in batch:
        raise DataError(f"CIFAR file {path} lacks the keys 'data' and "
                        f"'{label_key.decode()}' (found {sorted(k for k in batch)})")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"CIFAR file {path}: data has shape {data.shape} with {len(labels)} "
                        "labels; expected (N, 3072) with N labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(name: str, root: str | Path | None, split: str = "train") -> ImageDataset:
    """Load ``cifar10`` or ``cifar100`` (fine labels): uint8 (N, 3, 32, 32).

    ``root`` is the folder holding the unpacked archive folder, or that folder itself.
    """
    check_split(split)
    folder_name, train_files, test_files, meta_file, label_key, names_key = _LAYOUT[name]
    if root is None:
        raise DataError(f"{name}: no data folder given. {_how(name)}")
    root = require_dir(Path(root), name, f"{folder_name}/", _how(name))
    folder = root if (root / meta_file).is_file() else root / folder_name
    require_dir(folder, name, ", ".join([*train_files, *test_files, meta_file]), _how(name))
    meta = _unpickle(require_file(folder / meta_file, name, _how(name)))
    if names_key not in meta:
        raise DataError(f"CIFAR meta file {folder / meta_file} lacks '{names_key.decode()}'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    parts = [_read_batch(require_file(folder / f, name, _how(name)), label_key)
             for f in (train_files if split == "train" else test_files)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"{name}: labels in {folder} fall outside 0..{len(classes) - 1}")
    return ImageDataset(name=name, images=torch.from_numpy(np.ascontiguousarray(images)),
                        labels=torch.from_numpy(labels), classes=classes)
