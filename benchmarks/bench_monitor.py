"""Overhead of CollapseMonitor's per-step diagnostics relative to a training step.

Times one step of the real SiameseLearner (SimSiam with a linear predictor, so that the
Wp spectra are part of the cost) and one ``CollapseMonitor.on_log`` on its output, then
prints the overhead per step at the default interval (``MonitorConfig.every``):
``on_log time / (every * step time)``. Also times ``on_epoch_end`` (spectra), and the
public :class:`nocollapse.Monitor` as a user's loop calls it: ``observe`` on ``every``
consecutive steps (one with the diagnostics, the others only checking their input)
over ``every`` training steps, in the same process.

    .venv/bin/python benchmarks/bench_monitor.py [--device cuda] [--quick] [--loop STEPS]

``--loop STEPS`` also runs the real training loop (``nocollapse train``'s CPU default:
SimSiam on the default data set, batch 128, log_every 10) for STEPS steps with a
timed monitor at its default options, and prints the share of the loop's time spent
in the monitor's callbacks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from benchutil import median_seconds, print_table

from nocollapse.methods import SiameseLearner, StepOutput, learner_config
from nocollapse.monitor import CollapseMonitor, Monitor, MonitorConfig


def measure(name: str, learner: SiameseLearner, shape: tuple[int, ...], device: str,
            repeats: int) -> list[list]:
    """Median step time of the real learner, of one monitor ``on_log`` on its output, and
    of the public ``Monitor.observe`` over one logging interval."""
    learner = learner.to(device)
    optimizer = torch.optim.SGD(learner.parameter_groups(5e-4), lr=0.05, momentum=0.9)
    x1, x2 = torch.randn(shape, device=device), torch.randn(shape, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    holder: dict[str, StepOutput] = {}

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        holder["out"] = learner(x1, x2)
        holder["out"].loss.backward()
        optimizer.step()
        sync()

    step_s = median_seconds(train_step, repeats=repeats, warmup=2)
    config = MonitorConfig(tensorboard=False)
    with tempfile.TemporaryDirectory() as run_dir:
        monitor = CollapseMonitor(config, Path(run_dir))

        def log() -> None:
            monitor.last_step = None  # force the diagnostics on every call
            monitor.on_log(0, holder["out"], learner, {})
            sync()

        log_s = median_seconds(log, repeats=repeats, warmup=2)
        epoch_s = median_seconds(lambda: monitor.on_epoch_end(0, learner, Path(run_dir)), 3, 1)
        public = Monitor(Path(run_dir) / "public", config=config)
        out, wp, steps = holder["out"], learner.predictor_matrix(), iter(range(10**9))

        def observe_interval() -> None:
            for _ in range(config.every):  # the first of each interval is diagnosed
                public.observe(next(steps), out.z1, out.z2, predictor=wp, loss=out.loss)
            sync()

        interval_s = median_seconds(observe_interval, repeats=repeats, warmup=2)
        public_epoch_s = median_seconds(lambda: public.end_epoch(public.epoch + 1), 3, 1)
        public.close()
    dim = holder["out"].z1.shape[1]
    size = f"{shape[0]}x{dim}"
    return [
        [name, device, size, f"{1e3 * step_s:.1f}", f"{1e3 * log_s:.2f}", config.every,
         f"{100 * log_s / (config.every * step_s):.2f}%", f"{1e3 * epoch_s:.0f}"],
        [f"  Monitor.observe x {config.every} (public API)", device, size, f"{1e3 * step_s:.1f}",
         f"{1e3 * interval_s:.2f}", config.every,
         f"{100 * interval_s / (config.every * step_s):.2f}%", f"{1e3 * public_epoch_s:.0f}"],
    ]


class TimedMonitor(CollapseMonitor):
    """The monitor, with the wall time of its callbacks accumulated."""

    log_seconds = 0.0
    epoch_seconds = 0.0
    epochs = 0

    def on_log(self, *args: object) -> None:
        start = time.perf_counter()
        super().on_log(*args)  # type: ignore[arg-type]
        self.log_seconds += time.perf_counter() - start

    def on_epoch_end(self, *args: object) -> None:
        start = time.perf_counter()
        super().on_epoch_end(*args)  # type: ignore[arg-type]
        self.epoch_seconds += time.perf_counter() - start
        self.epochs += 1


def loop_overhead(steps: int, device: str) -> list:
    from nocollapse.train import load_config, train
    from nocollapse.train.config import CPU_DEFAULT

    with tempfile.TemporaryDirectory() as root:
        overrides = [
            f"out={root}/run",
            f"max_steps={steps}",
            "epochs=1000",
            "time_budget_s=null",
            "eval.random_baseline=false",
            "data.test_subset=256",
            f"device.accelerator={'cpu' if device == 'cpu' else 'cuda'}",
            "monitor.enabled=false",  # the timed monitor below is the only one
        ]
        config = load_config(None, overrides, base=CPU_DEFAULT)
        monitor = TimedMonitor(MonitorConfig(tensorboard=False), config.out)
        result = train(config, quiet=True, callbacks=[monitor])
    share = monitor.log_seconds / result.seconds
    per_epoch = monitor.epoch_seconds / max(monitor.epochs, 1)
    return [
        f"train loop, {config.method}, {config.data.name}",
        device,
        f"{config.data.batch_size} images",
        f"{1e3 * result.seconds / result.step:.1f}",
        f"{1e3 * monitor.log_seconds:.0f} over {result.step} steps",
        monitor.config.every,
        f"{100 * share:.2f}%",
        f"{1e3 * per_epoch:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--loop",
        type=int,
        default=0,
        metavar="STEPS",
        help="also time the monitor inside the real training loop",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    repeats = 3 if args.quick else 10
    rows = measure(
        "SimSiam + linear Wp, small_convnet 28x28",
        SiameseLearner(learner_config("simsiam", predictor="linear"), 1, 28),
        (256, 1, 28, 28),
        args.device,
        repeats,
    )
    if args.device.startswith("cuda"):
        rows.extend(
            measure(
                "SimSiam + linear Wp, resnet18 32x32",
                SiameseLearner(learner_config("simsiam", predictor="linear", backbone="resnet18",
                                              proj_dim=2048, proj_hidden_dim=2048), 3, 32),
                (512, 3, 32, 32),
                args.device,
                repeats,
            )
        )
    if args.loop:
        rows.append(loop_overhead(args.loop, args.device))
    print_table(
        "CollapseMonitor overhead at the default interval",
        [
            "model",
            "device",
            "batch x d",
            "step ms",
            "monitor ms",
            "every",
            "overhead",
            "on_epoch_end ms",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
