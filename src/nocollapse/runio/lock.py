"""The run lock: one writer per run directory, for ``train``, a sweep and a ``Monitor``.

The holder keeps an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock`` (and on the folder
itself) from before its first write until it lets go or its process ends (the kernel
drops it when the process dies, even on ``kill -9``), and writes its pid into the file
so a refused second writer can name the holder.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nocollapse.errors import ConfigError, OutputError
from nocollapse.runio import LOCK_FILE
from nocollapse.runio.files import file_mode


class RunLock:
    """An exclusive lock on a run directory, held until :meth:`release` or process exit.

    Two flocks: one on the directory itself (a live run's directory cannot be deleted, so
    a ``.lock`` deleted or replaced mid-run lets no second run in), one on ``.lock``, which
    names the holder's pid; the ``.lock`` locked must still be the file at its path (same
    inode), or the lock is not trusted.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._fds: list[int] = []
        try:
            self._fds.append(os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            if _try_lock(self._fds[0]):
                self._fds.append(os.open(self.path, flags, file_mode()))
        except OSError as error:
            self.release()
            raise OutputError(f"cannot create the lock file {self.path}: "
                              f"{error.strerror or error}; choose a run directory you can "
                              "write to") from error
        if len(self._fds) < 2 or not _try_lock(self._fds[1]) or not self._same_file():
            self.release()
            raise ConfigError(
                f"{run_dir} is in use by another nocollapse run (pid {_holder(self.path)}); "
                "wait for it to finish or stop it, or choose another directory with --out")
        os.ftruncate(self._fds[1], 0)
        os.pwrite(self._fds[1], f"{os.getpid()}\n".encode(), 0)

    def _same_file(self) -> bool:
        try:
            return os.fstat(self._fds[1]).st_ino == os.stat(self.path,
                                                             follow_symlinks=False).st_ino
        except OSError:
            return False

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())  # closing a descriptor drops its flock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    """The pid a live run wrote into ``.lock`` ("unknown" when it is gone or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return "unknown"
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    finally:
        os.close(fd)


def is_locked(run_dir: Path) -> bool:
    """Whether a live run holds ``run_dir`` (tries the locks without waiting, then lets go)."""
    if not run_dir.is_dir() or run_dir.is_symlink():
        return False
    fds = [os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        if not _try_lock(fds[0]):
            return True
        path = run_dir / LOCK_FILE
        if not path.is_file() or path.is_symlink():
            return False
        fds.append(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
        return not _try_lock(fds[1])
    finally:
        for fd in fds:
            os.close(fd)
