"""A job that runs on an engine (Spark, Flink, Dataflow) outlives this process unless cancelled.

Local runners finish before `run()` returns, so there is nothing to cancel; a portable or
Dataflow job goes on after its submitter stops waiting, so an interrupted or failed wait
cancels it through the runner (Beam's job service `Cancel` for Spark and Flink) and waits,
briefly, until the engine says it stopped.
"""

from __future__ import annotations

import logging
import time

from apache_beam.runners.runner import PipelineState

_LOGGER = logging.getLogger(__name__)

# How long to wait for the engine to confirm that the cancelled job stopped.
CANCEL_WAIT_S = 60.0


def cancel_job(result, wait_s: float = CANCEL_WAIT_S) -> str | None:
    """Cancel the job behind `result` unless it already ended; the state it ended in.

    Returns None for results that cannot be cancelled (a local runner's finished result).
    """
    try:
        state = result.state
        if PipelineState.is_terminal(state):
            return state
        result.cancel()
    except NotImplementedError:
        return None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        # The result caches its state on cancel; ask the engine again.
        state = result.state
        if PipelineState.is_terminal(state):
            return state
        time.sleep(0.5)
    _LOGGER.warning("the job was cancelled but still says %s after %.0f s", state, wait_s)
    return state
