"""What the command-line entries share: help, bad input as one line with exit code 2."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core.infra.errors import UserError


def entry(doc: str, argv: list[str] | None, flags: tuple[str, ...],
          body: Callable[[list[str], set[str]], int]) -> int:
    """`body(overrides, flags given)`, or the help; a UserError is `error: <one line>`, 2."""
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(doc)
        return 0
    try:
        return body([a for a in args if a not in flags], {a for a in args if a in flags})
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def accuracies(result: dict) -> str:
    """`clean 88.6%  pgd20 54.7%  ... (n=360)` of a result, for a closing line: percent, as
    every table shows them, on the n test points they were measured on."""
    shown = "  ".join(f"{k[:-len('_acc')]} {100 * result[k]:.1f}%" for k in result["metrics"]
                      if k.endswith("_acc"))
    return shown + (f" (n={result['n_eval']})" if result.get("n_eval") else "")


class _Help(argparse.RawDescriptionHelpFormatter):
    """The module docstring's layout, and every option's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse whose bad input is one line, `error: ...`, exit code 2 (argparse's own prints
    the whole usage block first); the help keeps the module docstring's layout and shows
    defaults."""

    def __init__(self, **kwargs) -> None:
        super().__init__(formatter_class=_Help, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def runs_dir_flag(p: argparse.ArgumentParser, what: str, default: str | None = None) -> None:
    """The runs folder, spelt the same in every ablations entry (core.train's config field
    runs_dir= is what it sets)."""
    p.add_argument("--runs-dir", default=default, metavar="DIR",
                   help=f"{what} (default: runs, or the config's runs_dir)" if default is None
                   else what)
