"""Every bad input through the real CLI: exit 2, one clean message, nothing left behind.

Each case runs ``nocollapse ...`` in-process on tiny data and compares the whole
working folder before and after (see ``tests/_cli.py``).
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from _cli import TINY, assert_refused, copy_run, finished_run, overrides, run_cli
from nocollapse.train import checkpoint_path

BAD_TRAIN_OPTIONS = [
    (["data.augment.jitter_p=abc"], "data.augment"),
    (["data.augment.no_such_option=1"], "data.augment"),
    (["device.strategy=bogus"], "device.strategy=bogus"),
    (["device.accelerator=bogus"], "device.accelerator"),
    (["seed=123456789012345678901234567890"], "seed="),
    (["seed=-1"], "seed="),
    (["data.batch_size=1"], "data.batch_size=1"),
    (["learner.proj_dim=100000000000"], "learner"),
    (["learner.proj_dim=-3"], "proj_dim=-3"),
    (["learner.foo=1"], "'foo'"),
    (["--method", "byl"], "did you mean 'byol'"),
    (["--method", "simclr"], "simclr"),
    (["optim.lr=["], "optim.lr=["),
    (["optim.lr=abc"], "optim.lr"),
    (["optim.lr=1e400"], "optim.lr"),
    (["epochs=1e400"], "epochs"),
    (["optim..lr=1"], "not key=value"),
    (["optim.lr=1", "optim.lr.x=2"], "conflicts"),
    (["data.subset=0"], "data.subset"),
    (["monitor.patience=0"], "monitor.patience"),
    (["device.threads=0"], "1 <= device.threads"),
    (["device.threads=100000"], "1 <= device.threads"),
    # options of a predictor that takes none were ignored in silence
    (["learner.predictor_options.rho=2"], "'mlp' takes no options; got rho"),
    (["learner.predictor=linear", "learner.eps=0.1"],
     "unknown linear option 'predictor_options.eps' (valid: symmetrize)"),
    (["learner.predictor=linear", "learner.predictor_options.symmetrize=2"],
     "predictor_options.symmetrize=2 is not a valid bool"),
]


@pytest.mark.parametrize("extra,phrase", BAD_TRAIN_OPTIONS,
                         ids=[" ".join(e) for e, _ in BAD_TRAIN_OPTIONS])
def test_bad_train_option_is_refused_before_anything_is_written(
        extra: list[str], phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_refused(["train", *overrides(TINY, *extra), "--epochs", "1", "--out",
                    str(tmp_path / "run")],
                   capsys, tmp_path, phrase)


def test_out_that_is_a_file_or_under_a_file_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "run"):
        assert_refused(["train", *TINY, "--epochs", "1", "--out", str(out)], capsys, tmp_path,
                       str(blocker))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    assert_refused(["train", *TINY, "--epochs", "1", "--out", str(locked / "run")], capsys,
                   tmp_path, "cannot create")


def test_unwritable_out_is_refused_even_as_root(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if self.is_relative_to(tmp_path / "ro"):  # as a read-only file system would
            raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert_refused(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "ro" / "run")],
                   capsys, tmp_path, "cannot create the run directory", "Read-only")


def test_resume_of_a_file_a_missing_folder_or_an_empty_one_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    assert_refused(["train", "--resume", str(tmp_path / "file")], capsys, tmp_path, "is a file")
    assert_refused(["train", "--resume", str(tmp_path / "none")], capsys, tmp_path,
                   "does not exist")
    assert_refused(["train", "--resume", str(tmp_path / "empty")], capsys, tmp_path,
                   "no checkpoint")


def test_config_that_is_a_folder_or_not_yaml_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe: [")
    assert_refused(["train", "--config", str(tmp_path), "--out", str(tmp_path / "r")], capsys,
                   tmp_path, "is a directory")
    assert_refused(["train", "--config", str(tmp_path / "bad.yaml"), "--out",
                    str(tmp_path / "r")], capsys, tmp_path, "not valid YAML")


def test_diverging_run_without_a_checkpoint_does_not_claim_one(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code, err = run_cli(["train", *TINY, "--epochs", "1", "--out", str(out), "optim.lr=1e30"],
                        capsys)
    assert code == 2 and "Traceback" not in err
    assert "NaN or infinite" in err and "no checkpoint was written" in err
    assert not checkpoint_path(out).exists()


@pytest.mark.parametrize("method", ["simsiam", "directpred", "directcopy"])
def test_run_that_diverges_before_its_first_log_stops_cleanly_at_the_epoch_end(
        method: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # The epoch (4 steps) ends before the first log (step 100): the per-epoch spectra and
    # the predictor's eigendecomposition see a NaN F_hat before the loop's NaN check does.
    out = tmp_path / "run"
    code, err = run_cli(["train", *overrides(TINY, "log_every=100"), "--method", method,
                         "--epochs", "2", "--out", str(out), "optim.lr=1e30"], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "NaN or infinite" in err


def _write_idx(folder: Path, prefix: str, images: bytes, labels: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))


def test_idx_header_whose_dimensions_overflow_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    huge = (0x0803).to_bytes(4, "big") + (2**31 - 1).to_bytes(4, "big") * 3
    labels = (0x0801).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4)
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / "mnist", prefix, huge + bytes(16), labels)
    assert_refused(["train", "--quiet", "--data", "mnist", "--data-dir", str(tmp_path / "mnist"),
                    "--out", str(tmp_path / "run")], capsys, tmp_path, "header")


def _write_cifar(folder: Path, labels: object) -> None:
    folder.mkdir(parents=True)
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": labels}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))


def test_cifar_labels_that_are_not_ints_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_cifar(tmp_path / "data" / "cifar-10-batches-py", ["0", "1", "0", "1"])
    assert_refused(["train", "--quiet", "--data", "cifar10", "--data-dir", str(tmp_path / "data"),
                    "--out", str(tmp_path / "run")], capsys, tmp_path, "not a list of integers")


class _Marker:
    """Unpickling this runs ``Path(path).touch()``: what a planted file would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def test_malicious_cifar_batch_is_refused_and_runs_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "data" / "cifar-10-batches-py"
    _write_cifar(folder, [0, 1, 0, 1])
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 0, 1],
            b"x": _Marker(marker)}
    (folder / "data_batch_2").write_bytes(pickle.dumps(evil))
    assert_refused(["train", "--quiet", "--data", "cifar10", "--data-dir", str(tmp_path / "data"),
                    "--out", str(tmp_path / "run")], capsys, tmp_path, "data_batch_2", "refused")
    assert not marker.exists()


