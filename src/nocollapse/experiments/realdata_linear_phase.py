"""``realdata-linear-phase``: tian2021's collapse threshold in its own setting, on real data.

The theory's model exactly: a linear map ``W`` and a symmetrised linear predictor ``Wp``
trained by SGD on the L2 loss ``1/2 ||Wp W x1 - sg(Wa x2)||^2`` with weight decay, no batch
norm, with the gradient of the theory engine (:func:`nocollapse.theory.linear_sgd.
parameter_grads`), on **frozen** inputs: Fashion-MNIST's raw pixels (normalised as the
data preset does) under the preset's real augmentations, ``q`` views of each image drawn
once and reused (each step pairs two different cached views of each image). The inputs'
modes ``x_j``, ``sigma_j^2`` and thresholds ``eta_c,j`` are measured from the same cached
views (:func:`nocollapse.diagnostics.data_modes`); nothing is fitted to the runs.

Grid: weight decay at fractions of the largest threshold ``eta_c,1`` x the target (SimSiam,
``Wa = W``, and EMA targets ``Wa += lr beta (W - Wa)`` at per-step momenta
:data:`EMAS`). Each run starts on the theory's invariant (``W W^T = Wp^T Wp``) with ``W``'s
rows along the data's leading modes and ``p = 0.6``, above every mode's unstable fixed
point, so below a mode's threshold nothing pushes it into its collapse basin. Claims:

(a) per target, the empirical complete-collapse boundary (geometric mean of the highest
    learned and the next weight decay) within a factor 1.5 of ``eta_c,1`` at the run's
    measured ``tau`` (the magnitude ratio of target to online outputs, median over the
    run of the highest learned cell);
(b) the boundary moves with ``tau`` as predicted: (slowest EMA / SimSiam) boundary ratio
    over the predicted ``tau^2`` ratio within a factor 1.5;
(c) below ``eta_c,1`` the collapse is dimensional: at weight decays between the measured
    thresholds (SimSiam) the number of modes the map keeps equals ``#{j : eta < eta_c,j}``;
(d) the regime: every cell runs ``2 eta t >= 10`` at the boundary (``t = lr * steps``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nocollapse.data.digits import load_digits_dataset
from nocollapse.data.presets import make_augment, preset_for_images
from nocollapse.data.registry import load_default
from nocollapse.diagnostics import DataModes, data_modes, mode_critical_etas
from nocollapse.experiments.registry import reproduction
from nocollapse.experiments.result import ReproductionResult, Table
from nocollapse.report.figures import new_figure, save_figure
from nocollapse.theory.linear_flow import FlowConfig
from nocollapse.theory.linear_sgd import parameter_grads

FRACTIONS = (0.5, 0.7, 0.85, 0.95, 1.05, 1.2, 1.5, 2.0, 3.0)  # weight decay / eta_c,1
EMAS = (0.99, 0.999)  # per-step EMA momenta beside SimSiam (momentum None)
BAND = 1.5  # the claims' factor
HORIZON = 10.0  # 2 eta t the claims need at the boundary
P0 = 0.6  # the predictor's and the map's initial gain along each kept mode
# size -> images, views per image, outputs of the map, SGD steps at the boundary's lr
SIZES: dict[str, dict[str, int]] = {
    "quick": {"images": 512, "views": 4, "outputs": 4, "steps": 300},
    "default": {"images": 4096, "views": 4, "outputs": 8, "steps": 1500},
    "full": {"images": 16384, "views": 8, "outputs": 16, "steps": 3000},
}


@dataclass(frozen=True)
class LinearCell:
    """One trained map: its singular values (the gains of its modes, descending), its ``tau``.

    Singular values, not ``||W u_j||`` along ``X``'s eigenvectors: with ``X'`` not sharing
    ``X``'s eigenvectors (real augmentations) the learned directions are those of the pair
    ``(X, X + X')`` (tian2021 Appendix D), so a surviving mode spreads over several ``u_j``.
    """

    eta: float
    momentum: float | None
    gains: np.ndarray
    tau: float

    def kept(self, modes: DataModes) -> int:
        """Modes still held: the ``k``-th gain above half the ``k``-th mode's smallest
        non-zero fixed point, ``tau / (2 (1 + sigma_k^2))`` at ``tau = 1``."""
        floor = 0.25 / (1.0 + modes.sigma2[: len(self.gains)])
        return int(np.sum(self.gains > floor))


def cached_views(size: str, seed: int) -> np.ndarray:
    """``(N, q, n)`` float64 augmented views of the first ``N`` training images (raw pixels
    after the preset's normalisation), drawn once: Fashion-MNIST, digits at ``quick``."""
    budget = SIZES[size]
    data = load_digits_dataset("train") if size == "quick" else load_default(split="train")
    images = torch.as_tensor(data.images[: budget["images"]])
    augment = make_augment(preset_for_images(images))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        views = torch.stack([augment(images, generator) for _ in range(budget["views"])], 1)
    return views.reshape(views.shape[0], views.shape[1], -1).double().numpy()


def train_map(views: np.ndarray, modes: DataModes, eta: float, momentum: float | None,
              lr: float, steps: int, outputs: int, seed: int, batch: int = 256) -> LinearCell:
    """SGD of the theory's linear model on pairs of different cached views of each image."""
    n, q = views.shape[:2]
    rng = np.random.default_rng(seed)
    cfg = FlowConfig(X=np.zeros((1, 1)), Xp=np.zeros((1, 1)), eta=eta,
                     beta=None if momentum is None else (1.0 - momentum) / lr, symmetric=True)
    W = P0 * modes.basis[:, :outputs].T.copy()
    Wp, Wa = P0 * np.eye(outputs), W.copy()
    taus: list[float] = []
    for step in range(steps):
        rows = rng.integers(0, n, batch)
        first = rng.integers(0, q, batch)
        second = (first + rng.integers(1, q, batch)) % q
        X1, X2 = views[rows, first], views[rows, second]
        gWp, gW = parameter_grads(Wp, W, Wa, X1, X2, "l2", cfg)
        Wp = Wp - lr * (0.5 * (gWp + gWp.T) + eta * Wp)
        W_next = W - lr * (gW + eta * W)
        if cfg.beta is not None:
            Wa = Wa + lr * cfg.beta * (W - Wa)
            if step % 10 == 0:
                online = float(np.linalg.norm(X1 @ W.T))
                if online > 0:
                    taus.append(float(np.linalg.norm(X1 @ Wa.T)) / online)
        W = W_next
    gains = np.linalg.svd(W, compute_uv=False)
    return LinearCell(eta, momentum, gains, statistics.median(taus) if taus else 1.0)


def _boundary(cells: list[LinearCell], modes: DataModes) -> tuple[float | None, LinearCell | None]:
    """Geometric mean of the highest learned weight decay and the next; that learned cell."""
    ordered = sorted(cells, key=lambda c: c.eta)
    learned = [i for i, c in enumerate(ordered) if c.kept(modes) > 0]
    if not learned or learned[-1] == len(ordered) - 1:
        return None, ordered[learned[-1]] if learned else None
    top = learned[-1]
    return math.sqrt(ordered[top].eta * ordered[top + 1].eta), ordered[top]


def _label(momentum: float | None) -> str:
    return "SimSiam (Wa = W)" if momentum is None else f"EMA {momentum:g}"


@reproduction("realdata-linear-phase", "tian2021",
              "the collapse threshold in the theory's own linear setting on frozen "
              "Fashion-MNIST pixels with real augmentations, against eta_c,j measured "
              "from the data")
def linear_phase(out: Path, size: str, seed: int) -> ReproductionResult:
    return phase_on_views(out, cached_views(size, seed), SIZES[size], seed, size)


def phase_on_views(out: Path, views: np.ndarray, budget: dict[str, int], seed: int,
                   size: str = "custom") -> ReproductionResult:
    """The reproduction on any cached ``(N, q, n)`` views (``budget``: as :data:`SIZES`'
    entries; its ``outputs`` and ``steps`` are used), e.g. a frozen backbone's features."""
    modes = data_modes(views)
    eta_c = mode_critical_etas(modes)
    outputs, steps = budget["outputs"], budget["steps"]
    # the step: the leading mode's curvature (x_1 + x'_1) p^2 times lr at 0.2
    lr = 0.2 / float(modes.x[0] * (1.0 + modes.sigma2[0]))
    result = ReproductionResult("realdata-linear-phase", params={
        "size": size, "seed": seed, "images": views.shape[0], "views": views.shape[1],
        "features": views.shape[2], "outputs": outputs, "lr": lr, "steps": steps,
        "fractions": list(FRACTIONS), "emas": [None, *EMAS]})
    result.tables.append(Table(
        "The data's modes at the map's input (uncentred X, q-view estimate)",
        ["mode j", "x_j", "sigma_j^2", "eta_c,j"],
        [[str(j + 1), f"{modes.x[j]:.4g}", f"{modes.sigma2[j]:.3g}", f"{eta_c[j]:.4g}"]
         for j in range(min(outputs + 2, len(modes.x)))]))
    centred = data_modes(views - views.mean(axis=(0, 1)))
    result.params["eta_c1_centred"] = float(mode_critical_etas(centred)[0])
    rows, boundaries, grid = [], {}, {}
    for momentum in (None, *EMAS):
        cells = [train_map(views, modes, f * float(eta_c[0]), momentum, lr, steps, outputs,
                           seed) for f in FRACTIONS]
        grid[momentum] = cells
        boundary, nearest = _boundary(cells, modes)
        tau = nearest.tau if nearest is not None else 1.0
        predicted = float(eta_c[0]) * tau**2
        boundaries[momentum] = (boundary, predicted, tau)
        rows.append([_label(momentum), f"{tau:.3f}", f"{predicted:.4g}",
                     "-" if boundary is None else f"{boundary:.4g}",
                     " ".join(str(c.kept(modes)) for c in cells)])
        ratio = None if boundary is None else boundary / predicted
        result.check(f"(a) {_label(momentum)}: boundary within {BAND}x of eta_c,1 tau^2",
                     f"{predicted:.4g} (tau {tau:.3f})",
                     "not inside the grid" if ratio is None else
                     f"{boundary:.4g} ({ratio:.2f}x)",
                     ratio is not None and 1 / BAND <= ratio <= BAND)
    result.tables.append(Table(
        "Complete-collapse boundary per target (weight decay grid: fractions "
        f"{', '.join(f'{f:g}' for f in FRACTIONS)} of eta_c,1 = {eta_c[0]:.4g})",
        ["target", "tau measured", "eta_c,1 tau^2", "boundary", "modes kept per cell"], rows))
    (simsiam, predicted_s, tau_s), (slow, predicted_e, tau_e) = (boundaries[None],
                                                                 boundaries[EMAS[-1]])
    moved = None if simsiam is None or slow is None else (slow / simsiam) / (
        predicted_e / predicted_s)
    result.check(f"(b) the boundary moves with tau: (EMA {EMAS[-1]:g} / SimSiam) over "
                 "the predicted tau^2 ratio", f"1 within {BAND}x "
                 f"(predicted ratio {(tau_e / tau_s) ** 2:.3f})",
                 "boundary not inside the grid" if moved is None else f"{moved:.3f}",
                 moved is not None and 1 / BAND <= moved <= BAND)
    _dimensional(result, views, modes, eta_c, lr, outputs, seed)
    result.figures.append(_plot(out, grid, boundaries, modes, float(eta_c[0])))
    horizon = 2.0 * float(eta_c[0]) * lr * steps
    result.check("(d) the regime: 2 eta_c,1 t at the boundary", f">= {HORIZON:g}",
                 f"{horizon:.1f}", horizon >= HORIZON)
    return result


def _plot(out: Path, grid: dict[float | None, list[LinearCell]],
          boundaries: dict[float | None, tuple[float | None, float, float]], modes: DataModes,
          eta_c1: float) -> str:
    """Weight decay / eta_c,1 x target: learned (o) and collapsed (x) cells, the predicted
    boundary eta_c,1 tau^2 (|) and the measured one (dashed)."""
    figure, axes = new_figure()
    ax = axes[0, 0]
    for row, (momentum, cells) in enumerate(grid.items()):
        for cell in cells:
            learned = cell.kept(modes) > 0
            ax.plot(cell.eta / eta_c1, row, "o" if learned else "x",
                    color="tab:blue" if learned else "tab:red")
        boundary, predicted, _ = boundaries[momentum]
        ax.plot([predicted / eta_c1] * 2, [row - 0.3, row + 0.3], color="black")
        if boundary is not None:
            ax.plot([boundary / eta_c1] * 2, [row - 0.3, row + 0.3], "--", color="grey")
    ax.set_xscale("log")
    ax.set_yticks(range(len(grid)), [_label(m) for m in grid])
    ax.set_xlabel("weight decay / eta_c,1 (measured from the data)")
    ax.set_title("linear map on frozen pixels: learned (o), collapsed (x); "
                 "| eta_c,1 tau^2, -- boundary", fontsize=8)
    save_figure(figure, out / "linear_phase.png")
    return "linear_phase.png"


def _dimensional(result: ReproductionResult, views: np.ndarray, modes: DataModes,
                 eta_c: np.ndarray, lr: float, outputs: int, seed: int) -> None:
    """Claim (c): between consecutive distinct thresholds (SimSiam), the modes kept."""
    thresholds = eta_c[:outputs]
    gaps = [math.sqrt(thresholds[j] * thresholds[j + 1]) for j in range(len(thresholds) - 1)
            if thresholds[j] > 1.5 * thresholds[j + 1]][:3]
    rows, agree = [], True
    for eta in gaps:
        steps = math.ceil(1.2 * HORIZON / (2.0 * eta * lr))
        cell = train_map(views, modes, eta, None, lr, steps, outputs, seed)
        expected = int(np.sum(thresholds > eta))
        agree = agree and cell.kept(modes) == expected
        rows.append([f"{eta:.4g}", str(steps), str(expected), str(cell.kept(modes)),
                     " ".join(f"{g:.3f}" for g in cell.gains)])
    result.tables.append(Table("Dimensional collapse (SimSiam): modes kept between thresholds",
                               ["weight decay", "steps", "predicted modes", "kept",
                                "singular values of W"], rows))
    result.check("(c) between thresholds the map keeps #{j : eta < eta_c,j} modes",
                 f"{len(rows)} weight decays, each exact",
                 f"{sum(1 for r in rows if r[2] == r[3])} of {len(rows)}", bool(rows) and agree)
