"""Option schemas: each predictor module declares the options it accepts, in one place.

An :class:`Option` names the option's type, its default (the one place it is written:
:func:`with_defaults` fills it in before the predictor is built; ``None``: the predictor
picks one), a range check and a line of help. The registry entry of a predictor points
at its schema, and the learner configuration, the CLI help and the error messages are
derived from it, so adding an option is one edit in the predictor's module.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nocollapse.errors import ConfigError, check_choice

OptionValue = float | int | bool | str | None


@dataclass(frozen=True)
class Option:
    """One keyword option of a predictor.

    ``kind``: the Python type a value must have (``float`` accepts integers);
    ``check(name, value)``: raises :class:`ConfigError` for a value out of range;
    ``default``: the value a predictor is built with when none is given (``None``: the
    predictor chooses, from other options say);
    ``choices``: the values a text option may take.
    """

    kind: type
    help: str
    default: OptionValue = None
    check: Callable[[str, float], object] | None = None
    choices: tuple[str, ...] | None = None


OptionSchema = Mapping[str, Option]


def check_options(owner: str, options: Mapping[str, OptionValue], schema: OptionSchema,
                  prefix: str = "") -> None:
    """Refuse an option ``schema`` lacks (with the closest names) or a value out of range."""
    for name, value in options.items():
        if name not in schema:
            close = difflib.get_close_matches(name, list(schema), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            valid = ", ".join(schema) or "none"
            raise ConfigError(f"unknown {owner} option {prefix + name!r}{hint} (valid: {valid})")
        option = schema[name]
        if value is None:
            continue
        if not _has_kind(value, option.kind):
            raise ConfigError(f"{prefix}{name}={value!r} is not a valid {option.kind.__name__}")
        if option.check is not None and isinstance(value, int | float):
            option.check(f"{prefix}{name}", value)
        if option.choices is not None:
            check_choice(f"{prefix}{name}", str(value), option.choices)


def coerce_options(options: Mapping[str, OptionValue], schema: OptionSchema
                   ) -> dict[str, OptionValue]:
    """Numbers given as text (YAML reads ``1e-3`` as a string) converted to the option's type."""
    out = dict(options)
    for name, value in options.items():
        kind = schema[name].kind if name in schema else None
        if isinstance(value, str) and kind in (int, float):
            with contextlib.suppress(ValueError):  # else check_options names the bad value
                out[name] = float(value) if kind is float else int(value)
    return out


def with_defaults(options: Mapping[str, OptionValue], schema: OptionSchema
                  ) -> dict[str, OptionValue]:
    """Every option of ``schema``: the given value, else the option's default (a value of
    ``None`` counts as not given)."""
    given = {name: value for name, value in options.items() if value is not None}
    return {name: given.get(name, option.default) for name, option in schema.items()}


def _has_kind(value: OptionValue, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)
