"""One script for a lent GPU: step speed per preset, precision and compile; DirectPred
overhead by width; host-device syncs per step; peak memory.

Cases: every preset (byol, simsiam, directpred, directcopy, isoloss) with ResNet-18 at
32x32x3 and ResNet-50 at 96x96x3, synthetic uint8 images on the device, augmented on
the device as ``nocollapse train`` does, in fp32 and bf16-mixed (autocast), and under
``torch.compile`` (``--compile-methods``, default simsiam and directpred, to stay
under 8 minutes). The unit is source images/s (a step takes ``batch`` images and
augments each twice). Syncs: ``torch.cuda.set_sync_debug_mode("warn")`` over
``--sync-steps`` steps, counting the warnings (each is a host-device sync). The
DirectPred overhead is its step over a linear-predictor BYOL step, widths 256-4096.
A time budget (``--budget-s``) skips what is left, and says so, rather than overrun.

CPU fallback for CI: ``--device cpu --tiny`` (small_convnet at 16x16, a few steps;
no compile). Results: a table on stdout, and JSON with ``--out FILE``.
Run on a GPU: ``python benchmarks/gpu_check.py --out gpu_check.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import print_table

from nocollapse.data import make_augment
from nocollapse.methods import SiameseLearner, learner_config, method_names
from nocollapse.train.setup import fast_sgd

FULL = [("resnet18", 32, "32x3", 256), ("resnet50", 96, "96x3", 128)]
TINY = [("small_convnet", 16, "32x3", 16)]
TINY_HEADS = {"proj_hidden_dim": 64, "proj_dim": 32, "pred_hidden_dim": 16}


class Case:
    """A training step on device-resident uint8 images, as the training loop runs it."""

    def __init__(self, method: str, backbone: str, size: int, preset: str, batch: int,
                 device: torch.device, precision: str, compile_: bool, **overrides: Any):
        torch.manual_seed(0)
        config = learner_config(method, backbone=backbone, **overrides)
        self.learner = SiameseLearner(config, 3, size).to(device)
        self.optimizer = fast_sgd(self.learner.parameter_groups(5e-4), lr=0.01, momentum=0.9)
        self.forward = torch.compile(self.learner) if compile_ else self.learner
        self.augment = make_augment(preset, size=size).to(device)
        self.images = torch.randint(0, 256, (4 * batch, 3, size, size), dtype=torch.uint8,
                                    device=device)
        self.generator = torch.Generator(device=device).manual_seed(0)
        self.batch, self.device, self.precision = batch, device, precision

    def step(self) -> None:
        index = torch.randint(0, len(self.images), (self.batch,), device=self.device,
                              generator=self.generator)
        images = self.images[index]
        view1 = self.augment(images, self.generator)
        view2 = self.augment(images, self.generator)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                    if self.precision == "bf16-mixed" else contextlib.nullcontext())
        self.optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = self.forward(view1, view2).loss
        loss.backward()
        self.optimizer.step()
        self.learner.update_target(0.5)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(case: Case, steps: int, warmup: int) -> tuple[float, float]:
    """(source images/s over ``steps`` steps, seconds of the warm-up incl. compilation)."""
    start = time.perf_counter()
    for _ in range(warmup):
        case.step()
    _sync(case.device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        case.step()
    _sync(case.device)
    return steps * case.batch / (time.perf_counter() - start), first


def syncs_per_step(case: Case, steps: int) -> float | None:
    """Host-device syncs a step, counted by CUDA's sync debug mode; ``None`` off CUDA."""
    if case.device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                case.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sites = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in caught})
    if sites:
        print(f"[gpu_check] sync sites: {', '.join(sites)}", flush=True)
    return len(caught) / steps


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process, KiB on Linux


def step_rows(args: argparse.Namespace, device: torch.device, deadline: float,
              compiled: bool = False) -> list[dict[str, Any]]:
    """Eager fp32 and bf16-mixed rows, or (``compiled``) the ``torch.compile`` rows."""
    rows = []
    if compiled:
        modes = [] if args.tiny else [("fp32", True)]
    else:
        modes = [("fp32", False), ("bf16-mixed", False)]
    cases = TINY if args.tiny else FULL
    cases = [c for c in cases if args.backbones is None or c[0] in args.backbones]
    for backbone, size, preset, batch in cases:
        for method in args.methods:
            for precision, compile_ in modes:
                if compile_ and method not in args.compile_methods:
                    continue
                if args.tiny and precision != "fp32" and method != method_names()[0]:
                    continue  # CI: bf16 on one preset is enough to exercise the path
                row = {"backbone": backbone, "input": f"{size}x{size}x3", "method": method,
                       "precision": precision, "compile": compile_, "batch": batch}
                if time.monotonic() > deadline:
                    rows.append({**row, "skipped": "time budget"})
                    continue
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                case = Case(method, backbone, size, preset, batch, device, precision, compile_,
                            **(TINY_HEADS if args.tiny else {}))
                speed, first = images_per_s(case, args.steps, args.warmup)
                rows.append({**row, "images_per_s": speed, "warmup_s": first,
                             "syncs_per_step": syncs_per_step(case, args.sync_steps),
                             "peak_mib": peak_mib(device)})
                print(f"[gpu_check] {rows[-1]}", flush=True)
    return rows


