"""One entry point, :func:`load_dataset`, over every loader, and the embedded default."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from nocollapse.data import idx
from nocollapse.data.cifar import load_cifar
from nocollapse.data.dataset import ImageDataset, check_split
from nocollapse.data.digits import load_digits_dataset
from nocollapse.data.folder import load_folder
from nocollapse.data.stl10 import STL10_SPLITS, load_stl10
from nocollapse.errors import check_choice

DATASETS: tuple[str, ...] = (
    "fashion-mnist", "mnist", "cifar10", "cifar100", "stl10", "folder", "digits", "default",
)
logger = logging.getLogger("nocollapse.data")


def _announce(message: str) -> None:
    # The CLI may not configure logging; the fallback must still be visible to the user.
    if logging.getLogger().hasHandlers() or logger.hasHandlers():
        logger.warning(message)
    else:
        print(message, file=sys.stderr)


def load_default(root: str | Path | None = None, split: str = "train") -> ImageDataset:
    """Fashion-MNIST from ``root`` or Debian's folder; scikit-learn's digits if that is absent.

    An explicit ``root`` that does not hold Fashion-MNIST is an error (the user asked
    for it); only the built-in location falls back, with a message saying so.
    """
    check_split(split)
    if root is not None:
        return idx.load_idx_dataset("fashion-mnist", root, split)
    folder = idx.FASHION_MNIST_DIR
    if (folder / "train-images-idx3-ubyte.gz").is_file() or \
            (folder / "train-images-idx3-ubyte").is_file():
        return idx.load_idx_dataset("fashion-mnist", folder, split)
    _announce(
        f"nocollapse: Fashion-MNIST not found in {folder} (install it with "
        "`apt-get install dataset-fashion-mnist`); using scikit-learn's 8x8 digits instead."
    )
    return load_digits_dataset(split)


def load_dataset(name: str, root: str | Path | None = None, split: str = "train",
                 **options: int) -> ImageDataset:
    """Load data set ``name`` (one of :data:`DATASETS`) from local files; never downloads.

    ``split`` is ``train`` or ``test`` (STL-10 adds ``unlabeled`` and ``train+unlabeled``).
    ``options`` go to the folder loader (``size``, ``channels``). Returns uint8
    images (N, C, H, W) and int64 labels (N,). A missing or malformed file raises
    :class:`nocollapse.errors.DataError` naming the path and how to obtain the data.
    """
    check_choice("data set", name, DATASETS)
    check_split(split, STL10_SPLITS if name == "stl10" else ("train", "test"))
    if options and name != "folder":
        raise TypeError(f"load_dataset({name!r}) takes no options; got {sorted(options)}")
    if name in ("fashion-mnist", "mnist"):
        return idx.load_idx_dataset(name, root, split)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, root, split)
    if name == "stl10":
        return load_stl10(root, split)
    if name == "folder":
        return load_folder(root, split, **options)
    if name == "digits":
        return load_digits_dataset(split)
    return load_default(root, split)
