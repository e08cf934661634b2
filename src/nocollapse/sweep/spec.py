"""A sweep's specification: the base configuration, the axes, and the cells they make.

Layers, each over the one before: the CPU default (or ``--config FILE``) <
:data:`SWEEP_DEFAULTS` < the sweep file's ``base`` < ``--method`` < trailing
``KEY=VALUE`` < the cell's axis values. Every cell is resolved and validated by
:class:`~nocollapse.train.config.TrainConfig` before anything is written.

A sweep file (read with ``yaml.safe_load``, as configs are)::

    base:                       # any train keys (optional)
      method: byol
      learner: {predictor: linear}
    axes:                       # key -> list of values (at least one)
      optim.weight_decay: [5.0e-4, 5.0e-3, 5.0e-2]
      learner.base_tau: [0.9, 0.99]
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nocollapse.errors import ConfigError, quoted
from nocollapse.rundir.resume import FREE_KEYS, flatten
from nocollapse.runio import SWEEP_CELLS_DIR, SWEEP_SPEC_FILE, atomic_write_text
from nocollapse.runio.records import ConfigDict
from nocollapse.train.config import TrainConfig, merge, parse_overrides, read_yaml

# What a sweep's cells change from a plain `train` run: no time budget (a cell trains its
# plan; a budget-stopped cell would never count as done), and the final evaluation is
# k-NN only, the random-init baseline measured once per sweep (sweep.baseline).
SWEEP_DEFAULTS: ConfigDict = {
    "time_budget_s": None,
    "eval": {"linear_probe": False, "baselines": []},
}
# Keys a rerun may change without changing what the cells compute (resume's free keys).
IGNORED_IN_COMPARISON = FREE_KEYS
MAX_CELLS = 10_000  # a sweep's grid, checked before its cells are made
MAX_NAME = 200  # characters of a cell's folder name (file systems allow 255 bytes)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class Axis:
    """One swept key and its values, in order."""

    key: str
    values: tuple[object, ...]


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its readable name, axis values and resolved configuration."""

    name: str
    assignment: tuple[tuple[str, object], ...]
    config: TrainConfig


@dataclass
class SweepSpec:
    """The base values every cell starts from, and the axes (the grid is their product)."""

    base: ConfigDict
    axes: list[Axis]

    def to_dict(self) -> ConfigDict:
        return {"base": self.base, "axes": [[a.key, list(a.values)] for a in self.axes]}

    @classmethod
    def from_dict(cls, values: object, source: str = "the sweep's spec") -> SweepSpec:
        """The spec as :meth:`to_dict` wrote it; ConfigError naming ``source`` otherwise."""
        base = values.get("base") or {} if isinstance(values, dict) else None
        axes = values.get("axes") or [] if isinstance(values, dict) else None
        if not isinstance(base, dict) or not isinstance(axes, list) or not all(
                isinstance(axis, list) and len(axis) == 2 and isinstance(axis[0], str)
                and isinstance(axis[1], list) and axis[1] for axis in axes):
            raise ConfigError(f"{source} is damaged: it must hold base: (a mapping) and axes: "
                              "(a list of [key, [values]]), as the sweep wrote it; restore it "
                              "or choose another --out")
        return cls(dict(base), [Axis(key, tuple(items)) for key, items in axes])

    def cells(self, out: Path, threads: int | None = None) -> list[Cell]:
        """Every cell, resolved and validated; ``threads`` fills an unset ``device.threads``."""
        if not self.axes:
            raise ConfigError("a sweep needs at least one axis: --grid KEY=V1,V2 or a sweep "
                              "file's axes")
        check_grid_size(self.axes)
        cells: list[Cell] = []
        combos: list[list[tuple[str, object]]] = [[]]
        for axis in self.axes:
            combos = [[*combo, (axis.key, value)] for combo in combos for value in axis.values]
        names: set[str] = set()
        for combo in combos:
            name = cell_name(combo, [a.key for a in self.axes])
            if len(name) > MAX_NAME:
                raise ConfigError(f"cell {name[:40]}... : its name would be {len(name)} "
                                  f"characters, more than the {MAX_NAME} a folder name may "
                                  "have; use shorter axis values (or fewer axes)")
            if name in names:
                raise ConfigError(f"two cells of the sweep would share the name {name!r}; "
                                  "give the axes values that differ in writing")
            names.add(name)
            values = merge(self.base, parse_overrides([f"{k}={_text(v)}" for k, v in combo]))
            values = merge(values, {"out": str(out / SWEEP_CELLS_DIR / name)})
            if threads is not None and (values.get("device") or {}).get("threads") is None:
                values = merge(values, {"device": {"threads": threads}})
            try:
                config = TrainConfig.from_dict(values)
            except ConfigError as error:
                raise ConfigError(f"cell {name}: {error}") from None
            cells.append(Cell(name, tuple(combo), config))
        return cells


def check_grid_size(axes: list[Axis]) -> None:
    """Refuse a grid of more than :data:`MAX_CELLS` cells, before any cell is made."""
    total = math.prod(len(axis.values) for axis in axes)
    if total > MAX_CELLS:
        sizes = " x ".join(str(len(axis.values)) for axis in axes)
        raise ConfigError(f"the grid has {sizes} = {total} cells, more than the {MAX_CELLS} "
                          "a sweep may hold; sweep fewer values, or split it into sweeps")


