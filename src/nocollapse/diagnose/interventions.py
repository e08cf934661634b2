"""Interventions: what one branch of a diagnosis changes, and when it applies.

An :class:`Intervention` has a name, the cause it tests (the warning's vocabulary,
:data:`nocollapse.monitor.warnings.CAUSES`), a one-line rationale, a test of whether
it applies to the run (:class:`RunFacts`) and the change it makes to the branch's
configuration (a plain dict, as ``config.yaml`` holds it). :data:`INTERVENTIONS` is the
registry; :func:`register_intervention` adds one (a user's own)::

    @register_intervention("momentum 0.5", cause="optimiser momentum",
                           rationale="heavy-ball momentum amplifies a too-large step")
    def _(values, facts):
        values["optim"]["momentum"] = 0.5

``control`` changes nothing: it must collapse again, or the diagnosis says the collapse
did not reproduce from the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nocollapse.errors import ConfigError
from nocollapse.runio.records import ConfigDict

CONTROL = "control"
# augmentation options, strongest first: the first one the run uses is removed by
# "strongest augmentation op removed" (docs/diagnose.md#branches)
AUGMENT_OPS: tuple[tuple[str, str, object], ...] = (
    ("solarize", "solarize_p", 0.0), ("erase", "erase_p", 0.0), ("blur", "blur_p", 0.0),
    ("jitter", "jitter_p", 0.0), ("grayscale", "gray_p", 0.0),
    ("crop", "crop_scale", [1.0, 1.0]), ("flip", "flip_p", 0.0))
SIGMA2_WEAK = 0.01  # the augmentation signal below which "augmentation restored" applies


@dataclass(frozen=True)
class RunFacts:
    """What the interventions read of the run at its snapshot."""

    method: str
    predictor: str
    stop_gradient: bool
    target: str
    base_tau: float | None  # the EMA rate at the snapshot (None: no EMA target)
    lr: float
    weight_decay: float
    batch_size: int
    augment: dict[str, object]  # the run's data.augment overrides
    augment_ops: tuple[str, ...]  # ops the run's views use, strongest first
    sigma2: float | None  # sigma2_est before the snapshot


Change = Callable[[ConfigDict, RunFacts], None]
Applies = Callable[[RunFacts], bool]


@dataclass(frozen=True)
class Intervention:
    """One branch: ``change(values, facts)`` edits the branch's config dict in place."""

    name: str
    cause: str
    rationale: str
    applies: Applies
    change: Change


INTERVENTIONS: dict[str, Intervention] = {}


def register_intervention(name: str, *, cause: str, rationale: str,
                          applies: Applies = lambda facts: True) -> Callable[[Change], Change]:
    """Decorator: register ``change`` as the intervention ``name`` (refused if taken)."""
    def add(change: Change) -> Change:
        if name in INTERVENTIONS:
            raise ConfigError(f"an intervention named {name!r} is already registered")
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"intervention name {name!r} must be a plain folder name")
        INTERVENTIONS[name] = Intervention(name, cause, rationale, applies, change)
        return change
    return add


def _folder(name: str) -> str:
    return name.replace(" ", "-").replace("/", "-")


@register_intervention(CONTROL, cause="-", rationale="nothing changed: must collapse again")
def _control(values: ConfigDict, facts: RunFacts) -> None:
    return None


@register_intervention("weight decay x0.1", cause="weight decay too high",
                       rationale="weight decay shrinks every weight each step; a tenth of it",
                       applies=lambda facts: facts.weight_decay > 0)
def _weight_decay(values: ConfigDict, facts: RunFacts) -> None:
    values["optim"]["weight_decay"] = facts.weight_decay / 10


@register_intervention("learning rate x0.1", cause="learning rate too high",
                       rationale="a step too large leaves the basin of the learned solution",
                       applies=lambda facts: facts.lr > 0)
def _learning_rate(values: ConfigDict, facts: RunFacts) -> None:
    values["optim"]["lr"] = facts.lr / 10


@register_intervention("predictor lr x0.1", cause="predictor learning rate too high",
                       rationale="a predictor that adapts too fast chases the encoder "
                       "(tian2021: alpha_p)",
                       applies=lambda facts: facts.predictor in ("mlp", "linear"))
def _predictor_lr(values: ConfigDict, facts: RunFacts) -> None:
    scale = float(values["optim"].get("predictor_lr_scale", 1.0))
    values["optim"]["predictor_lr_scale"] = scale / 10


@register_intervention("slower EMA", cause="EMA target too fast",
                       rationale="a slower target (1 - tau ten times smaller) damps the "
                       "online/target feedback",
                       applies=lambda facts: facts.target == "ema" and facts.base_tau is not None
                       and facts.base_tau < 1)
def _slower_ema(values: ConfigDict, facts: RunFacts) -> None:
    assert facts.base_tau is not None
    slower = 1 - (1 - facts.base_tau) / 10
    values["learner"].update(base_tau=slower, final_tau=slower)


@register_intervention("stop-gradient restored", cause="no stop-gradient",
                       rationale="without it the gradient through both branches drives W -> 0 "
                       "(tian2021 Theorem 2)",
                       applies=lambda facts: not facts.stop_gradient)
def _stop_gradient(values: ConfigDict, facts: RunFacts) -> None:
    values["learner"]["stop_gradient"] = True


@register_intervention("predictor restored", cause="no predictor",
                       rationale="with Wp = I the linear theory gives W -> 0 (tian2021); a "
                       "fresh MLP predictor",
                       applies=lambda facts: facts.predictor in ("none", "identity"))
def _predictor(values: ConfigDict, facts: RunFacts) -> None:
    values["learner"]["predictor"] = "mlp"
    values["learner"]["predictor_options"] = {}


@register_intervention("strongest augmentation op removed", cause="augmentation op",
                       rationale="one augmentation can make the views' shared content "
                       "unlearnable (solarize under IsoLoss)",
                       applies=lambda facts: bool(facts.augment_ops))
def _strongest_op(values: ConfigDict, facts: RunFacts) -> None:
    op = facts.augment_ops[0]
    key, off = next((key, off) for name, key, off in AUGMENT_OPS if name == op)
    values["data"]["augment"] = {**values["data"].get("augment", {}), key: off}


@register_intervention("augmentation restored", cause="too little augmentation",
                       rationale="identical views are matched without learning anything; the "
                       "preset's augmentation",
                       applies=lambda facts: facts.sigma2 is not None
                       and facts.sigma2 < SIGMA2_WEAK)
def _augmentation(values: ConfigDict, facts: RunFacts) -> None:
    values["data"]["augment"] = {}


@register_intervention("batch x4", cause="batch too small",
                       rationale="more rows per batch: a better-conditioned batch statistic and "
                       "a per-batch rank less bounded by the rows",
                       applies=lambda facts: True)
def _batch(values: ConfigDict, facts: RunFacts) -> None:
    values["data"]["batch_size"] = facts.batch_size * 4


def branch_folder(name: str) -> str:
    """The branch's folder name under ``RUN_DIR/diagnosis/``."""
    return _folder(name)


def select(facts: RunFacts, only: list[str] | None = None) -> list[Intervention]:
    """The interventions that apply (``only``: those names, plus the control), registry order."""
    if only:
        unknown = sorted(set(only) - set(INTERVENTIONS))
        if unknown:
            raise ConfigError(f"--only {', '.join(unknown)}: no such intervention; registered: "
                              f"{', '.join(INTERVENTIONS)}")
    chosen = [i for i in INTERVENTIONS.values()
              if i.name == CONTROL or not only or i.name in only]
    return [i for i in chosen if i.name == CONTROL or i.applies(facts)]
