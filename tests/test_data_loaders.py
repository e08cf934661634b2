"""Every loader reads small files written here in the published format; bad files say so."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nocollapse.data import DATASETS, ImageDataset, load_dataset
from nocollapse.data import idx as idx_module
from nocollapse.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
               compress: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images),
                        (f"{prefix}-labels-idx1-ubyte", labels)):
        data = _idx_bytes(array)
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_round_trips_pixels_and_labels(tmp_path: Path, name: str, compress: bool) -> None:
    images = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(tmp_path, "t10k", images, labels, compress)
    data = load_dataset(name, tmp_path, split="test")
    assert data.images.shape == (5, 1, 28, 28) and data.images.dtype == torch.uint8
    assert np.array_equal(data.images[:, 0].numpy(), images)
    assert data.labels.tolist() == labels.tolist() and data.labels.dtype == torch.int64
    assert len(data) == 5 and len(data.classes) == 10


def test_idx_finds_torchvision_raw_subfolder(tmp_path: Path) -> None:
    images = RNG.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "MNIST" / "raw", "train", images, np.array([0, 9]), compress=False)
    data = load_dataset("mnist", tmp_path)
    assert np.array_equal(data.images[:, 0].numpy(), images)


def test_idx_wrong_magic_names_the_file(tmp_path: Path) -> None:
    _write_idx(tmp_path, "train", np.zeros((2, 28, 28)), np.zeros(2), compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 1  # claims one dimension
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="magic") as err:
        load_dataset("mnist", tmp_path)
    assert str(path) in str(err.value)


def test_idx_truncated_file_names_the_file(tmp_path: Path) -> None:
    _write_idx(tmp_path, "train", np.zeros((2, 28, 28)), np.zeros(2), compress=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(DataError, match="truncated") as err:
        load_dataset("fashion-mnist", tmp_path)
    assert str(path) in str(err.value)


def test_idx_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as err:
        load_dataset("fashion-mnist", tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")


def _write_cifar(folder: Path, name: str, n: int = 3) -> dict[str, tuple[np.ndarray, list]]:
    folder.mkdir(parents=True)
    if name == "cifar10":
        files = {f"data_batch_{i}": b"labels" for i in range(1, 6)} | {"test_batch": b"labels"}
        meta = ("batches.meta", {b"label_names": [f"c{k}".encode() for k in range(10)]})
    else:
        files = {"train": b"fine_labels", "test": b"fine_labels"}
        meta = ("meta", {b"fine_label_names": [f"f{k}".encode() for k in range(100)]})
    written = {}
    for fname, key in files.items():
        data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = RNG.integers(0, 10, n).tolist()
        (folder / fname).write_bytes(pickle.dumps({b"data": data, key: labels}))
        written[fname] = (data, labels)
    (folder / meta[0]).write_bytes(pickle.dumps(meta[1]))
    return written


@pytest.mark.parametrize("name,sub", [("cifar10", "cifar-10-batches-py"),
                                      ("cifar100", "cifar-100-python")])
def test_cifar_round_trips_rgb_planes(tmp_path: Path, name: str, sub: str) -> None:
    written = _write_cifar(tmp_path / sub, name)
    train = load_dataset(name, tmp_path)
    parts = [v for k, v in written.items() if k not in ("test_batch", "test")]
    expected = np.concatenate([d for d, _ in parts])
    assert train.images.shape == (len(expected), 3, 32, 32)
    # Row layout: 1024 red values, then green, then blue, each row-major 32x32.
    assert train.images[0, 1, 2, 5].item() == expected[0, 1024 + 2 * 32 + 5]
    assert np.array_equal(train.images.reshape(len(expected), -1).numpy(), expected)
    assert train.labels.tolist() == [lab for _, labels in parts for lab in labels]
    test = load_dataset(name, tmp_path / sub, split="test")  # the unpacked folder itself
    assert len(test) == 3 and len(test.classes) == (10 if name == "cifar10" else 100)


def test_cifar_bad_pickle_and_missing_batch(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py", "cifar10")
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(bad) in str(err.value)
    bad.unlink()
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz") as err:
        load_dataset("cifar10", tmp_path)
    assert str(bad) in str(err.value)


def _stl_bytes(images: np.ndarray) -> bytes:
    # Published layout: per image, per channel, column-major (x outer, y inner).
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


def test_stl10_maps_column_major_layout(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    train = RNG.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8)
    unlabeled = RNG.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)
    (folder / "train_X.bin").write_bytes(_stl_bytes(train))
    (folder / "train_y.bin").write_bytes(bytes([1, 10]))
    (folder / "unlabeled_X.bin").write_bytes(_stl_bytes(unlabeled))
    (folder / "class_names.txt").write_text("\n".join(f"n{k}" for k in range(10)) + "\n")
    data = load_dataset("stl10", tmp_path)
    assert np.array_equal(data.images.numpy(), train)
    raw = (folder / "train_X.bin").read_bytes()
    # Byte c*9216 + x*96 + y of the first image is pixel (row y, column x).
    assert data.images[0, 2, 7, 40].item() == raw[2 * 9216 + 40 * 96 + 7]
    assert data.labels.tolist() == [0, 9] and data.classes[9] == "n9"
    both = load_dataset("stl10", folder, split="train+unlabeled")
    assert np.array_equal(both.images[2:].numpy(), unlabeled)
    assert both.labels.tolist() == [0, 9, -1, -1, -1] and both.images.is_contiguous()


def test_stl10_truncated_and_missing(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (folder / "test_X.bin").write_bytes(b"\0" * (3 * 96 * 96 + 5))
    with pytest.raises(DataError, match="truncated") as err:
        load_dataset("stl10", tmp_path, split="test")
    assert "test_X.bin" in str(err.value)
    with pytest.raises(DataError, match=r"stl10_binary\.tar\.gz") as err:
        load_dataset("stl10", tmp_path, split="unlabeled")
    assert str(folder / "unlabeled_X.bin") in str(err.value)


def test_folder_reads_classes_and_holds_out_a_stratified_split(tmp_path: Path) -> None:
    from PIL import Image

    colours = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for name, colour in colours.items():
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.new("RGB", (20, 12), colour).save(tmp_path / name / f"{i:02d}.png")
    train = load_dataset("folder", tmp_path, size=16)
    test = load_dataset("folder", tmp_path, split="test", size=16)
    assert train.classes == ["cat", "dog"] and train.images.shape == (18, 3, 16, 16)
    assert test.labels.tolist() == [0, 1]
    assert test.images[0, :, 5, 5].tolist() == [255, 0, 0]
    assert test.images[1, :, 5, 5].tolist() == [0, 0, 255]
    gray = load_dataset("folder", tmp_path, size=8, channels=1)
    assert gray.images.shape == (18, 1, 8, 8)


def test_folder_unreadable_image_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    bad = tmp_path / "a" / "x.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError) as err:
        load_dataset("folder", tmp_path, split="test")  # 1 image: the test split is empty
    with pytest.raises(DataError) as err:
        load_dataset("folder", tmp_path)
    assert str(bad) in str(err.value)
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset("folder", tmp_path / "a")


def test_digits_split_is_stratified_disjoint_and_scaled() -> None:
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert len(train) + len(test) == len(load_digits().target)
    assert train.images.shape[1:] == (1, 8, 8) and int(train.images.max()) == 255
    counts = torch.bincount(test.labels, minlength=10).float()
    shares = counts / torch.bincount(torch.cat([train.labels, test.labels]), minlength=10)
    assert torch.allclose(shares, torch.full((10,), 0.2), atol=0.01)
    assert torch.equal(train.images, load_dataset("digits").images)  # deterministic


def test_default_falls_back_to_digits_when_fashion_mnist_is_absent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(idx_module, "FASHION_MNIST_DIR", tmp_path / "absent")
    data = load_dataset("default")
    assert data.name == "digits" and data.images.shape[1:] == (1, 8, 8)
    # Logged when logging is configured (as under pytest), else printed to stderr.
    said = capsys.readouterr().err + caplog.text
    assert "digits" in said and str(tmp_path / "absent") in said


def test_default_reads_fashion_mnist_from_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = RNG.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path, "train", images, np.array([7, 8]), compress=True)
    monkeypatch.setattr(idx_module, "FASHION_MNIST_DIR", tmp_path)
    data = load_dataset("default")
    assert data.name == "fashion-mnist" and np.array_equal(data.images[:, 0].numpy(), images)


def test_unknown_names_and_splits_are_refused() -> None:
    assert "default" in DATASETS
    with pytest.raises(ConfigError, match="cifar10"):
        load_dataset("cifar-10")
    with pytest.raises(ConfigError, match="train"):
        load_dataset("digits", split="unlabeled")


def test_image_dataset_rejects_wrong_dtypes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("x", torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), [])
