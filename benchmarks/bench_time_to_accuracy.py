"""Time to accuracy: nocollapse's ``train`` against SimSiam written with lightly 1.6's modules.

Both train SimSiam on the same backbone (built from the same config and seed), the same
data, batch, augmentation, optimiser settings and per-step warm-up + cosine schedule; every
``--eval-every`` steps both are evaluated by the same code (this script's
:func:`full_split_knn`: k-NN k=200 with the full train split as bank and the full test
split as queries, nocollapse.evaluate). The clock stops while they are evaluated, so the
figure is training time (startup included: imports after the script's own, data, model,
first steps) to the first evaluation at or above each ``--targets`` accuracy.

The lightly side is a plain loop as lightly's SimSiam example writes it: its
``SimSiamProjectionHead`` / ``SimSiamPredictionHead`` at nocollapse's widths,
``NegativeCosineSimilarity``, torch's SGD (weight decay on every parameter, as the example).
Its transforms are torchvision's (PIL, one image at a time), and torchvision is not
installed here (it would pull a CUDA build of torch): both sides use nocollapse's batched
augmentation, so the comparison is the training loop and model, not the augmentation.

Setup (lightly is a benchmark-only dependency, installed without its dependencies; its
model code needs none beyond torch, and ``lightly_peer.stub_torchvision`` answers its
torchvision imports)::

    .venv/bin/pip install --no-deps --target /tmp/lightly lightly==1.6.0
    PYTHONPATH=/tmp/lightly .venv/bin/python benchmarks/bench_time_to_accuracy.py

Defaults: the CPU recipe (``configs/cpu_default.yaml``: Fashion-MNIST, small_convnet_4x4,
batch 128, SGD lr 0.12, 8 epochs = 3744 steps), evaluated every 468 steps (an epoch).
The full run needs an idle machine: ~2 x 3 minutes of training plus 16 evaluations.
``--steps 40 --eval-every 20 --subset 2048`` is a smoke test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import print_table
from lightly_peer import stub_torchvision

from nocollapse.data import ImageDataset
from nocollapse.evaluate import encoder_in_eval_mode, extract_features, knn_accuracies
from nocollapse.methods import SiameseLearner, StepOutput
from nocollapse.train import BaseCallback, TrainConfig, load_config, train
from nocollapse.train import setup as run_setup
from nocollapse.train.schedule import WarmupCosine

ROOT = Path(__file__).resolve().parents[1]


def full_split_knn(encode: Callable[[torch.Tensor], torch.Tensor], module: torch.nn.Module,
                   train: ImageDataset, test: ImageDataset, preset: str) -> float:
    """k-NN k=200 (t=0.1) of ``encode``'s features: the train split as bank (``--subset``:
    its images), the full test split as queries."""
    with encoder_in_eval_mode(module), torch.no_grad():
        bank = extract_features(encode, train.images, preset=preset, batch_size=1024)
        queries = extract_features(encode, test.images, preset=preset, batch_size=1024)
    return knn_accuracies(bank, train.labels, queries, test.labels, (200,))[200]


class Clock:
    """Training seconds since ``start``, without the evaluations; the accuracy curve."""

    def __init__(self) -> None:
        self.start, self.paused = time.perf_counter(), 0.0
        self.curve: list[tuple[int, float, float]] = []  # (step, training s, k-NN)

    def evaluate(self, step: int, measure: Callable[[], float]) -> None:
        now = time.perf_counter()
        accuracy = measure()
        self.curve.append((step, now - self.start - self.paused, accuracy))
        self.paused += time.perf_counter() - now
        print(f"  step {step}: k-NN {accuracy:.4f} at {self.curve[-1][1]:.1f} s", flush=True)


class _EvalEvery(BaseCallback):
    def __init__(self, clock: Clock, every: int, data: run_setup.RunData) -> None:
        self.clock, self.every, self.data = clock, every, data

    def on_log(self, step: int, output: StepOutput, learner: object,
               record: dict[str, object]) -> None:
        if step % self.every == 0:
            assert isinstance(learner, SiameseLearner) and self.data.test is not None
            self.clock.evaluate(step, lambda: full_split_knn(
                learner.encode, learner, self.data.train, self.data.test, self.data.preset))


def run_nocollapse(config: TrainConfig, every: int, data: run_setup.RunData) -> Clock:
    clock = Clock()
    train(config, callbacks=[_EvalEvery(clock, every, data)], quiet=True)
    return clock


def run_lightly(config: TrainConfig, every: int, data: run_setup.RunData) -> Clock:
    clock = Clock()
    stub_torchvision()
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules import heads

    channels, size, _ = data.train.image_shape
    torch.manual_seed(config.seed)  # the backbone nocollapse starts from (same builder)
    backbone = SiameseLearner(config.learner, channels, size).backbone
    with torch.no_grad():
        width = backbone(torch.zeros(2, channels, size, size)).flatten(1).shape[1]
    learner = config.learner
    projection = heads.SimSiamProjectionHead(width, learner.proj_hidden_dim, learner.proj_dim)
    prediction = heads.SimSiamPredictionHead(learner.proj_dim, learner.pred_hidden_dim,
                                             learner.proj_dim)
    model = torch.nn.ModuleList([backbone, projection, prediction])
    criterion = NegativeCosineSimilarity()
    optim = config.optim
    optimizer = torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum,
                                weight_decay=optim.weight_decay)
    per_epoch = len(data.train) // config.data.batch_size
    total = run_setup.total_steps(config, per_epoch)
    scheduler = WarmupCosine(optimizer, total, 0, optim.lr, optim.final_lr, optim.cosine)
    augment = run_setup.build_augment(config, data.preset)
    generator = torch.Generator().manual_seed(config.seed * 1009)
    bf16 = config.device.precision in ("bf16", "bf16-mixed")
    step = 0
    assert data.test is not None
    while step < total:
        order = torch.randperm(len(data.train), generator=generator)
        for start in range(0, per_epoch * config.data.batch_size, config.data.batch_size):
            if step >= total:
                break
            batch = data.train.images[order[start:start + config.data.batch_size]]
            x0, x1 = augment(batch, generator), augment(batch, generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                z0, z1 = projection(backbone(x0).flatten(1)), projection(backbone(x1).flatten(1))
                p0, p1 = prediction(z0), prediction(z1)
                loss = 0.5 * (criterion(p0, z1.detach()) + criterion(p1, z0.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.set(step)
            if step % every == 0 or step == total:
                clock.evaluate(step, lambda: full_split_knn(
                    lambda x: backbone(x).flatten(1), model, data.train, data.test,
                    data.preset))
    return clock


def first_reaching(clock: Clock, target: float) -> str:
    for step, seconds, accuracy in clock.curve:
        if accuracy >= target:
            return f"{seconds:.0f} s (step {step})"
    return f"not reached (best {max(a for _, _, a in clock.curve):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "cpu_default.yaml"))
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--eval-every", type=int, default=468)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.80, 0.83])
    parser.add_argument("--subset", type=int, default=None, help="train images (smoke test)")
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 (both sides)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="/tmp/nocollapse-time-to-accuracy")
    args = parser.parse_args()
    overrides = ["time_budget_s=null", "eval.knn_every=0", "eval.baselines=[]",
                 "eval.linear_probe=false", "eval.embedding_points=0",
                 f"device.precision={args.precision}", f"out={args.out}",
                 f"log_every={args.eval_every}"]
    if args.steps is not None:
        overrides += ["epochs=0", f"max_steps={args.steps}"]
    if args.subset is not None:
        overrides.append(f"data.subset={args.subset}")
    if args.threads is not None:
        overrides.append(f"device.threads={args.threads}")
    config = load_config(args.config, overrides)
    config, _ = run_setup.with_resolved_precision(config)
    if config.method != "simsiam":
        raise SystemExit("the lightly side is SimSiam: use a SimSiam recipe")
    if Path(config.out).exists():
        raise SystemExit(f"{config.out} exists: remove it or pass another --out")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data = run_setup.load_run_data(config)  # --subset: the bank too; the full test split
    print("nocollapse train ...", flush=True)
    ours = run_nocollapse(config, args.eval_every, data)
    print("lightly 1.6 loop ...", flush=True)
    theirs = run_lightly(config, args.eval_every, data)
    rows = [[name, *(first_reaching(clock, t) for t in args.targets),
             f"{clock.curve[-1][2]:.4f} at {clock.curve[-1][1]:.0f} s"]
            for name, clock in (("nocollapse train", ours), ("lightly 1.6 loop", theirs))]
    print(f"load average {os.getloadavg()[0]:.2f}")
    print_table(f"Time to k-NN accuracy (full test split), SimSiam, {config.learner.backbone}, "
                f"batch {config.data.batch_size}, {config.device.precision}",
                ["trainer", *(f"to {t:.0%}" for t in args.targets), "final"], rows)


if __name__ == "__main__":
    main()
