"""The named reproductions: a registry filled by the modules that define them.

Each reproduction is a function ``run(out: Path, size: str, seed: int) ->
ReproductionResult`` registered under a name with :func:`reproduction`. Sizes:
``quick`` (seconds, used by the tests; also called ``small``), ``default`` (under 10
minutes on 2 CPU cores; realdata-phase: under 30) and ``full`` (closer to the paper's
scale, may take longer).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nocollapse.errors import check_choice
from nocollapse.experiments.result import ReproductionResult

SIZES = ("quick", "default", "full")
RunFunction = Callable[[Path, str, int], ReproductionResult]

# Modules whose import registers reproductions (kept lazy: real-data ones need torch).
MODULES = (
    "nocollapse.experiments.tian2021",
    "nocollapse.experiments.bao2023",
    "nocollapse.experiments.halvagal2023",
    "nocollapse.experiments.ziyin2023",
    "nocollapse.experiments.wang2022",
    "nocollapse.experiments.realdata",
    "nocollapse.experiments.realdata_phase",
    "nocollapse.experiments.realdata_linear_phase",
    "nocollapse.experiments.predictor_spectrum",
)


@dataclass(frozen=True)
class Reproduction:
    """A registered reproduction: its name, the paper, a one-line summary, the runner."""

    name: str
    paper: str
    summary: str
    run: RunFunction


_REGISTRY: dict[str, Reproduction] = {}


def reproduction(name: str, paper: str, summary: str) -> Callable[[RunFunction], RunFunction]:
    """Decorator registering ``run`` under ``name``."""

    def register(run: RunFunction) -> RunFunction:
        if name in _REGISTRY:
            raise ValueError(f"reproduction {name!r} registered twice")
        _REGISTRY[name] = Reproduction(name, paper, summary, run)
        return run

    return register


def _load_all() -> None:
    """Import every module of :data:`MODULES`; a missing one is an error, not skipped."""
    for module in MODULES:
        importlib.import_module(module)


def all_reproductions() -> list[Reproduction]:
    """Every registered reproduction, in registration order."""
    _load_all()
    return list(_REGISTRY.values())


def get_reproduction(name: str) -> Reproduction:
    """The reproduction called ``name``; a ConfigError lists the valid names."""
    _load_all()
    check_choice("reproduction", name, list(_REGISTRY))
    return _REGISTRY[name]


def check_size(size: str) -> str:
    """A valid size; ``small`` is another name for ``quick`` (the tests' size)."""
    if size == "small":
        return "quick"
    return check_choice("size", size, list(SIZES))
