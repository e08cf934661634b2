"""``nocollapse`` entry point: discovers sub-command modules and dispatches."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

import nocollapse.cli as cli_package
from nocollapse import __version__
from nocollapse.errors import NocollapseError
from nocollapse.plugins import PluginError, load_plugins

# Display order; modules not listed here come after, alphabetically.
ALL_COMMANDS = "*"  # build_parser's default: every command in full
ORDER = ["train", "sweep", "evaluate", "export", "simulate", "phase", "landscape", "report",
         "reproduce"]


def _command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(cli_package.__path__) if m.name not in {"main"}]
    names = [n for n in names if not n.startswith("_")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def command_help(name: str) -> str | None:
    """The one-line help a command module gives ``add_parser``, read from its source
    without importing it (its imports, torch's among them, cost seconds); None when it
    is not a plain string there."""
    spec = importlib.util.find_spec(f"nocollapse.cli.{name}")
    if spec is None or spec.origin is None:
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_parser" and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == name):
            for keyword in node.keywords:
                if keyword.arg == "help":
                    try:
                        value = ast.literal_eval(keyword.value)
                    except ValueError:
                        return None
                    return value if isinstance(value, str) else None
    return None


def build_parser(command: str | None = ALL_COMMANDS) -> argparse.ArgumentParser:
    """The command line's parser: every command in full (the default), or only
    ``command`` (``None``: none) in full and the others by name and help, read from
    their sources, so that ``nocollapse --help`` imports no command's dependencies."""
    parser = argparse.ArgumentParser(
        prog="nocollapse",
        description="Non-contrastive self-supervised learning: train, diagnose collapse, "
        "simulate the learning dynamics.",
    )
    parser.add_argument("--version", action="version", version=f"nocollapse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        summary = None if command in (ALL_COMMANDS, name) else command_help(name)
        if summary is not None:
            subparsers.add_parser(name, help=summary, add_help=False)
            continue
        module = importlib.import_module(f"nocollapse.cli.{name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    return next((item for item in argv if not item.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen_command(argv)
    if command is not None:
        try:  # before the parser: a plugin's predictors, losses and data sets are in its --help
            load_plugins()
        except PluginError as error:
            print(f"nocollapse: error: {_one_paragraph(error)}", file=sys.stderr)
            return 2
    parser = build_parser(command)
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
