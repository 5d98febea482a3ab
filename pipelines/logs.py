"""What a run prints: our own progress and problems, not noise from libraries.

Beam warns on every run about optional extras nobody asked for (BigQuery's apitools, a
memory probe that needs scipy); those lines mean nothing to a user and bury the ones that do,
so they are dropped here, by message, and everything else is kept.
"""

from __future__ import annotations

import logging

# Beginnings of library messages that never call for action from an rmclean user.
MEANINGLESS = (
    "apitools not found, and bigquery client libraries are not available",
    "Resource module is not available for current platform",
)


class DropMeaningless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Substrings, not prefixes: worker processes' lines arrive wrapped in a "Worker: ..."
        # record of Beam's job service.
        message = record.getMessage()
        return not any(text in message for text in MEANINGLESS)


def configure_logging(level: int = logging.WARNING) -> None:
    """Log to stderr as `LEVEL name: message`, without the meaningless library warnings.

    Libraries log at `level` and up; our own loggers (`rmclean.*`, e.g. progress lines) at
    INFO. Called before Beam is first imported: some of its warnings fire at import time.
    """
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("rmclean").setLevel(min(level, logging.INFO))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, DropMeaningless) for f in handler.filters):
            handler.addFilter(DropMeaningless())
