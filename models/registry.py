"""Reward backends by name, as `--model` / `MODEL=` selects them.

Every backend is a factory taking one options dict (the config's `model_options`: checkpoint
`path`, `dtype`, `device`, batching and backend-specific keys) that loads the weights once and
returns a `RewardModel`. `loader_for` binds the options into a zero-argument, picklable loader
for the handler's `load_model`; `token_estimator_for` gives the matching `estimate_tokens`
without loading any weights, for token-budget batching.

`preflight` checks a backend's options without loading any weights (unknown keys, missing
files, the remote-code opt-in, a device that cannot run the checkpoint), so a bad config ends
the command before the pipeline starts, with one line (`ModelConfigError`).

Besides the built-in names, `package.module:factory` loads any importable factory that returns
a `RewardModel` (called with the options dict if it takes an argument), so teams plug in their
own backends without editing this file.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.base import RewardModel
from models.loading import ModelConfigError
from transforms.record import Sample

Options = dict[str, Any]


def _check_demo(options: Options | None, workers_here: bool = True) -> None:
    options = dict(options or {})
    unknown = set(options) - {"path", "device"}
    if unknown:
        raise ModelConfigError(
            f"demo: unknown model option(s) {sorted(unknown)}; known: ['device', 'path']"
        )
    if workers_here and options.get("path") and not os.path.isdir(options["path"]):
        raise ModelConfigError(f"demo: model folder {options['path']!r} not found")


def _load_demo(options: Options | None = None) -> RewardModel:
    from models.demo.model import DEFAULT_DIR, DemoRewardModel

    _check_demo(options)
    options = options or {}
    return DemoRewardModel.from_pretrained(
        options.get("path") or DEFAULT_DIR, options.get("device") or "cpu"
    )


def _load_ixc25(options: Options | None = None) -> RewardModel:
    from models.ixc25 import load_ixc25

    return load_ixc25(options)


def _load_vlm_value_head(options: Options | None = None) -> RewardModel:
    from models.vlm_value_head import load_vlm_value_head

    return load_vlm_value_head(options)


def _load_text_rm(options: Options | None = None) -> RewardModel:
    from models.text_rm import load_text_rm

    return load_text_rm(options)


FACTORIES: dict[str, Callable[[Options | None], RewardModel]] = {
    "demo": _load_demo,
    "ixc25": _load_ixc25,
    "vlm-value-head": _load_vlm_value_head,
    "text-rm": _load_text_rm,
}


def _check_ixc25(options: Options | None, workers_here: bool = True) -> None:
    from models.ixc25 import preflight as check

    check(options, workers_here)


def _check_vlm_value_head(options: Options | None, workers_here: bool = True) -> None:
    from models.vlm_value_head import preflight as check

    check(options, workers_here)


def _check_text_rm(options: Options | None, workers_here: bool = True) -> None:
    from models.text_rm import preflight as check

    check(options, workers_here)


# Option checks per backend, run before the pipeline starts (no weights are loaded).
PREFLIGHTS: dict[str, Callable[[Options | None, bool], None]] = {
    "demo": _check_demo,
    "ixc25": _check_ixc25,
    "vlm-value-head": _check_vlm_value_head,
    "text-rm": _check_text_rm,
}


def preflight(name: str, options: Options | None = None, workers_here: bool = True) -> None:
    """Raise `ModelConfigError` (one line) if backend `name` cannot load with `options`.

    `workers_here=False` (workers on other machines: Dataflow, Spark, Flink) checks the
    options only; files and the GPU are those of the workers, which check them when they load
    the weights.
    """
    if name in PREFLIGHTS:
        PREFLIGHTS[name](options, workers_here)
        return
    try:
        loader_for(name, options)  # plug-ins: the factory imports and takes the options
    except ModelConfigError:
        raise
    except ValueError as exc:
        raise ModelConfigError(str(exc)) from exc


def preflight_models(config: Any, workers_here: bool = True) -> None:
    """`preflight` for a run config's model and, if set, its text-only model, on every device
    `devices:` names (`auto` is checked as the backends' own `device: auto`)."""
    named = () if config.devices == "auto" else tuple(config.devices)
    for text in (False, True) if config.text_model else (False,):
        name = config.text_model if text else config.model
        options = config.backend_options(text)
        for device in named or (options.get("device"),):
            preflight(name, {**options, "device": device} if device else options, workers_here)


def _import_factory(name: str) -> Callable[..., RewardModel]:
    module_name, _, attribute = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ModelConfigError(f"cannot load reward model factory {name!r}: {exc}") from exc


def _takes_options(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )


def loader_for(name: str, options: Options | None = None) -> Callable[[], RewardModel]:
    """A zero-argument loader (picklable) that builds backend `name` with `options`."""
    options = dict(options or {})
    if name in FACTORIES:
        return functools.partial(FACTORIES[name], options)
    if ":" in name:
        factory = _import_factory(name)
        if _takes_options(factory):
            return functools.partial(factory, options)
        if options:
            raise ModelConfigError(f"factory {name!r} takes no options, got {sorted(options)}")
        return factory
    known = ", ".join(sorted(FACTORIES))
    raise ModelConfigError(
        f"unknown reward model {name!r}; choose one of: {known}, or give package.module:factory"
    )


@dataclass(frozen=True)
class CopyLoader:
    """Builds backend `name` on one device, its `device` option set to it (picklable).

    A plug-in factory that takes no options cannot be told where to go: it is built as it is,
    on one device only.
    """

    name: str
    options: Options

    def __call__(self, device: str) -> RewardModel:
        if self.name in FACTORIES or _takes_options(_import_factory(self.name)):
            return loader_for(self.name, {**self.options, "device": device})()
        return loader_for(self.name, self.options)()

    def check_devices(self, devices: list[str]) -> None:
        """Raise if this backend cannot be put on each of `devices`."""
        if len(devices) > 1 and self.name not in FACTORIES:
            if not _takes_options(_import_factory(self.name)):
                raise ValueError(
                    f"factory {self.name!r} takes no options, so it cannot be given a device; "
                    f"set devices: [one device] instead of {devices}, or let it take options"
                )


def token_estimator_for(name: str, options: Options | None = None) -> Callable[[Sample], int]:
    """`estimate_tokens` for backend `name` with `options`, built without loading weights.

    Picklable, so it can be Beam's `element_size_fn`. The estimate equals the loaded
    backend's own `estimate_tokens` (the backends build the same estimator classes).
    """
    from models import tokens

    options = dict(options or {})
    if name == "ixc25":
        from models.ixc25 import DEFAULTS

        merged = {**DEFAULTS, **options}
        return tokens.IxcTokenEstimator(int(merged["hd_num"]), int(merged["video_tokens"]))
    if name == "text-rm":
        return tokens.TextTokenEstimator()
    if name == "vlm-value-head":
        from models.vlm_value_head import DEFAULTS

        merged = {**DEFAULTS, **options}
        saved = _saved_pixel_bounds(merged.get("path"))
        return tokens.QwenTokenEstimator(
            int(merged["min_pixels"] or saved[0]),
            int(merged["max_pixels"] or saved[1]),
            int(merged["video_max_pixels"]),
            int(merged["video_max_frames"]),
        )
    # demo and plug-ins: a geometry-based estimate at Qwen-VL's default resolution.
    return tokens.QwenTokenEstimator()


def _saved_pixel_bounds(path: str | None) -> tuple[int, int]:
    """(min_pixels, max_pixels) from a local checkpoint's preprocessor_config.json."""
    default = (56 * 56, 28 * 28 * 1280)
    config_file = os.path.join(path, "preprocessor_config.json") if path else ""
    if not config_file or not os.path.exists(config_file):
        return default
    with open(config_file) as handle:
        saved = json.load(handle)
    size = saved.get("size") or {}
    return (
        int(size.get("shortest_edge", saved.get("min_pixels", default[0]))),
        int(size.get("longest_edge", saved.get("max_pixels", default[1]))),
    )