def test_report_refuses_an_out_that_is_a_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (tmp_path / "file").write_text("x")
    assert_refused(["report", str(run), "--out", str(tmp_path / "file")], capsys, tmp_path,
                   "is a file")


def test_report_reads_metrics_with_non_utf8_bytes(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": 0.5}\n\xff\xfe\x80 garbage\n'
                                        b'{"step": 2, "loss": 0.4}\n')
    code, err = run_cli(["report", str(run)], capsys)
    assert code == 0, err
    text = (run / "report" / "report.md").read_text()
    assert "1 unreadable line(s) skipped" in text


def test_report_passes_over_spectra_fields_of_the_wrong_shape(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n')
    s = [3.0, 2.0, 1.0, 0.5]
    good = {"epoch": 1, "F_eigenvalues": s, "Wp_in_F_basis": [v**0.5 for v in s],
            "alignment": [[1, 0], [0, 1]]}
    bad = {"epoch": 2, "F_eigenvalues": [1, "a"], "Wp_eigenvalues": [[1]], "Z_eigenvalues": {},
           "alignment": [[1, 2], [3]], "Wp_in_F_basis": 5}
    (run / "spectra.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    code, err = run_cli(["report", str(run), "--epochs", "1", "2"], capsys)
    assert code == 0, err
    text = (run / "report" / "report.md").read_text()
    assert "5 field(s) that are not lists of numbers skipped" in text
    assert "| 1 | 0.500 | 1.000 |" in text  # the good epoch still fitted: p = s^(1/2)


@pytest.mark.parametrize("args,phrase", [
    (["simulate", "--lr", "1e6"], "lower --lr"),
    (["simulate", "--n1", "100000", "--n2", "100000"], "GiB"),
    (["phase", "--x-range", "0", "inf", "--grid", "4"], "--x-range=inf"),
    (["phase", "--y-range", "nan", "1", "--grid", "4"], "--y-range=nan"),
    (["phase", "--grid", "100000000"], "GiB"),
    (["phase", "--model", "matrix", "--grid", "100000"], "GiB"),
    (["phase", "--t-end", "1e12", "--grid", "2"], "integration steps"),
])
def test_theory_commands_refuse_what_cannot_run(args: list[str], phrase: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    with np.errstate(all="ignore"):
        assert_refused([*args, "--out", str(tmp_path / "out")], capsys, tmp_path, phrase)


# -- commands on a trained run ------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 1-epoch run; tests copy it (``copy_run``) and never change this one."""
    return finished_run(tmp_path_factory, "trained")


def _resave(run: Path, change) -> None:
    path = checkpoint_path(run)
    state = torch.load(path, weights_only=True)
    change(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())


def test_malicious_checkpoint_is_refused_by_resume_and_evaluate(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    marker = tmp_path / "pwned"
    _resave(run, lambda state: state.update(extra=_Marker(marker)))
    assert_refused(["train", "--resume", str(run), "--epochs", "2"], capsys, tmp_path,
                   "refused", "nothing was run")
    assert_refused(["evaluate", str(run), "--knn"], capsys, tmp_path, "refused")
    # a raw (non-zip) pickle, as torch.load's legacy format would unpickle
    checkpoint_path(run).write_bytes(pickle.dumps({"model": _Marker(marker)}))
    assert_refused(["evaluate", str(run), "--knn"], capsys, tmp_path, "truncated or corrupt")
    assert not marker.exists()


def test_byte_flipped_in_a_tensor_is_refused(trained: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    path = checkpoint_path(run)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2  # the model's weights fill most of the archive
    data[middle] ^= 0x10
    path.write_bytes(bytes(data))
    assert_refused(["evaluate", str(run), "--knn"], capsys, tmp_path, "CRC")
    assert_refused(["train", "--resume", str(run), "--epochs", "2"], capsys, tmp_path, "CRC")


def test_checkpoint_with_missing_keys_is_refused(trained: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    _resave(run, lambda state: state.pop("optimizer"))
    assert_refused(["train", "--resume", str(run), "--epochs", "2"], capsys, tmp_path,
                   "missing ['optimizer']")


def test_checkpoint_that_does_not_fit_the_run_is_refused_and_the_lock_released(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    good = checkpoint_path(run).read_bytes()
    _resave(run, lambda state: state.update(rng={}))
    assert_refused(["train", "--resume", str(run), "--epochs", "2"], capsys, tmp_path,
                   "does not fit this run")
    checkpoint_path(run).write_bytes(good)  # the refused resume must not keep the lock
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "2", "--quiet"], capsys)
    assert code == 0, err


def test_evaluate_names_an_unusable_device_not_a_corrupt_checkpoint(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    for device in ("bogus", "cuda:99" if torch.cuda.is_available() else "cuda"):
        err = assert_refused(["evaluate", str(run), "--device", device], capsys, tmp_path,
                             f"--device {device!r}")
        assert "corrupt" not in err


def test_evaluate_data_dir_replaces_the_runs_data_folder(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    config = torch.load(checkpoint_path(run), weights_only=True)["config"]
    assert config["data"]["name"] == "digits"  # embedded: any folder works, none is needed
    code, err = run_cli(["evaluate", str(run), "--knn", "--data-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert 0 <= json.loads((run / "evaluation.json").read_text())["knn_accuracy"] <= 1


def test_evaluate_missing_data_folder_suggests_an_option_evaluate_has(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    _resave(run, lambda state: state["config"]["data"].update(name="mnist", data_dir="/none"))
    err = assert_refused(["evaluate", str(run), "--knn"], capsys, tmp_path, "--data-dir")
    from nocollapse.cli.main import build_parser

    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]  # type: ignore
    assert "--data-dir" in evaluate.format_help() and "/none" in err


def test_every_file_a_run_writes_has_one_mode(trained: Path) -> None:
    modes = {path.name: path.stat().st_mode & 0o777 for path in trained.rglob("*")
             if path.is_file()}
    assert {"config.yaml", "metrics.jsonl", "spectra.jsonl", "summary.json", "last.pt"} <= set(
        modes)
    assert len(set(modes.values())) == 1, modes
