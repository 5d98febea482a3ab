"""What every `rmclean` command shares: exit codes and one-line bad-usage errors."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad usage found before any work starts: one line for the user, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line (and exit 2) instead of a usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def usage(message: str) -> int:
    """Print `rmclean: message` to stderr; return the bad-usage exit code."""
    print(f"rmclean: {message}", file=sys.stderr)
    return EXIT_USAGE


def flags_of(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]
