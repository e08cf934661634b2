"""``nocollapse`` entry point: discovers sub-command modules and dispatches."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import nocollapse.cli as cli_package
from nocollapse import __version__
from nocollapse.errors import NocollapseError
from nocollapse.plugins import PluginError, load_plugins

# Display order; modules not listed here come after, alphabetically.
ORDER = ["train", "sweep", "evaluate", "export", "simulate", "phase", "landscape", "report",
         "reproduce"]


def _command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(cli_package.__path__) if m.name not in {"main"}]
    names = [n for n in names if not n.startswith("_")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nocollapse",
        description="Non-contrastive self-supervised learning: train, diagnose collapse, "
        "simulate the learning dynamics.",
    )
    parser.add_argument("--version", action="version", version=f"nocollapse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        module = importlib.import_module(f"nocollapse.cli.{name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:  # before the parser: a plugin's predictors, losses and data sets are in its --help
        load_plugins()
    except PluginError as error:
        print(f"nocollapse: error: {_one_paragraph(error)}", file=sys.stderr)
        return 2
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may sit anywhere among the options (argparse alone only takes
    # one contiguous run of positionals)
    if extra and isinstance(getattr(args, "overrides", None), list) and all(
            "=" in item and not item.startswith("-") for item in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NocollapseError as error:
        print(f"nocollapse {args.command}: error: {_one_paragraph(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system refused something no check foresaw
        print(f"nocollapse {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nocollapse {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_paragraph(error: BaseException) -> str:
    """The message on one line (a YAML or torch error may span several)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
