"""Reward backends by name, as `--model` / `MODEL=` selects them.

Besides the built-in names, `package.module:factory` loads any importable factory that returns
a `RewardModel`, so teams plug in their own backends without editing this file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from models.base import RewardModel


def _load_demo() -> RewardModel:
    from models.demo.model import DemoRewardModel

    return DemoRewardModel.from_pretrained()


LOADERS: dict[str, Callable[[], RewardModel]] = {"demo": _load_demo}


def loader_for(name: str) -> Callable[[], RewardModel]:
    if name in LOADERS:
        return LOADERS[name]
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load reward model factory {name!r}: {exc}") from exc
    known = ", ".join(sorted(LOADERS))
    raise ValueError(
        f"unknown reward model {name!r}; choose one of: {known}, or give package.module:factory"
    )