def parse_axis(item: str) -> Axis:
    """``"optim.lr=0.1,0.3"`` -> ``Axis("optim.lr", (0.1, 0.3))``; values read as YAML."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--grid {item!r} is not KEY=V1,V2,... (for example "
                          "--grid optim.weight_decay=5e-4,5e-3)")
    pieces = [piece.strip() for piece in _split_top_level(text)]
    if not text.strip() or any(not piece for piece in pieces):
        raise ConfigError(f"--grid {item!r}: the axis {key} has an empty value; give one or "
                          "more comma-separated values")
    values = []
    for piece in pieces:
        try:
            values.append(_number_or_value(parse_overrides([f"v={piece}"])["v"]))
        except ConfigError:
            raise ConfigError(f"--grid {quoted(item)}: the value {quoted(piece)} of the axis "
                              f"{key} is not valid YAML; quote a value that YAML would parse "
                              "(for example --grid \"key='[a'\")") from None
    return Axis(key, tuple(values))


def _number_or_value(value: object) -> object:
    """YAML 1.1 reads ``5e-4`` as a string; an axis value that reads as a number is one."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets (a value may be a YAML list: [0.4,0.4,0,0])."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def read_sweep_file(path: str | Path) -> tuple[ConfigDict, list[Axis]]:
    """``(base, axes)`` from a sweep file (safe YAML; see the module's docstring)."""
    loaded = read_yaml(path)
    unknown = set(loaded) - {"base", "axes"}
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown top-level key(s) {sorted(unknown)}; a "
                          "sweep file holds base: (train keys) and axes: (key: [values])")
    base, axes = loaded.get("base") or {}, loaded.get("axes") or {}
    if not isinstance(base, dict) or not isinstance(axes, dict):
        raise ConfigError(f"sweep file {path}: base and axes must be mappings")
    parsed = []
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep file {path}: axis {key} must be a non-empty list of "
                              f"values, got {values!r}")
        parsed.append(Axis(str(key), tuple(_number_or_value(v) for v in values)))
    return base, parsed


def combine_axes(*groups: list[Axis]) -> list[Axis]:
    """The axes of every group, in order; a key swept twice is refused."""
    axes: list[Axis] = []
    for axis in (a for group in groups for a in group):
        if axis.key in {a.key for a in axes}:
            raise ConfigError(f"the axis {axis.key} is given twice; sweep each key once")
        if axis.key == "out" or axis.key.startswith("out."):
            raise ConfigError("out cannot be an axis: each cell's run directory is "
                              "SWEEP_DIR/cells/<name>")
        axes.append(axis)
    return axes


def cell_name(assignment: list[tuple[str, object]], keys: list[str]) -> str:
    """``weight_decay=0.0005__base_tau=0.99``: leaf key names where they are unique."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    shown = {k: (leaf if leaves.count(leaf) == 1 else k) for k, leaf in zip(keys, leaves,
                                                                          strict=True)}
    parts = [f"{shown[key]}={_text(value)}" for key, value in assignment]
    return _NAME_UNSAFE.sub("_", "__".join(parts))


def _text(value: object) -> str:
    """A value as YAML writes it on one line (floats as Python prints them)."""
    if isinstance(value, bool) or value is None:
        return str(yaml.safe_dump(value).splitlines()[0])
    if isinstance(value, int | float | str):
        return str(value)
    return str(yaml.safe_dump(value, default_flow_style=True).strip())


def check_out_dir(out: Path) -> None:
    """Refuse a sweep directory that is, or sits under, a file (before anything is made)."""
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == out else f"sits under {path}, which is a file"
            raise ConfigError(f"--out {out} {where}; choose a folder path for the sweep")


def stored_spec(out: Path) -> SweepSpec | None:
    """The spec stored in an existing sweep directory, or None."""
    path = out / SWEEP_SPEC_FILE
    if not path.is_file():
        return None
    return SweepSpec.from_dict(read_yaml(path), str(path))


def write_spec(out: Path, spec: SweepSpec) -> None:
    atomic_write_text(out / SWEEP_SPEC_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))


def differences(stored: SweepSpec, requested: SweepSpec) -> list[str]:
    """What ``requested`` changes from ``stored`` (axes, then base keys), in words."""
    found = []
    old_axes = {a.key: list(a.values) for a in stored.axes}
    new_axes = {a.key: list(_roundtrip(a.values)) for a in requested.axes}
    for key in [*old_axes, *(k for k in new_axes if k not in old_axes)]:
        if key not in new_axes:
            found.append(f"axis {key} is missing (the sweep has {old_axes[key]})")
        elif key not in old_axes:
            found.append(f"axis {key}={new_axes[key]} is new")
        elif old_axes[key] != new_axes[key]:
            found.append(f"axis {key}={new_axes[key]} (the sweep has {old_axes[key]})")
    if not found and list(old_axes) != list(new_axes):
        found.append(f"axes in the order {list(new_axes)} (the sweep has {list(old_axes)})")
    old, new = flatten(stored.base), flatten(_roundtrip(requested.base))
    for key in sorted(set(old) | set(new)):
        if key in IGNORED_IN_COMPARISON or old.get(key, "unset") == new.get(key, "unset"):
            continue
        found.append(f"{key}={new.get(key, 'unset')!r} (the sweep has "
                     f"{old.get(key, 'unset')!r})")
    return found


def _roundtrip(value: Any) -> Any:
    """``value`` as it reads back from the stored YAML (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(value if not isinstance(value, tuple) else list(value)))


def cores() -> int:
    """CPU cores this process may use (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
