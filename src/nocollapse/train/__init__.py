"""The training loop (Lightning Fabric) and what builds it: config, setup, schedules, LARS.

The run directory it writes (lock, checkpoints, resume rules, summary) is
:mod:`nocollapse.rundir`'s; ``CheckpointError``, ``checkpoint_path`` and
``load_checkpoint`` are re-exported here.

>>> from nocollapse.train import load_config, train
>>> result = train(load_config("configs/cpu_default.yaml", ["epochs=1"]))
>>> result.knn_accuracy, result.run_dir
"""

from nocollapse.rundir.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from nocollapse.train.callbacks import BaseCallback, Callback, Stateful
from nocollapse.train.config import TrainConfig, load_config, parse_overrides
from nocollapse.train.lars import LARS
from nocollapse.train.loop import TrainResult, train
from nocollapse.train.schedule import WarmupCosine, warmup_cosine

__all__ = ["LARS", "BaseCallback", "Callback", "CheckpointError", "Stateful", "TrainConfig",
           "TrainResult", "WarmupCosine", "checkpoint_path", "load_checkpoint", "load_config",
           "parse_overrides", "train", "warmup_cosine"]
