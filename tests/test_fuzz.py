"""Property-based fuzzing of every reader of user files and of the override parser.

Any bytes (or text) give either a valid result or the project's named error
(``DataError``, ``ConfigError``, ``CheckpointError``); never another exception.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nocollapse.data.cifar import _read_batch
from nocollapse.data.folder import _read_image
from nocollapse.data.idx import read_idx
from nocollapse.errors import ConfigError, DataError
from nocollapse.report.runs import load_run
from nocollapse.runio import read_metrics
from nocollapse.train import CheckpointError, load_checkpoint
from nocollapse.train.config import TrainConfig, parse_overrides

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the whole module: each example overwrites its file there."""
    return tmp_path_factory.mktemp("fuzz")


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes overwritten, cut short, or garbage appended."""
    def mutate(edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
        data = bytearray(valid)
        for position, value in edits:
            data[position % len(data)] = value
        return bytes(data[:cut] if cut is not None else data) + tail
    return st.builds(mutate, st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)),
                                      max_size=6),
                     st.none() | st.integers(0, len(valid)), st.binary(max_size=8))


def _idx(dims: tuple[int, ...]) -> bytes:
    header = (0x0800 + len(dims)).to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(int(np.prod(dims)))


@FUZZ
@given(st.binary(max_size=64) | _mutated(_idx((2, 3, 3))), st.booleans())
def test_idx_reader_gives_an_array_or_a_data_error(scratch: Path, data: bytes, gz: bool) -> None:
    path = _file(scratch, "images-idx3-ubyte.gz" if gz else "images-idx3-ubyte",
                 gzip.compress(data) if gz else data)
    try:
        array = read_idx(path, 3)
    except DataError:
        return
    assert array.ndim == 3 and array.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=40))
def test_idx_reader_survives_damaged_gzip(scratch: Path, data: bytes) -> None:
    valid = gzip.compress(_idx((1, 2, 2)))
    path = _file(scratch, "damaged-idx3-ubyte.gz", valid[:10] + data)
    try:
        array = read_idx(path, 3)
    except DataError:
        return
    assert array.ndim == 3


CIFAR_BATCH = pickle.dumps({b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072),
                            b"labels": [3, 7], b"filenames": [b"a.png", b"b.png"]}, protocol=2)


@FUZZ
@given(st.binary(max_size=200) | _mutated(CIFAR_BATCH))
def test_cifar_reader_gives_a_batch_or_a_data_error(scratch: Path, data: bytes) -> None:
    try:
        images, labels = _read_batch(_file(scratch, "data_batch_1", data), b"labels")
    except DataError:
        return
    assert images.shape[1:] == (3, 32, 32) and len(images) == len(labels)
    assert labels.dtype == np.int64


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


@FUZZ
@given(st.binary(max_size=100) | _mutated(_png()), st.sampled_from(["RGB", "L"]))
def test_image_reader_gives_an_image_or_a_data_error(scratch: Path, data: bytes, mode: str) -> None:
    try:
        array = _read_image(_file(scratch, "image.png", data), 8, mode)
    except DataError:
        return
    assert array.shape == ((3 if mode == "RGB" else 1), 8, 8)


KEYS = st.sampled_from(["optim.lr", "seed", "data.batch_size", "epochs", "learner.proj_dim",
                        "data.augment.jitter_p", "device.devices", "max_steps", "a..b",
                        "optim", "", "monitor.every", "eval.knn_t"])


@FUZZ
@given(st.lists(st.tuples(KEYS | st.text(max_size=12), st.sampled_from(["=", "", "=="]),
                          st.text(max_size=12) | st.sampled_from(
                              ["1e400", "[", "{a: 1}", "-3", "nan", "null", "'x'", "!!python"])),
                max_size=4))
def test_override_parser_gives_a_config_or_a_config_error(
        items: list[tuple[str, str, str]]) -> None:
    try:
        config = TrainConfig.from_dict(parse_overrides([k + sep + v for k, sep, v in items]))
    except ConfigError:
        return
    assert isinstance(config, TrainConfig)


LINES = st.lists(st.binary(max_size=30) | st.sampled_from(
    [b'{"step": 1, "loss": 0.5}', b'{"step": 2', b"[1, 2]", b"NaN", b"\xff\xfe", b"1" * 5000,
     b'{"epoch": 1, "F_eigenvalues": [1.0, 0.5]}', b"[" * 2000]), max_size=6)


@FUZZ
@given(LINES)
def test_jsonl_readers_give_records_or_skip_lines(scratch: Path, lines: list[bytes]) -> None:
    run = scratch / "run"
    run.mkdir(exist_ok=True)
    for name in ("metrics.jsonl", "spectra.jsonl", "warnings.jsonl"):
        (run / name).write_bytes(b"\n".join(lines))
    assert all(isinstance(r, dict) for r in read_metrics(run))
    loaded = load_run(run)
    assert all(isinstance(r, dict) for r in loaded.metrics + loaded.spectra + loaded.warnings)


def _checkpoint() -> bytes:
    state = {"model": {"w": torch.arange(64.0)}, "optimizer": {}, "scheduler": {"step": 1},
             "rng": {}, "step": 1, "epoch": 1, "batch": 0, "loss_sum": torch.zeros(()),
             "window_steps": 0, "knn_history": [], "random_knn": None, "seconds": 0.0,
             "config": {"method": "simsiam"}}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(st.binary(max_size=100) | _mutated(_checkpoint()))
def test_checkpoint_loader_gives_a_checkpoint_or_a_checkpoint_error(scratch: Path,
                                                                   data: bytes) -> None:
    try:
        state = load_checkpoint(_file(scratch, "last.pt", data))
    except CheckpointError:
        return
    assert isinstance(state["config"], dict) and isinstance(state["step"], int)
