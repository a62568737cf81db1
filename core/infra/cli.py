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
    """`clean_acc=0.8861  pgd20_acc=...` of a result, for a closing line."""
    return "  ".join(f"{k}={result[k]:.4f}" for k in result["metrics"] if k.endswith("_acc"))


class Parser(argparse.ArgumentParser):
    """argparse whose bad input is one line, `error: ...`, exit code 2 (argparse's own prints
    the whole usage block first); the help keeps the module docstring's layout."""

    def __init__(self, **kwargs) -> None:
        super().__init__(formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
