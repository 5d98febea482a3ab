"""What the pipeline knows about a reward backend before loading it: one `BackendSpec` each.

Each backend module exports `SPEC`: its name, every option it takes with its default, how to
load it, how to estimate a sample's token cost without loading it (for token-budget
batching), how to check its options before the pipeline starts, and which options come from
the run rather than from `model_options` (batching and decode settings have one home: the
run's config). `models/registry.py` maps names to specs; a plug-in may export its own spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.base import RewardModel
from models.loading import ModelConfigError
from transforms.core.record import Sample

Options = dict[str, Any]
Estimator = Callable[[Sample], int]

# Options a backend may take from the run's config, and where in the config they live.
RUN_OPTION_SOURCES: Mapping[str, str] = {
    "max_batch_tokens": "max_batch_tokens",
    "max_batch_size": "batch_size",
    "trust_remote_code": "trust_remote_code",
    "remote_code_allowlist": "remote_code_allowlist",
    "video_fps": "decode.video_fps",
    "video_max_frames": "decode.max_frames",
}


def _no_check(options: Options, workers_here: bool) -> None:
    """A backend with nothing to check beyond its option names."""


@dataclass(frozen=True)
class BackendSpec:
    """One reward backend, described without loading it.

    `defaults`: every option with its default (None for a required one or one read from the
    checkpoint); `None` instead of a mapping accepts any options (plain plug-in factories).
    `load(options)` builds the model from complete options; `estimator(options)` returns a
    picklable `estimate_tokens(sample)` (None: this backend cannot batch by tokens);
    `check(options, workers_here)` raises `ModelConfigError` for options that cannot work
    (files, opt-ins, devices), where `workers_here` says the files are on this machine.
    `run_options` names the options the run's config sets (see RUN_OPTION_SOURCES);
    `fingerprint(options)` identifies the weights for the score cache. `holds` names what the
    backend's results hold beyond a score per sample since they first did (e.g. "turn
    scores"): part of the score cache's identity, so a cache written before then is not reused
    for results it lacks.
    """

    name: str
    defaults: Mapping[str, Any] | None
    load: Callable[[Options], RewardModel]
    estimator: Callable[[Options], Estimator] | None = None
    check: Callable[[Options, bool], None] = _no_check
    run_options: tuple[str, ...] = field(default=())
    # A cheap identity of the weights `options` load (None: unknown), so the score cache of a
    # retrained or re-downloaded model is a new one rather than the old scores.
    fingerprint: Callable[[Options], str | None] | None = None
    holds: str | None = None

    def __post_init__(self):
        unknown = sorted(set(self.run_options) - set(RUN_OPTION_SOURCES))
        if unknown:
            raise ValueError(
                f"{self.name}: {unknown} are not run options {list(RUN_OPTION_SOURCES)}"
            )

    def options(self, given: Mapping[str, Any] | None) -> Options:
        """`given` over the defaults; an option the backend does not know is refused."""
        given = dict(given or {})
        if self.defaults is None:
            return given
        known = {**dict.fromkeys(self.run_options), **self.defaults}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ModelConfigError(
                f"{self.name}: unknown model option(s) {unknown}; "
                f"known options: {sorted(set(known) - set(self.run_options))}"
            )
        return {**known, **given}
