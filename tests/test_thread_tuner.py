"""The thread tuner keeps the count that measures fastest, and gives up bad probes early."""

from __future__ import annotations

import pytest

from nocollapse.threads import ThreadTuner, candidate_counts


class FakeMachine:
    """Step time as a function of the thread count the tuner set, per phase of load."""

    def __init__(self, costs: dict[int, float]) -> None:
        self.costs, self.threads, self.calls = costs, 2, []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)

    def run(self, tuner: ThreadTuner, steps: int) -> float:
        total = 0.0
        for _ in range(steps):
            seconds = self.costs[self.threads]
            total += seconds
            tuner.record(seconds)
            assert tuner.threads == self.threads
        return total


def test_candidates() -> None:
    assert candidate_counts(2) == [1]
    assert candidate_counts(1) == []
    assert candidate_counts(16) == [15, 8]


def test_idle_machine_keeps_every_core() -> None:
    machine = FakeMachine({2: 0.035, 1: 0.055})
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    machine.run(tuner, 1000)
    assert tuner.best == 2 and machine.threads == 2
    assert machine.calls[:2] == [1, 2]  # probed one thread, went back


def test_one_competitor_moves_to_one_thread_and_back_when_it_leaves() -> None:
    machine = FakeMachine({2: 0.075, 1: 0.055})
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    machine.run(tuner, 30)
    assert tuner.best == 1 and machine.threads == 1  # found at the first probe
    machine.costs = {2: 0.035, 1: 0.055}  # the competitor stopped
    machine.run(tuner, 500)
    assert tuner.best == 2 and machine.threads == 2


def test_small_differences_do_not_switch() -> None:
    machine = FakeMachine({2: 0.050, 1: 0.047})  # 6% faster: within the 10% margin
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    machine.run(tuner, 2000)
    assert tuner.best == 2


def test_an_oversubscribed_probe_ends_after_one_step() -> None:
    machine = FakeMachine({2: 2.0, 1: 0.15})
    tuner = ThreadTuner(2, set_threads=machine.set_threads, every=100)
    machine.run(tuner, 20)
    assert tuner.best == 1
    total = machine.run(tuner, 1000)
    # each probe back at 2 threads costs one 2 s step, not a window of them
    probes = machine.calls.count(2)
    assert probes >= 5
    assert total == pytest.approx((1000 - probes) * 0.15 + probes * 2.0)


def test_a_fixed_thread_count_turns_the_tuner_off_in_the_supervised_bound_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from nocollapse.data import make_augment
    from nocollapse.evaluate import supervised
    from nocollapse.threads import tuner_for

    assert tuner_for(torch.device("cpu"), fixed=True) is None
    assert tuner_for(torch.device("meta")) is None
    asked: list[bool] = []

    def recording(device: torch.device, fixed: bool = False) -> None:
        asked.append(fixed)

    monkeypatch.setattr(supervised, "tuner_for", recording)
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(16) % 2
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    for fixed in (True, False):
        supervised.train_supervised(backbone, 4, images, labels, make_augment("8x1"), steps=1,
                                    batch_size=8, fixed_threads=fixed)
    assert asked == [True, False]
