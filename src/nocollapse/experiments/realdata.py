"""Real-data reproductions on the CPU backbone: method x ablation table, DirectPred's eps/rho.

Each run trains with :func:`nocollapse.train.train` for the same number of steps on
one thread (for the MLP-predictor presets, results that do not depend on the machine's
load; spectral-predictor runs were seen to differ slightly between loads, cause not yet
found: docs/reproductions.md), then reads the final
k-NN accuracy (the standard protocol: full train split as bank, full test split) and
the collapse diagnostics (effective rank and collapse level of the projector outputs,
logged by the collapse monitor) from the run directory. The SGD-trained linear
predictor, DirectPred's reference, is trained twice: for the same steps and for
DirectPred's training time. That time is converted into steps with the ratio of the two
step costs, timed back to back (:func:`step_cost_ratio`), not from the cells' own wall
times, which are measured minutes apart and move with the machine's load.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import torch

from nocollapse.experiments.registry import reproduction
from nocollapse.experiments.result import ReproductionResult, Table
from nocollapse.losses import LOSSES
from nocollapse.methods import PRESETS, Learner, learner_config
from nocollapse.predictors import PREDICTORS
from nocollapse.runio import read_metrics
from nocollapse.runio.records import ConfigDict, finite_or_none

if TYPE_CHECKING:
    from nocollapse.train.config import TrainConfig

# size -> data set, training images (None: all), monitor test images, batch, steps, backbone
BUDGETS: dict[str, ConfigDict] = {
    "quick": {"data": "digits", "subset": 512, "test_subset": 256, "batch": 64,
              "max_steps": 40, "backbone": "small_convnet"},
    # the CPU default's backbone and batch (docs/quality.md), 1.3 epochs of Fashion-MNIST
    "default": {"data": "default", "subset": None, "test_subset": None, "batch": 128,
                "max_steps": 600, "backbone": "small_convnet_4x4"},
    "full": {"data": "default", "subset": None, "test_subset": None, "batch": 128,
             "max_steps": 3744, "backbone": "small_convnet_4x4"},
}
VARIANTS: dict[str, tuple[ConfigDict, ConfigDict]] = {  # learner, other overrides
    "normal": ({}, {}),
    "no predictor": ({"predictor": "none"}, {}),
    "no stop-gradient": ({"stop_gradient": False}, {}),
    "strong weight decay": ({}, {"optim": {"weight_decay": 0.05}}),
}
# A cell counts as collapsed when its projector outputs have collapse level >= 0.5
# (complete collapse) or an effective rank at most half of the same method's normal run
# (dimensional collapse). SimSiam's output BatchNorm keeps the collapse level low even
# when the representation collapses, which is why the rank criterion is needed.
COLLAPSE_LEVEL, RANK_RATIO = 0.5, 0.5


# SGD as the CPU recipe was tuned with summed directions (lr 0.06, weight decay 5e-4); the
# recipe itself now averages them at twice the lr and half the decay (the same steps for
# SimSiam), but these cells train several presets at one optimiser, as measured before.
OPTIM: ConfigDict = {"name": "sgd", "lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4,
                         "warmup_epochs": 0.0}


def _train_config(out: Path, method: str, size: str, seed: int, learner: ConfigDict,
                  extra: ConfigDict, random_baseline: bool = False,
                  steps: int | None = None) -> TrainConfig:
    from nocollapse.train.config import CPU_DEFAULT, load_config, merge

    budget = BUDGETS[size]
    # Fashion-MNIST budgets train the CPU default's recipe (its optimiser and the
    # brightness/contrast jitter the 28x1 preset lacks) without its solarize: under
    # solarize IsoLoss collapses to an effective rank of about 5 (docs/quality.md), and
    # this table compares the methods on one augmentation. Digits keeps the preset's.
    augment = ({k: v for k, v in CPU_DEFAULT["data"]["augment"].items() if k != "solarize_p"}
               if budget["data"] == "default" else {})
    values = {
        "method": method, "learner": {"backbone": budget["backbone"], **learner},
        "seed": seed, "out": str(out),
        "data": {"name": budget["data"], "batch_size": budget["batch"],
                 "subset": budget["subset"], "test_subset": budget["test_subset"],
                 "augment": augment},
        "optim": dict(OPTIM),
        # max_steps ends the run (and sets the length of the learning-rate schedule)
        "epochs": 1000, "max_steps": steps or budget["max_steps"], "time_budget_s": None,
        "log_every": 2,
        # the baselines by the standard protocol, like the cells' final k-NN
        "eval": {"knn_every": 0, "linear_probe": False,
                 "baselines": ["raw_pixels", "random_init"] if random_baseline else []},
        # one fixed thread: the same numbers whatever else runs on the machine
        "device": {"accelerator": "cpu", "threads": 1},
        # diagnostics at every log; no warning panels in a table of deliberate ablations
        "monitor": {"every": 1, "spectra": False, "tensorboard": False, "patience": 10_000},
    }
    return load_config(None, [], base=merge(values, extra))


class AblationCell(TypedDict):
    """One trained cell of a table: final k-NN beside its baselines, last diagnostics, cost."""

    knn: float | None
    random_knn: float | None
    raw_knn: float | None
    steps: int
    seconds: float
    images_per_s: float
    effective_rank: float | None
    collapse_level: float | None


def train_cell(out: Path, method: str, size: str, seed: int, learner: ConfigDict,
               extra: ConfigDict | None = None, random_baseline: bool = False,
               steps: int | None = None) -> AblationCell:
    """Train one cell and return its final k-NN accuracy, diagnostics, steps and images/s.

    ``steps``: train this many steps instead of the budget's ``max_steps``.
    """
    from nocollapse.train import train

    config = _train_config(out, method, size, seed, learner, extra or {}, random_baseline,
                           steps)
    result = train(config, quiet=True)
    evaluation = result.evaluation
    baselines = evaluation["baselines"] if evaluation else {}
    headline = evaluation["headline"] if evaluation else None
    raw = baselines.get("raw_pixels", {}).get(headline) if headline else None
    # the table needs metrics only; checkpoints (MBs per cell) would bloat docs/reproductions
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    diagnostics = [r for r in read_metrics(out) if "effective_rank" in r]
    last = diagnostics[-1] if diagnostics else {}
    return {"knn": result.knn_accuracy, "random_knn": result.random_knn_accuracy,
            "raw_knn": raw,
            "steps": result.step, "seconds": result.seconds,
            "images_per_s": result.step * config.data.batch_size * 2 / max(result.seconds, 1e-9),
            "effective_rank": finite_or_none(last.get("effective_rank")),
            "collapse_level": finite_or_none(last.get("collapse_level"))}


def step_cost_ratio(size: str, seed: int, slow: tuple[str, ConfigDict],
                    fast: tuple[str, ConfigDict], rounds: int = 7,
                    steps: int = 6) -> float:
    """Seconds of a training step of ``slow`` (method, learner overrides) over ``fast``.

    Both learners are built as the budget's cells build them and stepped (forward,
    backward, SGD step, target update, spectral rebuild) on a batch of the budget's image
    shape, on one thread as the cells train; ``rounds`` rounds of ``steps`` steps
    alternate between the two and the median of the per-round ratios is returned, so a
    load that changes during the measurement slows both alike.
    """
    from nocollapse.train.setup import default_learner, fast_sgd, load_run_data

    config = _train_config(Path("unused"), slow[0], size, seed, slow[1], {})
    data = load_run_data(config)
    channels, image_size = data.train.images.shape[1], data.train.images.shape[-1]
    batch = config.data.batch_size
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timers = []
        for method, learner in (slow, fast):
            torch.manual_seed(seed)
            cell = _train_config(Path("unused"), method, size, seed, learner, {})
            model = default_learner(cell, channels, image_size)
            optimizer = fast_sgd(model.parameter_groups(cell.optim.weight_decay),
                                 lr=cell.optim.lr, momentum=cell.optim.momentum)
            views = torch.randn(2, batch, channels, image_size, image_size)
            timers.append(_step_timer(model, optimizer, views, steps))
        ratios = []
        for _ in range(rounds):
            slow_s, fast_s = timers[0](), timers[1]()
            ratios.append(slow_s / max(fast_s, 1e-9))
        result: float = statistics.median(ratios)
        return result
    finally:
        torch.set_num_threads(previous)


def _step_timer(model: Learner, optimizer: torch.optim.Optimizer, views: torch.Tensor,
                steps: int) -> Callable[[], float]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(views[0], views[1]).loss.backward()
        optimizer.step()
        model.update_target(0.5)

    step()  # warm-up: lazy initialisation and the first spectral rebuild

    def seconds() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - start

    return seconds


def _learner_overrides(method: str, variant: str) -> ConfigDict:
    """The variant's learner switches; where the method's loss cannot take the ablation
    (it needs a spectral predictor, or stops the target's gradient itself, as IsoLoss),
    the loss it is a surrogate of (its entry's ``base``) instead."""
    learner = dict(VARIANTS[variant][0])
    preset = learner_config(method)
    loss = LOSSES[preset.loss]
    predictor = PREDICTORS[learner.get("predictor", preset.predictor)]
    loses_spectral = loss.needs_spectral and not predictor.spectral
    loses_stop_gradient = loss.detaches_target and learner.get("stop_gradient") is False
    if (loses_spectral or loses_stop_gradient) and loss.base is not None:
        learner["loss"] = loss.base
    return learner


def _collapsed(cell: AblationCell, normal: AblationCell | None = None) -> bool:
    level, rank = cell["collapse_level"], cell["effective_rank"]
    if level is not None and level >= COLLAPSE_LEVEL:
        return True
    reference = None if normal is None else normal["effective_rank"]
    return rank is not None and reference is not None and rank <= RANK_RATIO * reference


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


@reproduction("realdata-ablations", "tian2021",
              "Fashion-MNIST: methods x {normal, no predictor, no stop-gradient, strong wd}")
def ablations(out: Path, size: str, seed: int) -> ReproductionResult:
    # every method preset registered by now
    methods = tuple(PRESETS) if size != "quick" else ("simsiam", "directpred")
    variants = list(VARIANTS) if size != "quick" else ["normal", "no stop-gradient"]
    result = ReproductionResult("realdata-ablations", params=dict(BUDGETS[size]))
    cells: dict[tuple[str, str], AblationCell] = {}
    for method in methods:
        for variant in variants:
            cells[method, variant] = train_cell(
                out / f"{method}-{variant.replace(' ', '_')}", method, size, seed,
                _learner_overrides(method, variant), VARIANTS[variant][1],
                random_baseline=not cells)
    linear = train_cell(out / "byol-linear_predictor", "byol", size, seed,
                        {"predictor": "linear"})
    # equal wall time: DirectPred's steps times the ratio of the two step costs, timed
    # back to back (the cells' own seconds are minutes apart and move with the load)
    directpred = cells.get(("directpred", "normal"))
    linear_time, ratio = None, None
    if directpred is not None:
        ratio = step_cost_ratio(size, seed, ("directpred", {}), ("byol", {"predictor": "linear"}))
        linear_time = train_cell(out / "byol-linear_predictor-equal_time", "byol", size, seed,
                                 {"predictor": "linear"},
                                 steps=max(1, round(directpred["steps"] * ratio)))
        result.params["step_cost_ratio_directpred_over_linear"] = round(ratio, 3)
    first = next(iter(cells.values()))
    random_knn, raw_knn = first["random_knn"], first["raw_knn"]
    rows = [[m, v, _fmt(c["knn"]), _fmt(c["effective_rank"], ".2f"),
             _fmt(c["collapse_level"]), str(c["steps"]), _fmt(c["images_per_s"], ".0f")]
            for (m, v), c in cells.items()]
    for name, cell in (("equal steps", linear), ("DirectPred's wall time", linear_time)):
        if cell is not None:
            rows.append([f"byol (SGD linear predictor, {name})", "normal", _fmt(cell["knn"]),
                         _fmt(cell["effective_rank"], ".2f"), _fmt(cell["collapse_level"]),
                         str(cell["steps"]), _fmt(cell["images_per_s"], ".0f")])
    result.tables.append(Table(f"k-NN accuracy and collapse after equal steps (random-init "
                               f"encoder k-NN: {_fmt(random_knn)}, raw pixels: "
                               f"{_fmt(raw_knn)})",
                               ["method", "variant", "k-NN", "eff. rank", "collapse level",
                                "steps", "images/s"], rows))
    _ablation_claims(result, cells, methods, variants, {"random-init encoder": random_knn,
                                                        "raw pixels": raw_knn},
                     [c for c in (linear, linear_time) if c is not None])
    return result


def _ablation_claims(result: ReproductionResult, cells: dict[tuple[str, str], AblationCell],
                     methods: tuple[str, ...],
                     variants: list[str],
                     baselines: dict[str, float | None], linear: list[AblationCell]) -> None:
    if "no stop-gradient" in variants:
        collapsed = [m for m in methods
                     if _collapsed(cells[m, "no stop-gradient"], cells[m, "normal"])]
        result.check("no stop-gradient collapses (level >= 0.5 or rank <= half of normal)",
                     f"{len(methods)}/{len(methods)} methods", f"{len(collapsed)}/{len(methods)}",
                     len(collapsed) == len(methods))
    if "no predictor" in variants:
        cell, normal = cells["simsiam", "no predictor"], cells["simsiam", "normal"]
        result.check("SimSiam without predictor collapses",
                     "level >= 0.5 or rank <= half of normal",
                     f"level {_fmt(cell['collapse_level'])}, rank "
                     f"{_fmt(cell['effective_rank'], '.1f')} vs "
                     f"{_fmt(normal['effective_rank'], '.1f')}",
                     _collapsed(cell, normal))
    healthy = [m for m in methods if not _collapsed(cells[m, "normal"])]
    result.check("the normal methods do not collapse", f"{len(methods)}/{len(methods)}",
                 f"{len(healthy)}/{len(methods)}", len(healthy) == len(methods))
    # a claim whose baseline went unmeasured fails visibly rather than leaving the table
    for name, baseline in baselines.items():
        better = [m for m in methods
                  if baseline is not None and (cells[m, "normal"]["knn"] or 0) > baseline]
        result.check(f"normal methods beat the {name} on k-NN",
                     f"{len(methods)}/{len(methods)} above {_fmt(baseline)}",
                     f"{len(better)}/{len(methods)}" if baseline is not None else "not measured",
                     baseline is not None and len(better) == len(methods))
    if "directpred" in methods:
        dp = cells["directpred", "normal"]["knn"] or 0.0
        for cell, budget in zip(linear, ("equal steps", "equal wall time"), strict=False):
            if cell["knn"] is not None:
                result.check(f"DirectPred matches or beats the SGD-trained linear predictor "
                             f"at {budget}", "k-NN >= linear - 0.02",
                             f"{dp:.3f} vs {cell['knn']:.3f} ({cell['steps']} steps)",
                             dp >= cell["knn"] - 0.02)


@reproduction("realdata-directpred-eps", "tian2021",
              "DirectPred eps and rho sweep on Fashion-MNIST (tian2021 Table 6 shape)")
def directpred_eps(out: Path, size: str, seed: int) -> ReproductionResult:
    eps_values = (0.0, 0.01, 0.1, 0.5) if size != "quick" else (0.0, 0.1)
    rho_values = (0.3, 0.9) if size != "quick" else (0.3,)
    result = ReproductionResult("realdata-directpred-eps", params=dict(BUDGETS[size]))
    rows, knn = [], {}
    for rho in rho_values:
        for eps in eps_values:
            cell = train_cell(out / f"rho{rho}-eps{eps}", "directpred", size, seed,
                              {"eps": eps, "rho": rho})
            knn[rho, eps] = cell["knn"] or 0.0
            rows.append([f"{rho:g}", f"{eps:g}", _fmt(cell["knn"]),
                         _fmt(cell["effective_rank"], ".2f"), str(cell["steps"])])
    result.tables.append(Table("DirectPred k-NN accuracy by eps and rho",
                               ["rho", "eps", "k-NN", "eff. rank", "steps"], rows))
    best = max(knn, key=lambda cell: knn[cell])
    # tian2021 Table 6 (STL-10): eps 0.1 best, eps 0.5 worst, every eps trains.
    result.check("every (eps, rho) trains without collapse", "all k-NN > 0.2",
                 f"min {min(knn.values()):.3f}", min(knn.values()) > 0.2)
    result.check("a small positive eps is at least as good as eps = 0 (rho = 0.3)",
                 "k-NN(eps=0.1) >= k-NN(eps=0) - 0.02",
                 f"{knn[0.3, 0.1]:.3f} vs {knn[0.3, 0.0]:.3f}",
                 knn[0.3, 0.1] >= knn[0.3, 0.0] - 0.02)
    result.params["best"] = {"rho": best[0], "eps": best[1], "knn": knn[best]}
    return result
