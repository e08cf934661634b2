"""The k-NN learning curve: the monitor subsets' accuracy at the start, every
``eval.knn_every`` steps and (from the final evaluation) at the end."""

from __future__ import annotations

import time

import torch

from nocollapse.evaluate import encoder_knn_accuracy
from nocollapse.methods import Learner
from nocollapse.rundir.summary import RunState
from nocollapse.runio import MetricsWriter
from nocollapse.runio.records import Evaluation, KnnPoint
from nocollapse.train.config import EvalConfig
from nocollapse.train.setup import RunData


class KnnCurve:
    """Measures k-NN accuracy and appends it to ``state.knn_history`` and ``metrics.jsonl``.

    Time spent here is added to ``state.monitor_seconds`` and left out of the curve's
    ``train_seconds``. Only global rank 0 (``rank0``) measures during training.
    """

    def __init__(self, ev: EvalConfig, data: RunData, learner: Learner, device: torch.device,
                 state: RunState, rank0: bool, bf16: bool = False):
        self.ev, self.data, self.learner, self.device = ev, data, learner, device
        self.state, self.rank0, self.bf16 = state, rank0, bf16

    def knn(self) -> float | None:
        """k-NN on the monitor subsets (``eval.monitor_bank`` / ``eval.monitor_test``)."""
        test, train, ev = self.data.test, self.data.train, self.ev
        if test is None or int(test.labels.min()) < 0:
            return None
        start = time.monotonic()
        accuracy = encoder_knn_accuracy(
            self.learner, self.learner.encode, train.images[:ev.monitor_bank],
            train.labels[:ev.monitor_bank], test.images[:ev.monitor_test],
            test.labels[:ev.monitor_test], k=ev.knn_k, t=ev.knn_t, device=self.device,
            bf16=self.bf16)
        self.state.monitor_seconds += time.monotonic() - start
        return accuracy

    def initial(self, writer: MetricsWriter | None) -> None:
        """The random-init encoder's k-NN: the curve's first point and/or the baseline."""
        ev, state = self.ev, self.state
        first = state.random_knn
        if (ev.random_baseline and first is None) or ev.knn_every:
            first = self.knn() if first is None else first
        state.monitor_seconds = 0.0  # before the clock starts: not training time
        if ev.random_baseline:
            state.random_knn = first
        if ev.knn_every and first is not None:
            self.record(writer, initial=first)

    def record(self, writer: MetricsWriter | None, final: bool = False,
               evaluation: Evaluation | None = None,
               initial: float | None = None) -> float | None:
        """Append one point (measured now, ``initial``, or the final evaluation's headline)."""
        if final:  # the standard protocol's headline figure, on the full splits
            accuracy = evaluation["trained"][evaluation["headline"]] if evaluation else None
        elif initial is not None:
            accuracy = initial
        else:
            accuracy = self.knn() if self.rank0 else None
        if accuracy is None:
            return None
        state = self.state
        record: KnnPoint = {"step": state.step, "epoch": state.epoch, "knn_accuracy": accuracy,
                            "train_seconds": round(state.seconds - state.monitor_seconds, 2)}
        if final:
            record["final"] = True
        state.knn_history.append(record)
        if writer:
            writer.write(record)
        return accuracy
