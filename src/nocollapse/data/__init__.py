"""Data sets read from local files (never downloaded) and batched augmentations.

>>> from nocollapse.data import load_dataset, make_augment, augmentation_preset
>>> data = load_dataset("default")              # Fashion-MNIST, or digits if absent
>>> augment = make_augment(augmentation_preset(data.name))
>>> view = augment(data.images[:256], generator)  # float32 (256, 1, 28, 28)
"""

from nocollapse.data.augment import BatchAugment, sample_crop_boxes
from nocollapse.data.dataset import ImageDataset
from nocollapse.data.presets import (
    PRESETS,
    augmentation_preset,
    make_augment,
    normalize,
    preset_for_images,
)
from nocollapse.data.registry import DATASETS, DatasetEntry, load_dataset, register_dataset

__all__ = [
    "DATASETS",
    "PRESETS",
    "BatchAugment",
    "DatasetEntry",
    "ImageDataset",
    "augmentation_preset",
    "load_dataset",
    "make_augment",
    "normalize",
    "preset_for_images",
    "register_dataset",
    "sample_crop_boxes",
]