def directpred_rows(args: argparse.Namespace, device: torch.device, deadline: float
                    ) -> list[dict[str, Any]]:
    """DirectPred's step over a linear-predictor BYOL step, per width and per place of the
    eigendecomposition (``solve_on``: on the device beside the step, or on the host)."""
    rows = []
    backbone, size, preset, batch = (TINY if args.tiny else FULL)[0]
    places = args.solve_on if device.type == "cuda" else ["device"]
    for width in args.widths:
        if time.monotonic() > deadline:
            rows.append({"width": width, "skipped": "time budget"})
            continue
        hidden = 64 if args.tiny else max(512, width)
        dims = {"proj_dim": width, "proj_hidden_dim": hidden}
        cases = {"linear": Case("byol", backbone, size, preset, batch, device, "fp32", False,
                                predictor="linear", **dims)}
        for place in places:
            cases[place] = Case("directpred", backbone, size, preset, batch, device, "fp32",
                                False, solve_on=place, **dims)
        speeds: dict[str, list[float]] = {name: [] for name in cases}
        # interleaved, so a drifting clock or a neighbour slows all alike
        for _ in range(1 if args.tiny else 3):
            for name, case in cases.items():
                speeds[name].append(images_per_s(case, args.steps, 1)[0])
        lin = max(speeds["linear"])
        for place in places:
            dp = max(speeds[place])
            rows.append({"width": width, "solve_on": place, "linear_images_per_s": lin,
                         "directpred_images_per_s": dp, "overhead": lin / dp - 1})
            print(f"[gpu_check] {rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="CI fallback: a few tiny steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--sync-steps", type=int, default=20)
    parser.add_argument("--widths", type=int, nargs="+", default=None)
    parser.add_argument("--compile-methods", nargs="+", default=["simsiam", "directpred"])
    parser.add_argument("--solve-on", nargs="+", default=["device", "cpu"],
                        help="where DirectPred's eigendecomposition runs (GPU runs)")
    parser.add_argument("--methods", nargs="+", default=list(method_names()),
                        choices=list(method_names()))
    parser.add_argument("--parts", nargs="+", default=["steps", "directpred", "compile"],
                        choices=["steps", "directpred", "compile"],
                        help="which parts to run (in this order)")
    parser.add_argument("--backbones", nargs="+", default=None,
                        help="only these of resnet18, resnet50 (GPU runs)")
    parser.add_argument("--budget-s", type=float, default=450.0)
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls and convolutions")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="torch.backends.cudnn.benchmark (autotuned convolutions)")
    parser.add_argument("--out", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    args.steps = args.steps or (1 if args.tiny else 20)
    args.warmup = args.warmup or (1 if args.tiny else 5)
    args.widths = args.widths or ([16, 32] if args.tiny else [256, 512, 1024, 2048, 4096])
    device = torch.device(args.device)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    deadline = time.monotonic() + args.budget_s
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    # eager rows, then DirectPred, then the compiled rows (whose compilation is the slow
    # part), so a budget that runs out skips the compiled rows first
    results: dict[str, Any] = {"device": name, "torch": torch.__version__}
    results["steps"] = step_rows(args, device, deadline) if "steps" in args.parts else []
    results["directpred"] = (directpred_rows(args, device, deadline)
                             if "directpred" in args.parts else [])
    if "compile" in args.parts:
        results["steps"] += step_rows(args, device, deadline, compiled=True)
    print_table(f"step speed on {name} (source images/s)",
                ["backbone", "input", "method", "precision", "compile", "source images/s",
                 "warm-up s", "syncs/step", "peak MiB"],
                [[r["backbone"], r["input"], r["method"], r["precision"], r["compile"],
                  f"{r['images_per_s']:.0f}" if "images_per_s" in r else r["skipped"],
                  f"{r.get('warmup_s', 0):.1f}", r.get("syncs_per_step"),
                  f"{r.get('peak_mib', 0):.0f}"] for r in results["steps"]])
    print_table(f"DirectPred over a linear predictor on {name} (source images/s)",
                ["width", "eigh on", "linear", "directpred", "overhead"],
                [[r["width"], r.get("solve_on", ""), f"{r.get('linear_images_per_s', 0):.0f}",
                  f"{r.get('directpred_images_per_s', 0):.0f}",
                  f"{r['overhead']:+.1%}" if "overhead" in r else r["skipped"]]
                 for r in results["directpred"]])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
