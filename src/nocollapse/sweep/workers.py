"""The local launcher's worker processes die with the sweep process that started them.

Whatever ends the driver (Ctrl-C, ``kill -TERM PID``, ``kill -9 PID`` of the driver
alone), no worker is left training a cell or waiting on the pool's pipes:

- each worker asks Linux to send it SIGKILL when its parent dies (``prctl
  PR_SET_PDEATHSIG``) and, on every platform, watches its parent's sentinel pipe from a
  thread (:func:`multiprocessing.parent_process`: the pipe reaches end-of-file when the
  driver is gone, however it ended) and exits then;
- workers ignore SIGINT: Ctrl-C reaches the whole foreground process group, and the
  driver alone decides what stops; the driver turns SIGTERM into a
  :class:`SweepInterrupted` too, and on either kills its workers at once
  (:func:`kill_workers`) so no queued cell starts.

A worker killed mid-cell leaves its checkpoints (written by temp-then-rename) and its
run lock goes with the process: the next run of the sweep resumes the cell exactly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class SweepInterrupted(KeyboardInterrupt):
    """The sweep process got SIGTERM (handled as Ctrl-C: workers stopped, cells resumable)."""


def init_worker(driver_pid: int) -> None:
    """The pool's initializer: ignore Ctrl-C, die with the driver (see the module's text)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    _parent_death_signal()
    if os.getppid() != driver_pid:  # the driver died before the request above took effect
        os._exit(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_gone, args=(parent,), daemon=True,
                         name="nocollapse-driver-watch").start()


def _parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the sentinel thread still watches
        pass


def _exit_when_gone(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns when the parent's sentinel pipe closes: the driver is gone
    os._exit(1)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while workers are spawned: a child starts with them blocked
    (the mask survives exec) until :func:`init_worker` has set them up, and the driver
    gets any that arrived meanwhile as soon as the block is lifted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`SweepInterrupted` in the main thread while the sweep runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise SweepInterrupted

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL every worker of ``pool`` now (queued cells never start), then reap them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # CPython's pool
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(timeout=5)
    # CPython 3.11's pool thread closes its wake-up pipe while the interpreter's exit hook
    # may still write to it (EBADF, printed as "Exception ignored ... Traceback" after
    # Ctrl-C): let that thread finish first, so the hook sees the pipe closed
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None and manager is not threading.current_thread():
        manager.join(timeout=5)
