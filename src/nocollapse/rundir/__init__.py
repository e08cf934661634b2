"""A run directory's life: its lock, checkpoints, resume rules, summary and embedding sample.

``runio`` names the files and writes them; this package is what a training run does with
its directory from the first write to the last: lock it (:mod:`~nocollapse.rundir.lock`),
save and verify checkpoints (:mod:`~nocollapse.rundir.checkpoint`), decide what a resume
may change and cut the files back to the checkpoint (:mod:`~nocollapse.rundir.resume`,
:mod:`~nocollapse.rundir.lock`), and write how the run ended
(:mod:`~nocollapse.rundir.summary`, :mod:`~nocollapse.rundir.embedding`). It sits below
``train`` (the loop and what builds it), which calls it, and knows nothing of the
training config but its plain dict.
"""

from nocollapse.rundir.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from nocollapse.rundir.summary import RunState, TrainResult

__all__ = ["CheckpointError", "RunState", "TrainResult", "checkpoint_path", "load_checkpoint",
           "save_checkpoint"]
