"""``DATASETS``: every data set by name, and :func:`load_dataset` over them.

Each entry names its loader ``load(root, split, **options)``, the splits it has,
the options it takes, the augmentation preset of its images and a line of help;
:func:`register_dataset` adds one from outside the package (see docs/extending.md).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nocollapse.data import idx
from nocollapse.data.cifar import load_cifar
from nocollapse.data.dataset import ImageDataset, check_split
from nocollapse.data.digits import load_digits_dataset
from nocollapse.data.folder import load_folder
from nocollapse.data.stl10 import STL10_SPLITS, load_stl10
from nocollapse.errors import ConfigError, check_choice
from nocollapse.plugins import PluginRegistry

# load(root, split, **options) -> the split's images and labels
DatasetLoader = Callable[..., ImageDataset]


@dataclass(frozen=True)
class DatasetEntry:
    """A data set: its loader, splits, accepted options, augmentation preset and help;
    ``pixels``: how its files' values become the uint8 images it loads (an export's JSON
    and the loaded backbone's ``pixels`` quote it)."""

    load: DatasetLoader
    preset: str
    help: str
    splits: tuple[str, ...] = ("train", "test")
    options: tuple[str, ...] = ()
    pixels: str = "the files' uint8 values as stored"

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


def _idx(name: str) -> DatasetLoader:
    return lambda root, split: idx.load_idx_dataset(name, root, split)


def _cifar(name: str) -> DatasetLoader:
    return lambda root, split: load_cifar(name, root, split)


DATASETS: PluginRegistry[DatasetEntry] = PluginRegistry({
    "fashion-mnist": DatasetEntry(_idx("fashion-mnist"), "28x1", "Fashion-MNIST IDX files",
                                  pixels="the IDX files' uint8 grey values as stored"),
    "mnist": DatasetEntry(_idx("mnist"), "28x1", "MNIST IDX files",
                          pixels="the IDX files' uint8 grey values as stored"),
    "cifar10": DatasetEntry(_cifar("cifar10"), "32x3", "CIFAR-10 python pickles",
                            pixels="the pickles' uint8 RGB values as stored"),
    "cifar100": DatasetEntry(_cifar("cifar100"), "32x3", "CIFAR-100 python pickles",
                             pixels="the pickles' uint8 RGB values as stored"),
    "stl10": DatasetEntry(load_stl10, "96x3", "STL-10 binary files", STL10_SPLITS,
                          pixels="the binary files' uint8 RGB values as stored"),
    "folder": DatasetEntry(load_folder, "32x3", "an image folder, one sub-folder a class",
                           options=("size", "channels"),
                           pixels="each file decoded by Pillow, converted to L (1 channel) "
                           "or RGB (3), resized to size x size with bilinear resampling, "
                           "uint8"),
    "digits": DatasetEntry(lambda root, split: load_digits_dataset(split), "8x1",
                           "scikit-learn's 8x8 digits (embedded)",
                           pixels="scikit-learn's digit values 0..16 scaled to 0..255: "
                           "uint8(rint(x * 255 / 16))"),
    "default": DatasetEntry(load_default, "28x1",
                            "Fashion-MNIST, or the embedded digits when it is absent"),
})


def register_dataset(name: str, entry: DatasetEntry) -> DatasetEntry:
    """Add data set ``name``; names are unique."""
    if name in DATASETS:
        raise ConfigError(f"data set {name!r} is already registered")
    DATASETS[name] = entry
    return entry


def load_dataset(name: str, root: str | Path | None = None, split: str = "train",
                 **options: int) -> ImageDataset:
    """Load data set ``name`` (a key of :data:`DATASETS`) from local files; never downloads.

    ``split`` is ``train`` or ``test`` (STL-10 adds ``unlabeled`` and ``train+unlabeled``).
    ``options`` go to loaders that declare them (folder: ``size``, ``channels``). Returns
    uint8 images (N, C, H, W) and int64 labels (N,). A missing or malformed file raises
    :class:`nocollapse.errors.DataError` naming the path and how to obtain the data.
    """
    entry = DATASETS[check_choice("data set", name, tuple(DATASETS))]
    check_split(split, entry.splits)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise TypeError(f"load_dataset({name!r}) takes no option(s) {unknown}; "
                        f"valid: {', '.join(entry.options) or 'none'}")
    return entry.load(root, split, **options)
