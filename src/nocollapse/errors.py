"""User-facing errors and argument checks shared by every layer."""

from __future__ import annotations

import math
from collections.abc import Collection


class NocollapseError(Exception):
    """An error caused by the user's input; the message names the problem and the fix."""


class ConfigError(NocollapseError, ValueError):
    """A bad option value or an unknown option name."""


class DataError(NocollapseError, FileNotFoundError):
    """A missing or malformed data set."""


class MissingDataError(DataError):
    """A data set's file, folder or split that is not there (a run goes on without a test
    split; any other DataError, a damaged file or wrong labels, stops it)."""


class TrainingDivergedError(NocollapseError, RuntimeError):
    """The loss became NaN or infinite."""


def quoted(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message never carries a huge
    value (a 100 MB expanded YAML alias, a pasted file) whole."""
    text = value if isinstance(value, str) and len(value) > 10 * limit else None
    shown = repr(text[: 2 * limit] if text is not None else value)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(text) if text is not None else len(shown)} characters)"


MAX_SEED = 2**32 - 1  # what numpy's and torch's seeding accept from every command


def check_seed(name: str, value: int) -> int:
    """Refuse a seed numpy or torch would reject (negative, or above ``MAX_SEED``)."""
    if int(value) != value or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name}={quoted(value)} is not a seed; valid range: 0 <= {name} <= "
                          f"{MAX_SEED}")
    return int(value)


def check_finite(name: str, value: float) -> float:
    """Refuse NaN and infinities."""
    if not math.isfinite(value):
        raise ConfigError(f"{name}={quoted(value)} is not a finite number")
    return value


def check_nonnegative(name: str, value: float) -> float:
    """Refuse a negative (or non-finite) value, naming the valid range."""
    check_finite(name, value)
    if value < 0:
        raise ConfigError(f"{name}={value!r} is negative; valid range: {name} >= 0")
    return value


def check_positive(name: str, value: float) -> float:
    """Refuse a zero, negative or non-finite value, naming the valid range."""
    check_finite(name, value)
    if value <= 0:
        raise ConfigError(f"{name}={value!r} must be positive; valid range: {name} > 0")
    return value


def check_positive_int(name: str, value: float) -> int:
    """Refuse anything but a whole number >= 1 (a count: steps, samples, dimensions)."""
    if int(value) != value or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer; valid range: {name} >= 1")
    return int(value)


def check_in_range(name: str, value: float, low: float, high: float) -> float:
    """Refuse a value outside the closed interval [low, high]."""
    check_finite(name, value)
    if not low <= value <= high:
        raise ConfigError(
            f"{name}={value!r} is out of range; valid range: {low} <= {name} <= {high}"
        )
    return value


def check_choice(name: str, value: str, choices: Collection[str]) -> str:
    """Refuse a value not among ``choices``, listing them and the closest match."""
    if value in choices:
        return value
    import difflib

    close = difflib.get_close_matches(str(value)[:200], list(choices), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown {name} {quoted(value)}{hint}; valid choices: {', '.join(choices)}")


class OutputError(NocollapseError, OSError):
    """An output folder or file that cannot be created or written (a file in the way,
    no permission, a full disk, a symlink out of the run directory)."""
