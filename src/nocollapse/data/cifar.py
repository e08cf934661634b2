"""CIFAR-10 and CIFAR-100 from their published "python version" pickle batches.

Each batch is a pickled dict with ``data`` (N, 3072) uint8 rows -- 1024 red, then
1024 green, then 1024 blue values, each row-major 32x32 -- and ``labels``
(CIFAR-10) or ``fine_labels`` (CIFAR-100). The batches are read with a restricted
unpickler that builds only what the published files hold -- dicts, byte strings,
lists of ints and numpy ``uint8`` arrays -- and refuses anything else (a pickle
that would import and call any other function) with a :class:`DataError`, so a
planted batch file cannot run code.
"""

from __future__ import annotations

import codecs
import importlib
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


def _numpy_global(name: str) -> Any:
    """``name`` from numpy's private pickling helpers (``numpy._core`` in 2.x, ``core`` in 1.x)."""
    for module in ("numpy._core.multiarray", "numpy._core.numeric", "numpy.core.multiarray",
                   "numpy.core.numeric"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"this numpy has no {name}")


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` for the pickle, refusing object dtypes (they would unpickle objects)."""
    dtype: np.dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dtype} is not allowed")
    return dtype


# (module, name) -> what a CIFAR batch may reference; every other global is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_global("_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_global("_frombuffer"),
    ("numpy", "dtype"): lambda: _plain_dtype,
    ("_codecs", "encode"): lambda: codecs.encode,  # bytes in protocol-2 pickles from python 3
}


_NDARRAY = object()  # what the pickle gets for numpy.ndarray: a token, not a constructor


class _CifarUnpickler(pickle.Unpickler):
    """Builds only dicts, strings, numbers, lists and plain numpy arrays, and no array
    larger than the file (the published batches hold their pixels as raw bytes, so an
    array is never larger than its file; a forged shape would allocate without bound)."""

    def __init__(self, file: Any, limit: int):
        super().__init__(file, encoding="bytes")
        self.limit = limit

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"it references {module}.{name}, which a CIFAR batch "
                                         "never holds")
        if name == "_reconstruct":
            return self._reconstruct
        return factory()

    def _reconstruct(self, subtype: object, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("it reconstructs an array of another type")
        dims = [int(n) for n in (shape if isinstance(shape, tuple | list) else [shape])]
        try:  # bytes, not elements: a dtype of 10^8-byte items is a large array too
            itemsize = _plain_dtype(dtype.decode() if isinstance(dtype, bytes) else dtype
                                    ).itemsize
        except (TypeError, ValueError) as error:
            raise pickle.UnpicklingError(f"it asks for an array of dtype {dtype!r:.40}") \
                from error
        if any(n < 0 for n in dims) or np.prod(dims, dtype=object) * itemsize > self.limit:
            raise pickle.UnpicklingError(f"it asks for an array of shape {tuple(dims)[:8]} "
                                         f"and {itemsize}-byte items, larger than the file "
                                         f"({self.limit} bytes)")
        array: np.ndarray = _numpy_global("_reconstruct")(np.ndarray, shape, dtype)
        return array


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, path.stat().st_size).load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"CIFAR file {path} was refused: {exc}. Only the published CIFAR "
                        "batches (dicts of byte strings, int lists and uint8 arrays) are read; "
                        "nothing from the file was run") from exc
    except Exception as exc:  # a damaged pickle raises almost any error type
        raise DataError(f"cannot read CIFAR pickle {path}: {type(exc).__name__}: {exc} "
                        "(truncated or not a CIFAR batch?)") from exc
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR file {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if b"data" not in batch or label_key not in batch:
        raise DataError(f"CIFAR file {path} lacks the keys 'data' and "
                        f"'{label_key.decode()}' (found {sorted(map(repr, batch))})")
    data, labels = batch[b"data"], _int_labels(path, batch[label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"CIFAR file {path}: 'data' is not a uint8 array "
                        f"({getattr(data, 'dtype', type(data).__name__)})")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"CIFAR file {path}: data has shape {data.shape} with {len(labels)} "
                        "labels; expected (N, 3072) with N labels")
    return data.reshape(-1, 3, 32, 32), labels


def _int_labels(path: Path, labels: object) -> np.ndarray:
    """The labels as int64, refusing anything but a list of ints or an integer array."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        try:
            return np.asarray(labels, dtype=np.int64)
        except OverflowError:
            pass
    raise DataError(f"CIFAR file {path}: the labels are not a list of integers")


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
    names = meta[names_key]
    if not isinstance(names, list):
        raise DataError(f"CIFAR meta file {folder / meta_file}: '{names_key.decode()}' is not "
                        "a list of class names")
    classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
    parts = [_read_batch(require_file(folder / f, name, _how(name)), label_key)
             for f in (train_files if split == "train" else test_files)]
    expected = 10 if name == "cifar10" else 100
    if len(classes) != expected:
        raise DataError(f"CIFAR meta file {folder / meta_file}: {len(classes)} class names; "
                        f"{name} has {expected}")
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"{name}: labels in {folder} fall outside 0..{len(classes) - 1}")
    return ImageDataset(name=name, images=torch.from_numpy(np.ascontiguousarray(images)),
                        labels=torch.from_numpy(labels), classes=classes)
