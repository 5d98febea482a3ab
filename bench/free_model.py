"""A stand-in reward model that costs nothing, so a benchmark measures the pipeline alone.

The score is a fixed function of the sample's id (one sample in five scores below the sample
config's threshold of -2.0), so routes are the same on every run and split between clean/ and
review/ as a real model's would. A multi-turn conversation gets that score for every turn too
(`Reward`), so its turn scores travel through the pipeline and the score cache as a turn-reading
backend's would, without moving its route.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from models.base import Reward
from transforms.core.record import Sample


class FreeRewardModel:
    name = "free"

    def score(self, samples: Sequence[Sample]) -> list[float | Reward]:
        return [self._reward(sample) for sample in samples]

    @staticmethod
    def _reward(sample: Sample) -> float | Reward:
        score = -3.0 if zlib.crc32(sample.id.encode()) % 5 == 0 else -1.0
        turns = len(sample.assistant_turns())
        return Reward(score, (score,) * turns) if turns > 1 else score
