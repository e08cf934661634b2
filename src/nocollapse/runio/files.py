"""Files written safely: one mode for every file, whole files by create-temp-then-rename
(a symlink in the way is replaced, never followed), appended lines through ``O_NOFOLLOW``;
a write that fails raises :class:`~nocollapse.errors.OutputError` naming the path and
leaves the previous file in place. :mod:`nocollapse.runio` re-exports each of them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TextIO

from nocollapse.errors import OutputError


def file_mode() -> int:
    """The mode of every file the project writes: ``0o666`` less the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def ensure_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents); :class:`OutputError` when it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the {what} {path}: {error.strerror or error}; "
                          "choose a path you can write to") from error
    return path


def check_writable_file(path: str | Path, what: str) -> Path:
    """Refuse, before any work, a file path that cannot be written: a folder, a NUL byte,
    a parent that is a file or (the nearest existing one) not writable."""
    text = str(path)
    if not text.strip() or "\0" in text:
        raise OutputError(f"{what} {text!r:.60} is not a usable file name")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name, e.g. {path / 'x.md'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        problem = "is a file" if parent.exists() and not parent.is_dir() else "is not writable"
        raise OutputError(f"{what} {path} cannot be written: {parent} {problem}; choose "
                          "another path")
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A reader (or a crash) never sees a half-written file, and a symlink at ``path``
    is replaced, not followed. Raises :class:`OutputError` when the folder cannot be
    created or the file cannot be written; ``path`` is then left as it was.
    """
    path = Path(path)
    ensure_dir(path.parent)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise OutputError(f"cannot write {path}: {error.strerror or error}; "
                          f"{path} was left as it was") from error
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_files(files: list[tuple[Path, bytes]]) -> None:
    """Write several files that belong together: all of them, or none.

    Each is written to a temporary file beside it first; then every file already at a
    target is hard-linked to a backup (a file that cannot be linked, an immutable one,
    cannot be replaced either: nothing is renamed), the temporaries are renamed over the
    targets and the backups removed. A rename that fails puts back every target already
    renamed. Raises :class:`OutputError`; the files are then left as they were.
    """
    temps: list[str] = []
    backups: dict[Path, str] = {}
    done: list[Path] = []
    try:
        try:
            for path, data in files:
                ensure_dir(path.parent)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                           suffix=".tmp")
                temps.append(tmp)
                os.fchmod(fd, file_mode())
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            for path, _ in files:
                if os.path.lexists(path):
                    backup = f"{path.parent}/.{path.name}.{os.getpid()}.bak"
                    Path(backup).unlink(missing_ok=True)
                    os.link(path, backup, follow_symlinks=False)
                    backups[path] = backup
            for (path, _), tmp in zip(files, temps, strict=True):
                os.replace(tmp, path)
                done.append(path)
        except OSError as error:
            for path in reversed(done):
                with contextlib.suppress(OSError):
                    if path in backups:
                        os.replace(backups.pop(path), path)
                    else:
                        path.unlink()
            names = " and ".join(str(path) for path, _ in files)
            raise OutputError(f"cannot write {error.filename or names}: "
                              f"{error.strerror or error}; {names} were left as they "
                              "were") from error
    finally:
        for leftover in [*temps, *backups.values()]:
            _remove(leftover)


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def open_append(path: str | Path, truncate: bool = False) -> TextIO:
    """A UTF-8 text handle appending to ``path``; never through a symlink (``O_NOFOLLOW``)."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    if truncate:
        flags |= os.O_TRUNC
    try:
        fd = os.open(path, flags, file_mode())
    except OSError as error:
        why = ("it is a symlink; nocollapse writes no file through a link"
               if path.is_symlink() else error.strerror or str(error))
        raise OutputError(f"cannot write {path}: {why}") from error
    return os.fdopen(fd, "a", encoding="utf-8")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))
