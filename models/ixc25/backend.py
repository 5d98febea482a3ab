"""InternLM-XComposer2.5-Reward: its options, checks and loader; its `get_scores` engine is
`ixc25/model.py`.

Its code comes with the checkpoint (`trust_remote_code`), so it only runs after an explicit
opt-in, and it is loaded the way `ixc25/loading.py` explains (transformers 5, offline, no meta
device). Two engines score with it: `batched` (the default, `ixc25/batched.py`) and
`upstream` (`ixc25/model.py`): the code's own `get_scores`, which reads media from FILE PATHS
and picks image vs video by extension, so each call writes the batch's media bytes to a fresh
temporary directory (per worker process, per call) and removes it afterwards, also when
scoring fails.

What the code does with a conversation, and how this backend meets it:
- one image or video and no `<ImageHere>` in the text: it puts the media first itself, so
  LLaVA's `<image>`/`<video>` placeholders are stripped; with several, only the text's
  `<ImageHere>` markers place them (one each, in order, else the first alone is encoded and
  the score read at the wrong place), so placeholders become markers, or the markers go
  first in the first user turn; the count is checked against the paths;
- it lowers hd_num to 6 when a sample has several media; the token count does the same;
- it cuts input longer than max_length from the end, where the reward token is: samples
  over max_length by this backend's exact count are refused (`score/too_long`) instead;
- `get_scores` returns `logits.squeeze().tolist()`, a bare float for one conversation:
  scores are normalised to one float per conversation;
- system turns are real `system` turns of its chat format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from models.ixc25.checks import check_packages, check_tensor_names
from models.ixc25.loading import ATTENTIONS, load_ixc_model
from models.ixc25.model import Ixc25RewardModel
from models.ixc25.offline import cached_hub_file, check_offline_assets, hub_reachable, local_clip
from models.loading import (
    ModelConfigError,
    check_device,
    checkpoint_fingerprint,
    looks_like_hub_name,
    resolve_device,
    resolve_dtype,
    take_options,
)
from models.spec import BackendSpec
from models.tokens import IXC_VIDEO_TOKENS, IxcTokenEstimator

DEFAULTS: dict[str, Any] = {
    "path": "internlm/internlm-xcomposer2d5-7b-reward",
    "dtype": "auto",
    "device": "auto",
    "hd_num": 9,
    # Samples longer than this (the model's own eval uses 16384) go to errors/ as too_long.
    "max_length": 16384,
    # Local copies of what the model's code downloads while it loads (README, ixc25).
    "font_path": None,
    "clip_path": None,
    # Padded tokens (samples x longest) of one forward pass: the run's batch is split into
    # length-sorted micro-batches within it, which bounds activation memory (about 330 KB a
    # token in fp32 on the CPU at the real width, half in bf16). A smaller max_batch_tokens of
    # the run wins; a longer sample gets a forward of its own.
    "forward_tokens": 16384,
    "max_batch_tokens": None,
    "max_batch_size": None,
    "video_tokens": IXC_VIDEO_TOKENS,
    "trust_remote_code": False,
    "remote_code_allowlist": [],
    # Where the per-call media directories go (default: the system temp dir).
    "tmp_dir": None,
    # auto: flash-attn when it imports, else torch's scaled-dot-product attention; or
    # flash_attention_2, sdpa, eager (the checkpoint's own quadratic-memory choice).
    "attention": "auto",
    # batched: inputs built ahead from the decoded media, one vision pass and one forward per
    # micro-batch (`ixc25/batched.py`); upstream: the checkpoint's own get_scores.
    "engine": "batched",
    # Score every assistant turn: the model reads one reward token at the end, so each
    # conversation is also scored cut after each of its answers (more forward work: README).
    "per_turn": False,
}
ENGINES = ("batched", "upstream")


class RemoteCodeNotAllowed(ModelConfigError):
    pass


def check_remote_code_allowed(path: str, trust: bool, allowlist: Sequence[str]) -> None:
    """Refuse to run checkpoint-supplied code unless the user opted in for this path."""
    if trust:
        return
    wanted = {path, os.path.realpath(path)}
    allowed = {entry for item in allowlist for entry in (item, os.path.realpath(item))}
    if wanted & allowed:
        return
    raise RemoteCodeNotAllowed(
        f"the ixc25 backend runs Python code shipped with the checkpoint {path!r} "
        "(trust_remote_code). Opt in with --trust-remote-code, or list the checkpoint under "
        f"`remote_code_allowlist:` in the config (e.g. remote_code_allowlist: [{path!r}]) "
        "after reviewing its code."
    )


def preflight(options: dict[str, Any] | None, workers_here: bool = True) -> None:
    """Everything load_ixc25 would refuse, found without loading weights (one-line errors):
    the opt-in and options; where the workers run on this machine (`workers_here`; remote
    workers such as Dataflow's or Spark's see their own files, packages and GPUs), the
    checkpoint, font and vision tower, the packages its code imports, the device, and whether
    the checkpoint's tensor names fill the model its code builds (`ixc25/checks.py`).
    """
    options = take_options("ixc25", options, DEFAULTS)
    path = str(options["path"])
    check_remote_code_allowed(
        path, bool(options["trust_remote_code"]), options["remote_code_allowlist"] or []
    )
    for key in ("hd_num", "max_length", "video_tokens", "forward_tokens"):
        if not isinstance(options[key], int) or options[key] < 1:
            raise ModelConfigError(f"ixc25: {key} must be a positive integer, got {options[key]!r}")
    if not isinstance(options["per_turn"], bool):
        given = options["per_turn"]
        raise ModelConfigError(f"ixc25: per_turn must be true or false, got {given!r}")
    for key, allowed in (("engine", ENGINES), ("attention", ATTENTIONS)):
        if options[key] not in allowed:
            raise ModelConfigError(
                f"ixc25: {key} must be one of {', '.join(allowed)}, got {options[key]!r}"
            )
    if not workers_here:
        return
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ModelConfigError(f"ixc25: {path!r} holds no config.json; is it the checkpoint?")
    elif not looks_like_hub_name(path) or not (
        cached_hub_file(path, "config.json") or hub_reachable()
    ):
        raise ModelConfigError(
            f"ixc25: checkpoint folder {path!r} not found; download it once with "
            f"`hf download internlm/internlm-xcomposer2d5-7b-reward --local-dir "
            f"{path}`"
        )
    check_offline_assets(options["font_path"], options["clip_path"])
    check_packages()
    check_device("ixc25", path, options["device"])
    folder = path if os.path.isdir(path) else _cached_snapshot(path)
    if folder:
        check_tensor_names(folder, local_clip(options["clip_path"]))


def _cached_snapshot(repo: str) -> str | None:
    config_file = cached_hub_file(repo, "config.json")
    return os.path.dirname(config_file) if config_file else None


def load_ixc25(options: dict[str, Any] | None = None) -> Ixc25RewardModel:
    """Factory: options as in `DEFAULTS`; loads the weights once."""
    options = take_options("ixc25", options, DEFAULTS)
    path = str(options["path"])
    check_remote_code_allowed(
        path, bool(options["trust_remote_code"]), options["remote_code_allowlist"] or []
    )
    check_device("ixc25", path, options["device"])
    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    model = load_ixc_model(
        path, device, dtype, options["font_path"], options["clip_path"], options["attention"]
    )
    if options["engine"] == "upstream":
        return Ixc25RewardModel(model, device, dtype, options)
    from models.ixc25.batched import Ixc25BatchedModel

    return Ixc25BatchedModel(model, device, dtype, options)


def _estimator(options: dict[str, Any]) -> IxcTokenEstimator:
    return IxcTokenEstimator(int(options["hd_num"]), int(options["video_tokens"]))


def _fingerprint(options: dict[str, Any]) -> str | None:
    return checkpoint_fingerprint(options.get("path"))


SPEC = BackendSpec(
    name="ixc25",
    defaults=DEFAULTS,
    load=load_ixc25,
    estimator=_estimator,
    check=preflight,
    fingerprint=_fingerprint,
    run_options=(
        "trust_remote_code",
        "remote_code_allowlist",
        "max_batch_tokens",
        "max_batch_size",
    ),
)
