"""The `rmclean` console script: Ctrl-C is one line and exit 130 from the first instant.

`pipelines.cli` turns Ctrl-C into one line once it runs, but importing it (argparse, the
commands, and through them YAML and more) takes a moment, and on a busy machine a second: a
Ctrl-C then would print a traceback from inside an import. This module imports nothing before
it is ready to catch that.
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def main() -> int:
    try:
        from pipelines.cli import main as run_command

        return run_command()
    except KeyboardInterrupt:
        print("rmclean: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
