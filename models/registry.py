"""Reward backends by name, as `--model` / `MODEL=` selects them: name -> `BackendSpec`.

The built-in backends each export a `SPEC` (`models/spec.py`) from their own module, imported
only when named. `package.module:attr` names a plug-in: `attr` is either a `BackendSpec` (with
its own options, loader, token estimator and checks) or a plain factory returning a
`RewardModel`, called with the options dict if it takes an argument. A plain factory has no
token estimator, so it batches by `batch_size` only.

`loader_for` binds options into a zero-argument, picklable loader; `token_estimator_for`
gives the spec's `estimate_tokens` without loading any weights; `preflight` runs the spec's
checks before the pipeline starts, so a bad config ends with one line (`ModelConfigError`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.base import RewardModel
from models.loading import ModelConfigError
from models.spec import BackendSpec, Estimator, Options

BUILT_IN = {
    "demo": "models.demo.spec",
    "ixc25": "models.ixc25.backend",
    "vlm-value-head": "models.value_head.vlm_value_head",
    "text-rm": "models.value_head.text_rm",
}


def spec_for(name: str) -> BackendSpec:
    """The spec of backend `name`: a built-in name or `package.module:attr`."""
    if name in BUILT_IN:
        return importlib.import_module(BUILT_IN[name]).SPEC
    if ":" not in name:
        known = ", ".join(sorted(BUILT_IN))
        raise ModelConfigError(
            f"unknown reward model {name!r}; choose one of: {known}, or give package.module:attr"
        )
    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ModelConfigError(f"cannot load reward model factory {name!r}: {exc}") from exc
    if isinstance(found, BackendSpec):
        return found
    if not callable(found):
        raise ModelConfigError(f"{name!r} is neither a BackendSpec nor a factory")
    return _factory_spec(name, found)


def _takes_options(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )


@dataclass(frozen=True)
class _Factory:
    """A plain plug-in factory as a spec's `load` (picklable: a top-level class)."""

    factory: Callable[..., RewardModel]
    takes_options: bool

    def __call__(self, options: Options) -> RewardModel:
        return self.factory(options) if self.takes_options else self.factory()


def _factory_spec(name: str, factory: Callable[..., RewardModel]) -> BackendSpec:
    takes = _takes_options(factory)

    def check(options: Options, workers_here: bool) -> None:
        if options and not takes:
            raise ModelConfigError(f"factory {name!r} takes no options, got {sorted(options)}")

    return BackendSpec(name=name, defaults=None, load=_Factory(factory, takes), check=check)


def loader_for(name: str, options: Options | None = None) -> Callable[[], RewardModel]:
    """A zero-argument loader (picklable) that builds backend `name` with `options`."""
    spec = spec_for(name)
    complete = spec.options(options)
    if isinstance(spec.load, _Factory):
        spec.check(complete, False)  # a plain factory's only check: does it take options
    return functools.partial(spec.load, complete)


def token_estimator_for(name: str, options: Options | None = None) -> Estimator:
    """`estimate_tokens` for backend `name` with `options`, built without loading weights.

    Picklable, so it can be Beam's `element_size_fn`. Raises ModelConfigError for a plug-in
    whose spec has no estimator.
    """
    spec = spec_for(name)
    if spec.estimator is None:
        raise ModelConfigError(
            f"{name} has no token estimator, so it cannot batch by max_batch_tokens: set "
            "batch_size instead, or export a BackendSpec with an estimator"
        )
    return spec.estimator(spec.options(options))


def weights_fingerprint(name: str, options: Options | None = None) -> str | None:
    """The spec's identity of the weights `options` load, if it has one and can tell."""
    spec = spec_for(name)
    return spec.fingerprint(spec.options(options)) if spec.fingerprint else None


def results_held(name: str) -> str | None:
    """What the backend's results hold beyond a score per sample (`BackendSpec.holds`)."""
    return spec_for(name).holds


@dataclass(frozen=True)
class CopyLoader:
    """Builds backend `name` on one device, its `device` option set to it (picklable).

    A plug-in factory that takes no options cannot be told where to go: it is built as it is,
    on one device only.
    """

    name: str
    options: Options

    def __call__(self, device: str) -> RewardModel:
        if self._placeable():
            return loader_for(self.name, {**self.options, "device": device})()
        return loader_for(self.name, self.options)()

    def _placeable(self) -> bool:
        spec = spec_for(self.name)
        if isinstance(spec.load, _Factory):
            return spec.load.takes_options
        return spec.defaults is None or "device" in spec.defaults

    def check_devices(self, devices: list[str]) -> None:
        """Raise if this backend cannot be put on each of `devices`."""
        if len(devices) > 1 and not self._placeable():
            raise ValueError(
                f"{self.name!r} takes no options, so it cannot be given a device; "
                f"set devices: [one device] instead of {devices}, or let it take options"
            )


def preflight(name: str, options: Options | None = None, workers_here: bool = True) -> None:
    """Raise `ModelConfigError` (one line) if backend `name` cannot load with `options`.

    `workers_here=False` (workers on other machines: Dataflow, Spark, Flink) checks the
    options only; files and the GPU are those of the workers, which check them when they load
    the weights.
    """
    spec = spec_for(name)
    spec.check(spec.options(options), workers_here)


def preflight_models(config: Any, workers_here: bool = True) -> None:
    """`preflight` for a run config's model and, if set, its text-only model, on every device
    `devices:` names (`auto` is checked as the backends' own `device: auto`)."""
    named = () if config.devices == "auto" else tuple(config.devices)
    for text in (False, True) if config.text_model else (False,):
        name = config.text_model if text else config.model
        options = config.backend_options(text)
        if config.max_batch_tokens:
            token_estimator_for(name, options)  # refuses a backend that cannot estimate
        for device in named or (options.get("device"),):
            preflight(name, {**options, "device": device} if device else options, workers_here)
