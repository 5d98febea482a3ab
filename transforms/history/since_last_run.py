"""The finishing step's two hooks into the run history (`run_history.py`).

Before summary.json is written, the run is compared with the previous finished run of its
dataset (`run_compare.py`), so summary.json and the report page say what changed. After
`_SUCCESS`, the run is added to the history. Neither can fail a run whose samples all landed:
a comparison that fails says so in summary.json, a history that cannot be written in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from transforms.history.run_compare import compare_runs
from transforms.history.run_history import previous_finished_run, record_finished_run

_log = logging.getLogger(__name__)


def since_last_run(prefix: str, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The comparison with the previous finished run; None for a dataset's first run."""
    try:
        previous = previous_finished_run(prefix, summary)
    except Exception as exc:  # noqa: BLE001 - an unreadable history must not fail the run
        _log.warning("could not read the run history beside %s: %s", prefix, exc)
        return None
    if previous is None:
        return None
    try:
        return compare_runs(previous["output"], prefix, new_summary=summary, automatic=True)
    except Exception as exc:  # noqa: BLE001 - as above: the run itself is fine
        _log.warning("could not compare %s with %s: %s", prefix, previous["output"], exc)
        return {
            "previous_run": {
                "run_id": previous.get("run_id"),
                "output": previous.get("output"),
                "finished_at": previous.get("finished_at"),
            },
            "automatic": True,
            "error": f"{type(exc).__name__}: {exc}",
        }


def record_run(prefix: str, summary: dict[str, Any]) -> None:
    try:
        history = record_finished_run(prefix, summary)
    except Exception as exc:  # noqa: BLE001 - the run finished; only its history line is missing
        _log.warning("could not add the run at %s to its history: %s", prefix, exc)
        return
    _log.info("run %s recorded in %s", summary.get("run_id"), history)
