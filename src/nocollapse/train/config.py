"""Training configuration: a tree of dataclasses read from YAML and ``key=value`` overrides.

>>> config = load_config("configs/cifar10_resnet18_simsiam.yaml", ["optim.lr=0.03", "epochs=5"])
>>> config.to_dict()["optim"]["lr"]
0.03

Every key is checked: an unknown key is refused with the closest valid names,
and a negative learning rate, weight decay or epoch count with its valid range.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nocollapse.errors import (
    ConfigError,
    check_choice,
    check_in_range,
    check_nonnegative,
    check_positive,
    quoted,
)
from nocollapse.methods import PRESETS, LearnerConfig, learner_config
from nocollapse.monitor import MonitorConfig
from nocollapse.runio import load_yaml
from nocollapse.runio.records import ConfigDict
from nocollapse.train.sections import (
    DataConfig,
    DeviceConfig,
    EvalConfig,
    OptimConfig,
    check_optional_positive,
    check_path,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
MAX_SEED = 2**32 - 1  # seeds derived from it (seed * 100_003 + epoch) must fit torch's 64 bits

__all__ = ["CPU_DEFAULT", "DataConfig", "DeviceConfig", "EvalConfig", "OptimConfig", "TrainConfig",
           "load_config", "merge", "parse_overrides", "read_yaml", "resolve_learner",
           "run_context", "valid_keys"]


@dataclass
class TrainConfig:
    """Everything a run needs; ``to_dict`` is what ``config.yaml`` of a run holds."""

    method: str = "simsiam"
    # The method preset with the config's `learner` overrides (predictor, loss, base_tau, ...)
    # applied: resolved and validated by from_dict, before anything is created.
    learner: LearnerConfig = field(default_factory=lambda: learner_config("simsiam"))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Collapse diagnostics every monitor.every steps, spectra per epoch, early warnings.
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    epochs: int = 100
    max_steps: int | None = None
    # Stop (with a checkpoint) after this many seconds of this invocation; --resume continues.
    time_budget_s: float | None = None
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 1
    out: str = "runs/train"
    # Keep checkpoints/presuspect.pt: the state at the log before the first suspect one, for
    # `nocollapse diagnose` (docs/diagnose.md). A copy of the state each log until then.
    presuspect_snapshot: bool = True
    # A checkpoint whose learner weights start this run (optimiser, schedule and step fresh):
    # a diagnosis branch starts from the run's snapshot this way.
    init_from: str | None = None

    def to_dict(self) -> ConfigDict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: ConfigDict) -> TrainConfig:
        """Build and validate a config; unknown keys raise :class:`ConfigError`.

        ``values["learner"]`` holds overrides of the preset ``values["method"]``
        (see :func:`nocollapse.methods.learner_config`); the result holds the resolved
        :class:`~nocollapse.methods.LearnerConfig`.
        """
        values = dict(values or {})
        overrides = values.pop("learner", None)
        config = _build(cls, values, prefix="")
        return dataclasses.replace(config, learner=resolve_learner(config.method, overrides)
                                   ).validate()

    def validate(self) -> TrainConfig:
        """Refuse out-of-range values, naming the value, the valid range and the key: each
        section checks its own, this its top-level ones. Returns the config with every
        section as its ``validate`` returns it (``self`` is not changed)."""
        optim, data, monitor = self.optim.validate(), self.data.validate(), self.monitor.validate()
        device, evaluation = self.device.validate(), self.eval.validate()
        check_nonnegative("epochs", self.epochs)
        check_in_range("seed", self.seed, 0, MAX_SEED)
        check_path("out", self.out)
        check_path("init_from", self.init_from)
        check_positive("log_every", self.log_every)
        check_positive("checkpoint_every", self.checkpoint_every)
        check_optional_positive("max_steps", self.max_steps)
        check_optional_positive("time_budget_s", self.time_budget_s)
        if self.epochs == 0 and self.max_steps is None:
            raise ConfigError("epochs=0 with no max_steps trains nothing; set epochs >= 1")
        return dataclasses.replace(self, optim=optim, data=data, monitor=monitor, device=device,
                                   eval=evaluation)


def run_context(config: TrainConfig) -> dict[str, float | str | bool]:
    """Facts for :func:`~nocollapse.monitor.likely_causes` from a ``TrainConfig``.

    ``weight_decay`` and ``lr`` from ``config.optim``; ``predictor`` and ``stop_gradient``
    from the resolved ``config.learner``.
    """
    return {"weight_decay": config.optim.weight_decay, "lr": config.optim.lr,
            "predictor": config.learner.predictor,
            "stop_gradient": config.learner.stop_gradient}


def resolve_learner(method: str, overrides: object) -> LearnerConfig:
    """The preset ``method`` with ``overrides`` (a mapping), each value typed as its field."""
    check_choice("method", method, tuple(PRESETS))
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"learner must be a mapping (e.g. learner.predictor=linear), "
                          f"got {quoted(overrides)}")
    hints = typing.get_type_hints(LearnerConfig)
    typed = {key: _coerce(f"learner.{key}", value, hints[key]) if key in hints else value
             for key, value in overrides.items()}
    return learner_config(method, **typed)


# What `nocollapse train` runs with no argument (configs/cpu_default.yaml holds the same
# values; a test keeps them equal): a few minutes on 2 CPU cores, measured in the report.
CPU_DEFAULT: ConfigDict = {
    "method": "simsiam",
    # Features keep the 4x4 map (2048 values): global average pooling throws away the layout
    # that tells aligned Fashion-MNIST classes apart (measured in docs/quality.md).
    # The SimSiam preset's reduction (the mean of the two directions, as
    # facebookresearch/simsiam). The recipe was tuned with their sum at lr 0.06 and weight
    # decay 5e-4; under SGD the mean at twice the lr and half the decay takes the same steps
    # (tests/test_symmetric_reduction.py checks it bit for bit), so the optimiser below is that.
    "learner": {"backbone": "small_convnet_4x4"},
    # Brightness/contrast jitter: the 28x1 preset has none, and without it a few CPU minutes of
    # SimSiam do not beat a random encoder's k-NN accuracy (measured; see the train report).
    # All 60000 training images: more images beat more epochs on a subset at equal steps.
    "data": {"name": "default", "batch_size": 128, "subset": None, "test_subset": None,
             "augment": {"jitter": [0.4, 0.4, 0.0, 0.0], "jitter_p": 0.8,
                         # solarize (invert pixels >= 0.5) on 40% of the views: +1.4 points of
                         # k-NN at 8 epochs (docs/quality.md, trials 23-28)
                         "solarize_p": 0.4}},
    "optim": {"name": "sgd", "lr": 0.12, "momentum": 0.9, "weight_decay": 2.5e-4,
              "warmup_epochs": 0.0},
    # 8 epochs (3744 steps, ~170 s on 2 idle cores): the curve's plateau (docs/quality.md).
    # No time budget: the result is the same on a slower host (time_budget_s=S stays an
    # option, and a run it stops early says so in its result table's title).
    "epochs": 8,
    "time_budget_s": None,
    "log_every": 10,
    "checkpoint_every": 1,
    "eval": {"knn_every": 936, "monitor_bank": 10000, "monitor_test": 2000, "knn_k": 200,
             "knn_t": 0.1, "random_baseline": False,
             # the supervised bound trains as long as the run: its row shows the command that
             # measures it (nocollapse evaluate RUN --baselines) until the cache holds it
             "baselines": ["raw_pixels", "random_init"]},
    "device": {"accelerator": "cpu"},
    "out": "runs/default",
}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: ConfigDict | None = None) -> TrainConfig:
    """Defaults, then ``base``, then the YAML file at ``path``, then ``key=value`` overrides."""
    values: ConfigDict = dict(base or {})
    if path is not None:
        values = merge(values, read_yaml(path))
    values = merge(values, parse_overrides(overrides or []))
    return TrainConfig.from_dict(values)


def read_yaml(path: str | Path) -> ConfigDict:
    """A YAML mapping from ``path``, with a clear error when it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} {problem}; pass an existing YAML file "
                          "(the shipped ones are in configs/)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    loaded = load_yaml(text, f"config file {path}")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got "
                          f"{type(loaded).__name__}")
    return loaded


