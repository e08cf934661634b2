"""Plugins: installed packages that register predictors, losses and data sets.

A package declares an entry point in the group ``nocollapse.plugins`` (docs/extending.md):

    [project.entry-points."nocollapse.plugins"]
    my-loss = "my_package.nocollapse_plugin:register"

The entry point names a function, called with no arguments, or a module, imported; either
calls ``register_loss``, ``register_predictor`` or ``register_dataset``. The plugins run
once per process: when the command line starts, and from Python at the first read of one
of those registries (each is a :class:`PluginRegistry`). A plugin that fails raises
:class:`PluginError` naming it (the command line prints it and exits 2); the others
stay registered and the registries work without the failed one.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar, overload

from nocollapse.errors import NocollapseError

GROUP = "nocollapse.plugins"

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

V = TypeVar("V")
T = TypeVar("T")


class PluginError(NocollapseError):
    """An installed plugin that could not be loaded or whose registration failed."""


@dataclass
class _State:
    """What this process has done with the plugins: run them yet, and which ran."""

    loaded: bool = False
    loading: bool = False
    names: list[str] = field(default_factory=list)


_STATE = _State()


def load_plugins() -> list[str]:
    """Run every installed plugin, once per process; returns the names of those that ran.

    Raises :class:`PluginError` naming each plugin that failed (once: a later call
    returns the plugins that worked).
    """
    if _STATE.loaded or _STATE.loading:  # a plugin reading a registry lands here
        return list(_STATE.names)
    _STATE.loading = True
    failures = []
    try:
        for point in importlib.metadata.entry_points(group=GROUP):
            try:
                _run(point)
            except SystemExit as error:  # sys.exit() in a plugin must not end the command
                failures.append(f"{_describe(point)} called sys.exit({error.code!r}) while "
                                "loading")
            except (Exception, KeyboardInterrupt) as error:  # anything: name it, no traceback
                failures.append(f"{_describe(point)} failed: {type(error).__name__}: {error}")
            else:
                _STATE.names.append(point.name)
    finally:
        _STATE.loading = False
        _STATE.loaded = True
    if failures:
        raise PluginError("; ".join(failures) + " (fix or uninstall the package; nocollapse "
                          f"reads the entry-point group {GROUP!r})")
    return list(_STATE.names)


def _run(point: importlib.metadata.EntryPoint) -> None:
    target = point.load()
    if isinstance(target, ModuleType):
        return  # importing the module registered what it has
    if not callable(target):
        raise TypeError(f"{point.value} is a {type(target).__name__}, not a function or module")
    target()


def _describe(point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    source = f", from {dist.name} {dist.version}" if dist is not None else ""
    return f"plugin {point.name!r} ({point.value}{source})"


class PluginRegistry(dict[str, V]):
    """A registry (name -> entry) whose reads first run the installed plugins, once.

    Writes (``register_*``, ``del``) do not: a plugin registering is itself a write.
    """

    def __getitem__(self, key: str) -> V:
        load_plugins()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        load_plugins()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        load_plugins()
        return super().__iter__()

    def __len__(self) -> int:
        load_plugins()
        return super().__len__()

    @overload
    def get(self, key: str, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: str, default: V, /) -> V: ...
    @overload
    def get(self, key: str, default: T, /) -> V | T: ...
    def get(self, key: str, default: object = None, /) -> object:
        load_plugins()
        return super().get(key, default)

    def keys(self) -> dict_keys[str, V]:
        load_plugins()
        return super().keys()

    def values(self) -> dict_values[str, V]:
        load_plugins()
        return super().values()

    def items(self) -> dict_items[str, V]:
        load_plugins()
        return super().items()
