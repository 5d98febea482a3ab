"""Defect recall and false-flag rate of a finished run, with the sample's labels.jsonl as truth.

python bench/sample_quality.py --labels data/sample/labels.jsonl --run out/sample/<run>
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import fsspec


def flagged_ids(run: str) -> set[str]:
    with fsspec.open(f"{run.rstrip('/')}/report/flagged.jsonl", "rt") as handle:
        return {json.loads(line)["id"] for line in handle if line.strip()}


def quality(labels_path: str, run: str) -> dict:
    flagged = flagged_ids(run)
    per_class: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    clean_total = clean_flagged = 0
    for line in Path(labels_path).read_text().splitlines():
        label = json.loads(line)
        if label["defect"] is None:
            clean_total += 1
            clean_flagged += label["id"] in flagged
        else:
            per_class[label["defect"]] += 1
            caught[label["defect"]] += label["id"] in flagged
    return {
        "recall": {d: round(caught[d] / n, 4) for d, n in sorted(per_class.items())},
        "defects": dict(sorted(per_class.items())),
        "clean_flagged_fraction": round(clean_flagged / max(clean_total, 1), 4),
        "clean_total": clean_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--run", required=True)
    args = parser.parse_args()
    print(json.dumps(quality(args.labels, args.run), indent=2))


if __name__ == "__main__":
    main()
