"""Reward backends by name, as `--model` / `MODEL=` selects them."""

from __future__ import annotations

from collections.abc import Callable

from models.base import RewardModel


def _load_demo() -> RewardModel:
    from models.demo.model import DemoRewardModel

    return DemoRewardModel.from_pretrained()


LOADERS: dict[str, Callable[[], RewardModel]] = {"demo": _load_demo}


def loader_for(name: str) -> Callable[[], RewardModel]:
    try:
        return LOADERS[name]
    except KeyError:
        known = ", ".join(sorted(LOADERS))
        raise ValueError(f"unknown reward model {name!r}; choose one of: {known}") from None
