"""Hostile inputs refused before anything is allocated or written, and inputs that gave
silently wrong results (issue 18, sections 3 and 4).

Through the real CLI (in-process): exit 2, one line naming the problem, the folder
unchanged (``assert_refused``). The files are tiny; their headers claim the sizes.
"""

from __future__ import annotations

import gzip
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _cli import TINY, assert_refused, copy_run, finished_run
from nocollapse.evaluate import knn_predict
from nocollapse.rundir.checkpoint import save_checkpoint
from nocollapse.train import checkpoint_path, load_checkpoint

RNG = np.random.default_rng(0)


def _train(data: str, root: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "--data", data, "--data-dir", str(root), "--epochs", "1",
            "--out", str(root.parent / "out"), *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finished_run(tmp_path_factory, "finished")


# -- section 3: sizes checked before loading ------------------------------------------------

def _image_folder(root: Path, splits: dict[str, list[str]] | None = None,
                  count: int = 3) -> Path:
    layout = splits or {"": ["a", "b", "c"]}
    for split, classes in layout.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png")
    return root


def test_folder_image_size_is_checked_against_memory_before_any_image_is_resized(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _image_folder(tmp_path / "images")
    start = time.perf_counter()
    assert_refused(_train("folder", root, "data.image_size=100000"), capsys, tmp_path,
                   "GiB of memory", "data.image_size")
    assert time.perf_counter() - start < 30  # refused before resizing (that took 23.9 GB)


def test_idx_header_is_checked_against_memory_and_a_gzip_is_never_inflated_past_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "mnist"
    root.mkdir()
    huge = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2**31 - 1, 28, 28))
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(huge))
    labels = bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes(4)
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    assert_refused(_train("mnist", root), capsys, tmp_path, "GiB of memory")
    # a stream longer than its header says: read up to the header's size and one byte more
    body = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (4, 28, 28))
    bomb = gzip.compress(body + bytes(4 * 784) + bytes(50_000_000), compresslevel=9)
    (root / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    assert_refused(_train("mnist", root), capsys, tmp_path, "holds more than 3136 data bytes")


def test_a_sparse_huge_stl10_file_is_refused_before_allocating(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "stl10_binary"
    root.mkdir()
    with open(root / "train_X.bin", "wb") as f:
        f.truncate(3 * 96 * 96 * 20_000_000)  # 515 GiB, sparse: no disk used
    (root / "train_y.bin").write_bytes(bytes(1))
    # (only the output folder is compared: reading the sparse file back would not fit)
    assert_refused(_train("stl10", root), capsys, tmp_path / "out", "GiB of memory")


def test_simulate_steps_and_landscape_spectrum_are_bounded(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_refused(["simulate", "--steps", str(10**12), "--out", str(tmp_path / "s")], capsys,
                   tmp_path, "--steps")
    many = ",".join(["1"] * 20_000)
    err = assert_refused(["landscape", "--spectrum", many, "--out", str(tmp_path / "l")],
                         capsys, tmp_path, "20000 values", "at most 10000")
    assert len(err) < 300


def test_a_checkpoint_with_a_compressed_member_is_refused_before_inflating(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    path = checkpoint_path(run)
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as bomb:
        for info, data in members:
            bomb.writestr(info.filename, data, compress_type=zipfile.ZIP_STORED)
        bomb.writestr("archive/data/bomb", bytes(50_000_000), compress_type=zipfile.ZIP_DEFLATED)
    for command in (["evaluate", str(run), "--knn"], ["train", "--resume", str(run)]):
        assert_refused(command, capsys, tmp_path, "is compressed", "nothing was inflated")


def test_yaml_alias_bomb_and_deep_nesting_are_refused_quickly_with_a_short_message(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join([*lines, "optim:", "  lr: *a11"]) + "\n")
    start = time.perf_counter()
    err = assert_refused(["train", "--config", str(bomb), "--out", str(tmp_path / "o")], capsys,
                         tmp_path, "alias", "not allowed")
    assert time.perf_counter() - start < 10 and len(err) < 600
    deep = tmp_path / "deep.yaml"
    deep.write_text("optim: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert_refused(["train", "--config", str(deep), "--out", str(tmp_path / "o")], capsys,
                   tmp_path, "nested deeper than 64")
    err = assert_refused(["train", "--out", str(tmp_path / "o"), "optim.lr=[&a [1], *a]"],
                         capsys, tmp_path, "alias")
    long = "x" * 100_000
    err = assert_refused(["train", "--out", str(tmp_path / "o"), f"method={long}"], capsys,
                         tmp_path, "unknown method")
    assert len(err) < 600


class _Forged:
    """Pickles as numpy's array reconstructor asked for a (2e6, 3072) array."""

    def __reduce__(self) -> tuple:
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (2_000_000, 3072), b"B")


def _cifar10(root: Path, batch: dict | None = None, names: int = 10) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    good = {b"data": RNG.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch or good))
    meta = {b"label_names": [f"c{k}".encode() for k in range(names)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def test_cifar_pickle_asking_for_a_huge_array_is_refused_by_the_file_length(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _cifar10(tmp_path / "cifar", {b"data": _Forged(), b"labels": [0]})
    assert_refused(_train("cifar10", root), capsys, tmp_path, "larger than the file")


class _WideItems:
    """Pickles as a reconstructor asked for 100 items of 10^8 bytes each (10 GB)."""

    def __reduce__(self) -> tuple:
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (100,), np.dtype("V100000000"))


def test_a_cifar_array_of_huge_items_is_refused_by_its_bytes(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _cifar10(tmp_path / "cifar", {b"data": _WideItems(), b"labels": [0]})
    assert_refused(_train("cifar10", root), capsys, tmp_path, "100000000-byte items",
                   "larger than the file")


def test_several_nodes_on_one_machine_are_refused_instead_of_hanging(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocollapse.train.setup import CLUSTER_VARIABLES

    for name in CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert_refused(["train", *TINY, "--out", str(tmp_path / "o"), "device.num_nodes=2"],
                   capsys, tmp_path, "device.num_nodes=2", "multi-node launcher")


# -- section 4: silent wrong results ---------------------------------------------------------

def _idx(root: Path, labels: np.ndarray) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    for prefix in ("train", "t10k"):
        images = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(images + bytes(n * 784))
        head = bytes([0, 0, 8, 1]) + n.to_bytes(4, "big")
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(head + labels.astype(np.uint8).tobytes())
    return root


@pytest.mark.parametrize("labels", [np.arange(250) % 250, np.full(64, 255)])
def test_idx_labels_outside_the_classes_are_refused(
        labels: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _idx(tmp_path / "mnist", labels)
    assert_refused(_train("mnist", root), capsys, tmp_path, "10 classes", "labels in")


def test_cifar_labels_and_class_names_outside_the_data_set_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = RNG.integers(0, 256, (2, 3072), dtype=np.uint8)
    root = _cifar10(tmp_path / "a", {b"data": data, b"labels": [255, 255]}, names=256)
    assert_refused(_train("cifar10", root), capsys, tmp_path, "256 class names")
    root = _cifar10(tmp_path / "b", {b"data": data, b"labels": [0, 10]})
    assert_refused(_train("cifar10", root), capsys, tmp_path, "outside 0..9")


def test_stl10_labels_outside_1_to_10_and_undecodable_class_names(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nocollapse.data import load_dataset

    root = tmp_path / "stl10_binary"
    root.mkdir()
    (root / "train_X.bin").write_bytes(bytes(3 * 96 * 96 * 2))
    (root / "train_y.bin").write_bytes(bytes([1, 11]))
    assert_refused(_train("stl10", root), capsys, tmp_path, "outside 1..10")
    (root / "train_y.bin").write_bytes(bytes([1, 10]))
    (root / "class_names.txt").write_bytes(b"\xff\xfe" + b"\n".join(b"c%d" % k for k in range(10)))
    assert len(load_dataset("stl10", root, "train").classes) == 10  # no UnicodeDecodeError


def test_image_folder_splits_are_matched_by_class_name(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from nocollapse.data.folder import load_folder

    root = _image_folder(tmp_path / "images", {"train": ["a", "b", "c"], "test": ["b", "c"]})
    test = load_folder(root, "test", size=8)
    assert test.classes == ["a", "b", "c"]  # the training split's classes, by name
    assert sorted(set(test.labels.tolist())) == [1, 2]  # b and c, not 0 and 1
    other = _image_folder(tmp_path / "other", {"train": ["a", "b"], "test": ["b", "z"]}, 33)
    assert_refused(_train("folder", other), capsys, tmp_path, "the training split", "lacks: z")


def test_knn_with_a_small_temperature_votes_for_the_nearest_class() -> None:
    # exp(s / 0.01) overflows float32 once s > 0.89: ten class-1 neighbours at 0.01 rad
    # (s = 0.99995) and ten class-0 ones at 0.3 rad (s = 0.955) were all inf, and the
    # tie went to class 0. In float64, class 1 outweighs class 0 by exp(4.5) a neighbour.
    angles = torch.cat([torch.linspace(-0.01, 0.01, 10), torch.full((10,), 0.3)]).double()
    train = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([1] * 10 + [0] * 10)
    query = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    similarity = (query @ train.T)[0]
    weights = (similarity / 0.01).exp()  # float64: finite (exp(100))
    assert float(weights[labels == 1].sum()) > float(weights[labels == 0].sum())
    predicted = knn_predict(train.float(), labels, query.float(), k=20, t=0.01, num_classes=2)
    assert predicted.tolist() == [1]


def test_evaluate_refuses_non_finite_weights_and_weights_of_another_shape(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(finished, tmp_path)
    saved = load_checkpoint(run)
    model = dict(saved["model"])
    name = next(key for key, value in model.items() if value.is_floating_point())
    model[name] = torch.full_like(model[name], float("nan"))
    save_checkpoint(checkpoint_path(run), {**saved, "model": model})
    assert_refused(["evaluate", str(run), "--knn"], capsys, tmp_path, "non-finite weights")
    config = {**saved["config"], "learner": {**saved["config"]["learner"],
                                             "proj_hidden_dim": 1_000_000_000}}
    save_checkpoint(checkpoint_path(run), {**saved, "config": config})
    start = time.perf_counter()
    assert_refused(["evaluate", str(run), "--knn"], capsys, tmp_path, "does not fit the learner")
    assert time.perf_counter() - start < 30  # never built the 10^9-wide projector


def test_duplicate_keys_are_refused_naming_the_key(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("optim:\n  lr: 0.1\nepochs: 1\noptim:\n  weight_decay: 0.0\n")
    assert_refused(["train", "--config", str(config), "--out", str(tmp_path / "o")], capsys,
                   tmp_path, "the key 'optim' is given twice")
    assert_refused(["train", "--out", str(tmp_path / "o"), "optim.lr=0.1", "optim.lr=0.2"],
                   capsys, tmp_path, "'optim.lr' is given twice")


@pytest.mark.parametrize("out", ["", "runs/a\0b", "  "])
def test_an_empty_or_nul_out_is_refused(out: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(["train", *TINY, "--out", out], capsys, tmp_path, "is not a usable path")
