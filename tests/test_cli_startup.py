"""``nocollapse --help`` starts without importing the commands' dependencies (torch, ...)
and lists each command with the help its module gives; a command still parses in full."""

from __future__ import annotations

import subprocess
import sys

from nocollapse.cli.main import build_parser, command_help


def test_top_level_help_imports_no_command_module_and_no_torch() -> None:
    code = ("import sys, contextlib, io\n"
            "from nocollapse.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "heavy = sorted(m for m in sys.modules if m in {'torch', 'numpy', 'matplotlib'}"
            " or m.startswith('nocollapse.cli.') and m != 'nocollapse.cli.main')\n"
            "print(heavy)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]", found.stdout


def _helps(parser: object) -> dict[str, str]:
    action = parser._subparsers._group_actions[0]  # type: ignore[attr-defined]
    return {choice.dest: choice.help for choice in action._choices_actions}


def test_the_lazy_help_lists_what_the_full_parser_lists() -> None:
    full, lazy = _helps(build_parser()), _helps(build_parser(None))
    assert full == lazy and len(full) >= 9
    assert all(command_help(name) == text for name, text in full.items())


def test_a_chosen_command_is_parsed_in_full() -> None:
    args = build_parser("train").parse_args(["train", "--method", "byol", "optim.lr=0.1"])
    assert args.method == "byol" and args.overrides == ["optim.lr=0.1"] and callable(args.func)
