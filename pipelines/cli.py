"""`rmclean`: clean a dataset, and the commands around a run (sample, report, runs, compare,
apply-review, export, subset, doctor). One module per command under pipelines/commands/.

Bad usage ends with one line and exit code 2, never a traceback; Ctrl-C ends with one line and
130. `clean` hands every flag that is not its own to Beam, after checking it is a real Beam
pipeline option, so a typo such as `--treshold` stops the run before it starts instead of
being dropped with a log line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from pipelines.commands import (
    apply_review,
    clean,
    compare,
    doctor,
    download,
    export,
    latest,
    report,
    runs,
    sample,
    subset,
)
from pipelines.commands.usage import OneLineParser, flags_of, usage
from pipelines.interrupt import EXIT_CODES
from pipelines.logs import configure_logging

DESCRIPTION = (
    "Clean a multimodal dataset with a reward model (clean), and the commands around a run."
)
# In the order `rmclean --help` lists them.
COMMANDS = (
    clean,
    latest,
    sample,
    report,
    runs,
    compare,
    apply_review,
    export,
    subset,
    download,
    doctor,
)


def parser() -> argparse.ArgumentParser:
    root = OneLineParser(prog="rmclean", description=DESCRIPTION, allow_abbrev=False)
    commands = root.add_subparsers(dest="command", required=True)
    root.parsers = {command.NAME: command.add_parser(commands) for command in COMMANDS}
    return root


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before a run's own handler is in place (imports, checks, listing inputs):
        # nothing was started that needs undoing, so one line, not a traceback.
        print("rmclean: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return EXIT_CODES[signal.SIGINT]


def _main(argv: list[str] | None) -> int:
    configure_logging()
    cli = parser()
    args, extra = cli.parse_known_args(argv)
    if args.command == clean.NAME:
        code = clean.run(args, extra, flags_of(cli.parsers[clean.NAME]))
        if code in EXIT_CODES.values():
            # Interrupted: what was worth keeping is kept. Scoring threads still inside a
            # forward pass, or a hung decoder, must not hold the exit back.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    if extra:
        return usage(f"unknown arguments {' '.join(extra)} (see `rmclean {args.command} --help`)")
    command = next(c for c in COMMANDS if c.NAME == args.command)
    return command.run(args)


if __name__ == "__main__":
    sys.exit(main())
