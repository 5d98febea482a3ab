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
import sys
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


# On Ctrl-C, how long to let batches already on the model finish so their scores are kept.
UNPASSED_WAIT_S = 5.0


def wind_down(config, signum: int) -> int:
    """After an interrupt: keep every score, remove the unfinished outputs, say how to resume.

    Returns the exit code for the signal (130 or 143).
    """
    from pipelines.run_folders.output_prefix import remove_unfinished
    from pipelines.stages.score_samples import cache_dir_of
    from transforms.media.decode_pool import close_all
    from transforms.samples.score_cache import count_cached, flush_all_pending, save_scored
    from transforms.scoring.score_ahead import unpassed_predictions

    cache_dir = cache_dir_of(config)
    flush_all_pending()
    if cache_dir:
        # Batches the model finished (or finishes within seconds) but the pipeline had not
        # yet taken: scored on the GPU, so worth keeping.
        finished = unpassed_predictions(wait_s=UNPASSED_WAIT_S)
        save_scored(
            cache_dir,
            [
                p.example.replace(
                    score=p.inference.score,
                    turn_scores=list(p.inference.turn_scores or ()) or None,
                )
                for p in finished
            ],
        )
    close_all()
    remove_unfinished(config.output)
    if cache_dir:
        kept = f"{count_cached(cache_dir)} scores kept in the cache"
        resume = "rerun the same command to resume"
    else:
        kept = "no score cache set (--score-cache), so the scores were not kept"
        resume = "rerun the same command to start again"
    print(f"rmclean: interrupted; {kept}; {resume}", file=sys.stderr, flush=True)
    return EXIT_CODES[signum]
