"""Shared test helper: run the real CLI in-process on tiny data and see what it left behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nocollapse.cli.main import main

# digits (embedded, 8x8), 4 steps an epoch, small heads: one epoch takes about a second.
TINY = ["--data", "digits", "--quiet", "data.batch_size=64", "data.subset=256",
        "data.test_subset=128", "eval.knn_k=10", "log_every=2", "time_budget_s=null",
        "learner.proj_hidden_dim=32", "learner.proj_dim=16", "learner.pred_hidden_dim=16",
        "monitor.every=2", "device.threads=1"]


def overrides(base: list[str], *extra: str) -> list[str]:
    """``base`` with the ``key=value`` items of ``extra`` replacing those of the same key
    (the CLI refuses a key given twice)."""
    keys = {item.partition("=")[0] for item in extra if "=" in item and not item.startswith("-")}
    return [item for item in base if item.partition("=")[0] not in keys] + list(extra)


def tree(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under ``root``: relative path -> (mode, file bytes or link target)."""
    found: dict[str, tuple[int, bytes | str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = (0, os.readlink(path))
            elif path.is_file():
                found[rel] = (path.stat().st_mode, path.read_bytes())
            else:
                found[rel] = (path.stat().st_mode, "dir")
    return found


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``nocollapse ARGS`` in this process: (exit code, stderr)."""
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def assert_refused(args: list[str], capsys: pytest.CaptureFixture, root: Path,
                   *phrases: str) -> str:
    """Exit code 2, a one-paragraph message naming ``phrases``, and ``root`` unchanged."""
    before = tree(root)
    code, err = run_cli(args, capsys)
    assert code == 2, err
    assert "Traceback" not in err and "error:" in err
    assert len(err.strip().splitlines()) == 1, err
    for phrase in phrases:
        assert phrase in err, err
    assert tree(root) == before, "the refused command left files behind or changed some"
    return err


def finished_run(factory: pytest.TempPathFactory, name: str, *extra: str) -> Path:
    """A finished TINY run (``--epochs 1`` unless ``extra`` plans it otherwise); tests copy it."""
    out = factory.mktemp(name) / "run"
    assert main(["train", *TINY, *(extra or ("--epochs", "1")), "--out", str(out)]) == 0
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of ``run`` at ``tmp_path/run`` (links copied as links), for a test to change."""
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True))
