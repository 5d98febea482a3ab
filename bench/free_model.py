"""A stand-in reward model that costs nothing, so a benchmark measures the pipeline alone.

The score is a fixed function of the sample's id (one sample in five scores below the sample
config's threshold of -2.0), so routes are the same on every run and split between clean/ and
review/ as a real model's would.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from transforms.core.record import Sample


class FreeRewardModel:
    name = "free"

    def score(self, samples: Sequence[Sample]) -> list[float]:
        return [-3.0 if zlib.crc32(s.id.encode()) % 5 == 0 else -1.0 for s in samples]
