"""Ctrl-C and SIGTERM: stop within seconds, keep every score, leave no temporary files.

A GPU run can hold hours of scoring. On SIGINT or SIGTERM the run stops where it is, the
score cache writers of this process flush what they hold, the video decoders are killed, the
unfinished output prefix is removed, and the user reads one line saying how to resume.

Beam re-raises an exception from inside a step as another type (and logs it with a
traceback), so the signal itself is remembered here and logging is silenced the moment it
arrives; whatever exception then comes out of the run, `received()` says it was this.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGINT or SIGTERM arrives during a run.

    A KeyboardInterrupt, so no `except Exception` (ours or Beam's) mistakes it for a bad
    record; it takes a message argument because Beam rebuilds it with one.
    """


def _on_signal(signum, _frame) -> None:
    if _received:
        return  # a second Ctrl-C while stopping: the first one is already being handled
    _received.append(signum)
    logging.disable(logging.CRITICAL)  # Beam logs the interrupted step with a traceback
    threading.excepthook = lambda _args: None  # and so would worker threads dying now
    raise Interrupted(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise `Interrupted` in the main thread."""
    _received.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in EXIT_CODES}
    try:
        yield
    finally:
        # While cleaning up, further signals are ignored rather than breaking the cleanup.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN if _received else previous[sig])


def received() -> int | None:
    """The signal that interrupted the last `interruptible()` block, if one did."""
    return _received[0] if _received else None
