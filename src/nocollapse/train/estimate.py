"""What a run will cost, measured on this machine before it starts (a sweep prints it).

:func:`estimate_run` times a few training steps of the configured learner on random
images of the data set's shape (in the configured precision and thread count), a batch of
evaluation forwards and one similarity product, and scales them to the run's planned
steps, its monitored k-NN curve and its final evaluation (``eval.protocol``'s bank and the
full test split; the linear probe's passes when it is on; baselines not counted). An
estimate: the load of the machine while it measures, and the step's first-call costs,
move it by tens of percent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from nocollapse.evaluate import FAST_BANK
from nocollapse.methods import Learner
from nocollapse.train import setup
from nocollapse.train.config import TrainConfig
from nocollapse.train.precision import resolve_precision

TIMED_STEPS = 2
EVAL_BATCH = 512
LABELS = 10  # the probe's classes, for its cost (a 10-class data set is the usual case)


@dataclass(frozen=True)
class RunCost:
    """Estimated seconds of one run: its training steps, k-NN curve and final evaluation."""

    steps: int
    step_seconds: float
    monitor_seconds: float
    eval_seconds: float
    protocol: str

    @property
    def seconds(self) -> float:
        return self.steps * self.step_seconds + self.monitor_seconds + self.eval_seconds

    def line(self) -> str:
        """One line: the total and its parts."""
        return (f"~{self.seconds:.0f} s ({self.steps} steps x {self.step_seconds * 1e3:.0f} ms, "
                f"k-NN curve {self.monitor_seconds:.0f} s, final evaluation "
                f"{self.eval_seconds:.0f} s, {self.protocol} protocol)")


def estimate_run(config: TrainConfig) -> RunCost:
    """Measure and scale as the module says (loads the data set to read its sizes)."""
    data = setup.load_run_data(config)
    channels, size, _ = data.train.image_shape
    steps = setup.total_steps(config, setup.steps_per_epoch(config, len(data.train), 1))
    precision, _ = resolve_precision(config.device.precision, "cpu")
    previous = torch.get_num_threads()
    if config.device.threads is not None:
        torch.set_num_threads(config.device.threads)
    try:
        with torch.random.fork_rng():
            learner = setup.build_learner(setup.default_learner, config, channels, size)
            step = _step_seconds(learner, config, channels, size, precision)
            per_image, dim = _forward_seconds(learner, channels, size)
            similarity = _similarity_seconds(dim, config.eval.knn_k)
    finally:
        torch.set_num_threads(previous)
    test = len(data.test) if data.test is not None else 0
    bank = min(FAST_BANK, len(data.train)) if config.eval.protocol == "fast" else len(data.train)
    ev = config.eval
    curve = 0.0
    if ev.knn_every and test:
        checks = steps // ev.knn_every + 1
        bank_m, test_m = min(ev.monitor_bank, len(data.train)), min(ev.monitor_test, test)
        curve = checks * ((bank_m + test_m) * per_image + bank_m * test_m * similarity)
    final = 0.0
    if test:
        final = (bank + test) * per_image + bank * test * similarity
        if ev.linear_probe:  # forward and backward of a (bank, dim) x (dim, classes) product
            final += 3 * ev.probe_epochs * bank * LABELS * similarity
    return RunCost(steps, step, curve, final, ev.protocol)


def _step_seconds(learner: Learner, config: TrainConfig, channels: int, size: int,
                  precision: str) -> float:
    batch = config.data.batch_size
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.0)
    x1, x2 = torch.rand(batch, channels, size, size), torch.rand(batch, channels, size, size)
    learner.train()
    times = []
    for _ in range(TIMED_STEPS + 1):  # the first: allocation and first-call costs
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = learner(x1, x2).loss
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


@torch.no_grad()
def _forward_seconds(learner: Learner, channels: int, size: int) -> tuple[float, int]:
    """Seconds per image of an evaluation forward, and the feature width."""
    images = torch.rand(EVAL_BATCH, channels, size, size)
    learner.eval()
    features = learner.encode(images)
    start = time.perf_counter()
    features = learner.encode(images)
    return (time.perf_counter() - start) / EVAL_BATCH, int(features.flatten(1).shape[1])


def _similarity_seconds(dim: int, k: int) -> float:
    """Seconds per (bank image, query) pair of a k-NN similarity product at width ``dim``
    and its top-``k`` selection."""
    a, b = torch.rand(EVAL_BATCH, dim), torch.rand(4 * EVAL_BATCH, dim)
    (a @ b.T).topk(min(k, 4 * EVAL_BATCH), dim=1)
    start = time.perf_counter()
    (a @ b.T).topk(min(k, 4 * EVAL_BATCH), dim=1)
    return (time.perf_counter() - start) / (4 * EVAL_BATCH * EVAL_BATCH)
