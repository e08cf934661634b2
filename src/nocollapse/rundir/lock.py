"""One run per directory: the run lock, stale temporaries, symlinks, files cut back on resume.

A training run holds the run lock (:class:`~nocollapse.runio.lock.RunLock`, re-exported
here) from before its first write until the process ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from nocollapse.errors import ConfigError
from nocollapse.runio import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LOCK_FILE,
    METRICS_FILE,
    SPECTRA_FILE,
    SUMMARY_FILE,
    WARNINGS_FILE,
    read_config,
    truncate_jsonl,
)
from nocollapse.runio.lock import RunLock as RunLock
from nocollapse.runio.lock import is_locked as is_locked
from nocollapse.runio.records import ConfigDict

# Files the loop appends to or ends with; a fresh run starts without them.
RUN_OUTPUTS = (METRICS_FILE, SPECTRA_FILE, WARNINGS_FILE, SUMMARY_FILE)


def open_run(run_dir: Path, fresh: bool) -> RunLock:
    """Check and lock ``run_dir`` for a run, clearing what a killed run left behind.

    Refuses escaping symlinks, takes the lock, removes stale temporaries and, for a
    fresh run, the outputs of a run killed before its first checkpoint.
    """
    refuse_escaping_symlinks(run_dir)
    lock = RunLock(run_dir)
    remove_stale_temporaries(run_dir)
    if fresh:
        for name in RUN_OUTPUTS:
            (run_dir / name).unlink(missing_ok=True)
    return lock


def foreign_entries(run_dir: Path, config: ConfigDict) -> list[str]:
    """What in ``run_dir`` a fresh run of ``config`` would overwrite that is not its own.

    Its own: the lock, a killed write's temporaries, an empty ``checkpoints/``, and, when
    ``config.yaml`` is this very configuration and there is no ``summary.json`` (the same
    command killed before its first checkpoint), the files that run had started.
    """
    if not run_dir.is_dir():
        return []
    restart = _killed_before_first_checkpoint(run_dir, config)
    foreign = []
    for path in sorted(run_dir.iterdir()):
        name = path.name
        if name == LOCK_FILE or _is_temporary(name):
            continue
        if name == CHECKPOINT_DIR and path.is_dir() and not path.is_symlink() and all(
                _is_temporary(inner.name) for inner in path.iterdir()):
            continue
        if restart and name in (CONFIG_FILE, METRICS_FILE, SPECTRA_FILE, WARNINGS_FILE):
            continue
        foreign.append(name + ("/" if path.is_dir() and not path.is_symlink() else ""))
    return foreign


def refuse_foreign_entries(run_dir: Path, config: ConfigDict) -> None:
    """Refuse a fresh run into a directory holding results that are not its own, naming them
    (a finished run whose checkpoint was removed, a ``simulate`` output, anything else)."""
    if run_dir.is_dir():
        refuse_escaping_symlinks(run_dir)  # the sharper message first
    found = foreign_entries(run_dir, config)
    if found:
        shown = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        raise ConfigError(
            f"--out {run_dir} is not empty and holds no run of this configuration ({shown}); "
            "a fresh run would replace those files. Choose a new or empty directory with "
            "--out, or continue a run with --resume")


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _killed_before_first_checkpoint(run_dir: Path, config: ConfigDict) -> bool:
    if (run_dir / SUMMARY_FILE).exists() or (run_dir / CONFIG_FILE).is_symlink():
        return False
    try:
        return bool(_plain(read_config(run_dir)) == _plain(config))
    except ConfigError:
        return False


def _plain(value: object) -> object:
    """Tuples as lists, as ``config.yaml`` reads them back."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def remove_stale_temporaries(run_dir: Path,
                             folders: Iterable[str] = ("", CHECKPOINT_DIR)) -> None:
    """Delete ``.NAME.*.tmp`` left by a write that was killed (``runio.atomic_write_bytes``).

    Called under the run lock, so no live writer owns them.
    """
    for folder in folders:
        place = run_dir / folder
        if not place.is_dir() or place.is_symlink():
            continue
        for path in place.glob(".*.tmp"):
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)


def refuse_escaping_symlinks(run_dir: Path) -> None:
    """Refuse a run directory holding a symlink that points outside it, or one in the place
    of a file the run appends to (``O_NOFOLLOW`` would refuse it only mid-run)."""
    for name in (*RUN_OUTPUTS, CHECKPOINT_DIR):
        if (run_dir / name).is_symlink():
            raise ConfigError(f"{run_dir / name} is a symlink; nocollapse writes nothing "
                              "through links. Remove the link, or choose another directory")
    root = run_dir.resolve()
    for folder, dirs, files in os.walk(run_dir):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise ConfigError(
                    f"{path} is a symlink to {os.readlink(path)}, outside the run directory "
                    f"{run_dir}; nocollapse writes nothing through links. Remove the link, or "
                    "choose another directory")


def cut_outputs_to_checkpoint(run_dir: Path, step: int, epoch: int,
                              final_too: bool = False) -> None:
    """Forget what was logged after the checkpoint: the resumed run logs it again.

    Afterwards ``metrics.jsonl``, ``spectra.jsonl`` and ``warnings.jsonl`` hold what
    an uninterrupted run had written when it saved that checkpoint, byte for byte
    (a final k-NN line before the checkpoint's step goes too: the run was trained
    longer after it; ``final_too``: the one at its step as well, for the checkpoint
    written before the final evaluation). ``summary.json`` goes: the run is running again.
    """
    (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    truncate_jsonl(run_dir / METRICS_FILE, "step", step,
                   drop_final_before=step + 1 if final_too else step)
    truncate_jsonl(run_dir / SPECTRA_FILE, "epoch", epoch)
    truncate_jsonl(run_dir / WARNINGS_FILE, "step", step)


def retire_finished_outputs(run_dir: Path, step: int) -> None:
    """A finished run trained longer has saved its first new checkpoint (past ``step``, the
    old end): its final k-NN line and ``summary.json`` now describe a superseded end.

    Done only then, so that an interrupted extension loses nothing of the finished run.
    """
    (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    truncate_jsonl(run_dir / METRICS_FILE, "step", 2**62, drop_final_before=step + 1)


def cut_extension_back(run_dir: Path, step: int, epoch: int) -> None:
    """A finished run (checkpoint at ``step``, ``epoch``) trained longer, stopped or failed
    before the extension's first checkpoint: what the extension logged goes, the finished
    run's end (its final k-NN line at ``step``, ``summary.json``) stays."""
    truncate_jsonl(run_dir / METRICS_FILE, "step", step)
    truncate_jsonl(run_dir / SPECTRA_FILE, "epoch", epoch)
    truncate_jsonl(run_dir / WARNINGS_FILE, "step", step)