def parse_overrides(items: list[str]) -> ConfigDict:
    """``["optim.lr=0.1", "data.name=cifar10"]`` -> nested dict; values parsed as YAML."""
    result: ConfigDict = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(part.strip() for part in parts):
            raise ConfigError(f"override {quoted(item)} is not key=value (for example "
                              "optim.lr=0.1)")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {quoted(item)} conflicts with an earlier one for "
                                  f"{part!r}")
        if parts[-1] in node and not isinstance(node[parts[-1]], dict):
            raise ConfigError(f"override {key.strip()!r} is given twice; give it once (the "
                              "command line would otherwise keep only the last)")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"override {quoted(item)} conflicts with an earlier one for "
                              f"{key.strip()!r}.*")
        node[parts[-1]] = _override_value(item, text)
    return result


def _override_value(item: str, text: str) -> object:
    """The YAML value of an override's right-hand side (``None`` when empty)."""
    if not text.strip():
        return None
    try:
        return load_yaml(text, "value")
    except ConfigError as error:
        raise ConfigError(f"override {quoted(item)}: cannot read the value ({error}); quote "
                          "strings that YAML would parse (for example key='[a')") from None


def merge(base: ConfigDict, update: ConfigDict) -> ConfigDict:
    """Recursive dict merge; ``update`` wins. Free-form sections merge key by key too."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def valid_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key a config accepts (free-form sections end with ``.*``)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            keys += valid_keys(hint, f"{prefix}{f.name}.")
        elif typing.get_origin(hint) is dict:
            keys.append(f"{prefix}{f.name}.*")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _build(cls: type[T], values: ConfigDict, prefix: str) -> T:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got "
                          f"{quoted(values)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, object] = {}
    for key, value in values.items():
        if key not in names:
            _unknown(f"{prefix}{key}")
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", value, hint)
    return cls(**kwargs)


def _unknown(key: str) -> typing.NoReturn:
    candidates = [k.removesuffix(".*") for k in valid_keys()]
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    leaf = key.rsplit(".", 1)[-1]
    close += [k for k in candidates if k.rsplit(".", 1)[-1] == leaf and k not in close]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else ""
    raise ConfigError(f"unknown config key {key!r}{hint} (valid keys: "
                      f"{', '.join(valid_keys())})")


def _coerce(key: str, value: Any, hint: object) -> object:
    """Convert a YAML value to the field's type (YAML reads ``1e-3`` as a string)."""
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)
                and type(None) in args)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping (e.g. {key}.name=value), got "
                              f"{quoted(value)}")
        return dict(value)
    try:
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                return value.lower() in ("true", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if hint is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if value is None or isinstance(value, dict | list):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        return value
    raise ConfigError(f"{key}={quoted(value)} is not a valid {getattr(hint, '__name__', hint)}")

