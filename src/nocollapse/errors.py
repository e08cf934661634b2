"""User-facing errors and argument checks shared by every layer."""

from __future__ import annotations

import math


class NocollapseError(Exception):
    """An error caused by the user's input; the message names the problem and the fix."""


class ConfigError(NocollapseError, ValueError):
    """A bad option value or an unknown option name."""


class DataError(NocollapseError, FileNotFoundError):
    """A missing or malformed data set."""


class TrainingDivergedError(NocollapseError, RuntimeError):
    """The loss became NaN or infinite."""


def check_finite(name: str, value: float) -> float:
    """Refuse NaN and infinities."""
    if not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} is not a finite number")
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


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Refuse a value not among ``choices``, listing them and the closest match."""
    if value in choices:
        return value
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown {name} {value!r}{hint}; valid choices: {', '.join(choices)}")


class OutputError(NocollapseError, OSError):
    """An output folder or file that cannot be created or written (a file in the way,
    no permission, a full disk, a symlink out of the run directory)."""
