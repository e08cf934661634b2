"""A method is a preset of switches: ``LearnerConfig`` and the published presets.

``learner_config("directpred", eps=0.01)`` is the DirectPred preset with one option
changed; every ablation (no predictor, no stop-gradient, another loss) is one key.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nocollapse.errors import ConfigError, check_choice, check_in_range, check_positive
from nocollapse.losses import LOSSES
from nocollapse.models import BACKBONES
from nocollapse.predictors import PREDICTORS, check_predictor_options
from nocollapse.predictors.options import OptionValue, coerce_options

TARGETS = ("ema", "stopgrad")
REDUCTIONS = ("sum", "mean")


@dataclass
class LearnerConfig:
    """Every switch of a Siamese learner.

    ``target``: ``"ema"`` (BYOL: a momentum copy, ``tau`` following a cosine schedule
    from ``base_tau`` to ``final_tau``) or ``"stopgrad"`` (SimSiam: the online network
    under stop-gradient). ``stop_gradient=False`` is the ablation that must collapse:
    the target branch is the online network *with* gradients (the EMA copy is unused).
    ``predictor_options``: the options of ``predictor`` that differ from its defaults,
    checked against the schema of its registry entry (docs/learner.md).
    ``symmetric=False`` trains on one direction only (view 1 predicts view 2);
    ``symmetric_reduction``: how the two directions combine, ``"sum"`` (BYOL and the
    spectral methods' code) or ``"mean"`` (facebookresearch/simsiam: x 0.5). With weight
    decay the two are not a learning-rate rescaling of each other: the gradient-to-decay
    ratio halves (docs/theory.md#theory-in-a-run).
    """

    backbone: str = "small_convnet"
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    proj_last_bn: bool = False
    predictor: str = "mlp"
    pred_hidden_dim: int = 512
    predictor_options: dict[str, OptionValue] = field(default_factory=dict)
    target: str = "stopgrad"
    stop_gradient: bool = True
    base_tau: float = 0.996
    final_tau: float = 1.0
    loss: str = "cosine"
    symmetric: bool = True
    symmetric_reduction: str = "sum"

    def validate(self) -> LearnerConfig:
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("predictor", self.predictor, tuple(PREDICTORS))
        check_choice("target", self.target, TARGETS)
        check_choice("loss", self.loss, tuple(LOSSES))
        check_choice("symmetric_reduction", self.symmetric_reduction, REDUCTIONS)
        for name in ("proj_hidden_dim", "proj_dim", "proj_layers", "pred_hidden_dim"):
            check_positive(name, getattr(self, name))
        check_in_range("base_tau", self.base_tau, 0.0, 1.0)
        check_in_range("final_tau", self.final_tau, 0.0, 1.0)
        loss, predictor = LOSSES[self.loss], PREDICTORS[self.predictor]
        if loss.detaches_target and not self.stop_gradient:
            base = (f"use loss={loss.base} (the surrogate's base loss)" if loss.base
                    else "use a loss that does not detach its target")
            raise ConfigError(f"loss={self.loss!r} detaches its target inside the surrogate, so "
                              "stop_gradient=false would change nothing; for the no-stop-gradient "
                              f"ablation {base}")
        if loss.needs_spectral and not predictor.spectral:
            spectral = [name for name, entry in PREDICTORS.items() if entry.spectral]
            raise ConfigError(f"loss={self.loss!r} needs a closed-form predictor matrix; use "
                              f"predictor one of {', '.join(spectral)} (got {self.predictor!r})")
        check_predictor_options(self.predictor, self.predictor_options,
                                prefix="predictor_options.")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # SimSiam (Chen & He 2021): MLP predictor with a bottleneck, no EMA, negative cosine,
    # the two directions averaged (facebookresearch/simsiam: x 0.5).
    "simsiam": {"predictor": "mlp", "target": "stopgrad", "loss": "cosine",
                "proj_layers": 3, "proj_last_bn": True, "pred_hidden_dim": 128,
                "symmetric_reduction": "mean"},
    # BYOL (Grill et al. 2020): MLP predictor, EMA 0.996 -> 1, normalised L2, directions
    # summed (as every preset but SimSiam: the authors' code of each sums them).
    "byol": {"predictor": "mlp", "target": "ema", "base_tau": 0.996, "final_tau": 1.0,
             "loss": "normalized-l2"},
    # DirectPred (tian2021): authors' command rho 0.3, eps 0.01 is their default; the
    # best table entry (and ours) is eps 0.1; EMA 0.996 as in their STL-10 runs.
    "directpred": {"predictor": "directpred", "target": "ema", "base_tau": 0.996,
                   "final_tau": 1.0, "loss": "normalized-l2",
                   "predictor_options": {"rho": 0.3, "eps": 0.1, "freq": 1}},
    # DirectCopy as fmi-basel/implicit-var-reg computes it (its DirectPred method with
    # dp_alpha 1, its EMA recipe): Wp = F_hat / s_max + 0.25 I, F_hat from zeros, one update
    # per view at rate 0.998, each view predicted with its fresh matrix (the kind's defaults
    # correlation=per-view, update=each-view); target EMA 0.99 -> 1; 2 - 2 cos, summed.
    "directcopy": {"predictor": "directcopy", "target": "ema", "base_tau": 0.99,
                   "final_tau": 1.0, "loss": "normalized-l2",
                   "predictor_options": {"rho": 0.998, "eps": 0.25, "freq": 1}},
    # IsoLoss (halvagal2023) no-EMA recipe: closed-form predictor, tau 0.5; alpha 0.5 as in
    # all eight of the authors' deep-network configs (dp_alpha: 0.5; alpha 1 is their toy's).
    "isoloss": {"predictor": "closed-form", "target": "stopgrad", "loss": "isoloss-cosine",
                "predictor_options": {"rho": 0.5, "eps": 0.0, "alpha": 0.5, "freq": 1}},
}


def method_names() -> tuple[str, ...]:
    """The method presets' names, as registered now (a preset added to ``PRESETS`` later
    is included)."""
    return tuple(PRESETS)


def predictor_option_names() -> list[str]:
    """Every option a registered predictor declares: ``learner_config`` takes them flat."""
    names = {name: None for entry in PREDICTORS.values() for name in entry.options}
    return list(names)


def learner_config(method: str, **overrides: Any) -> LearnerConfig:
    """The preset ``method`` with ``overrides``; predictor options may be given flat (``eps=``).

    ``predictor_options={...}`` changes the named options only; the preset's others stay.
    A ``predictor`` other than the preset's starts from that predictor's defaults (the
    preset's predictor options are its predictor's); an option set to ``None`` is dropped,
    so its default applies. An unknown key is refused with the closest valid names.
    """
    check_choice("method", method, method_names())
    preset = PRESETS[method]
    names = [f.name for f in dataclasses.fields(LearnerConfig)]
    option_names = predictor_option_names()
    fields: dict[str, Any] = {}
    options: dict[str, OptionValue] = {}
    for key, value in overrides.items():
        if key in option_names:
            options[key] = value
        elif key == "predictor_options":
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"predictor_options must be a mapping of option names to "
                                  f"values, got {value!r}")
            options.update(value or {})  # key by key: the preset's others stay
        elif key in names:
            fields[key] = value
        else:
            close = difflib.get_close_matches(key, names + option_names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown learner option {key!r}{hint} valid: "
                              f"{', '.join(names + option_names)}")
    predictor = fields.get("predictor", preset.get("predictor"))
    kept = preset.get("predictor_options", {}) if predictor == preset.get("predictor") else {}
    merged = {name: value for name, value in {**kept, **options}.items() if value is not None}
    entry = PREDICTORS.get(str(predictor))
    if entry is not None:
        merged = coerce_options(merged, entry.options)
    return LearnerConfig(**{**preset, **fields, "predictor_options": merged}).validate()
