"""The pre-collapse snapshot: the training state at the log before the first suspect one.

Collapses start at steps 20-100, before the first epoch's checkpoint. While no log has
been suspect, the loop keeps the state of its last log (and of step 0) in memory as the
bytes a checkpoint holds; the first suspect log that counts towards the warning's
patience writes the kept state to ``checkpoints/presuspect.pt``
(:func:`~nocollapse.rundir.checkpoint.presuspect_path`), once per run. It is a complete
checkpoint: copied over ``last.pt`` it resumes the run exactly (tests), and
``nocollapse diagnose`` starts its branches from its weights (docs/diagnose.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nocollapse.monitor import CollapseMonitor
from nocollapse.rundir.checkpoint import (
    presuspect_path,
    serialize_checkpoint,
    write_checkpoint_bytes,
)
from nocollapse.runio.records import Checkpoint


class PresuspectSnapshot:
    """Keeps the last healthy log's state; writes it at the first suspect one."""

    def __init__(self, run_dir: Path, monitor: CollapseMonitor | None, enabled: bool) -> None:
        self.path = presuspect_path(run_dir)
        self.monitor = monitor
        # a resumed run that already wrote it, or one with no monitor, keeps nothing
        self.done = not enabled or monitor is None or self.path.exists()
        self.kept: bytes | None = None

    def tick(self, state: Callable[[], Checkpoint]) -> None:
        """At a log step (and step 0), after the monitor has seen it."""
        if self.done or self.monitor is None:
            return
        if self.monitor.warning.streak > 0:  # the first counted suspect log
            if self.kept is not None:
                write_checkpoint_bytes(self.path, self.kept)
            self.done, self.kept = True, None
            return
        self.kept = serialize_checkpoint(state())
