"""Defect recall and false-flag rate of a finished run, with the sample's labels.jsonl as truth,
in total and per source (faithful flagged per source, recall per class and per source x class).

python bench/sample_quality.py --labels data/sample/labels.jsonl --run out/sample/<run> [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import fsspec

from synth.scorecard import Scorecard


def flagged_ids(run: str) -> set[str]:
    with fsspec.open(f"{run.rstrip('/')}/report/flagged.jsonl", "rt") as handle:
        return {json.loads(line)["id"] for line in handle if line.strip()}


def scorecard(labels_path: str, run: str) -> Scorecard:
    flagged = flagged_ids(run)
    card = Scorecard()
    for line in Path(labels_path).read_text().splitlines():
        label = json.loads(line)
        card.add(label["source"], label["defect"], label["id"] in flagged)
    return card


def quality(labels_path: str, run: str) -> dict:
    """Totals (`recall`, `defects`, `clean_flagged_fraction`, ...) and `sources`: the same
    figures for each source."""
    return scorecard(labels_path, run).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    card = scorecard(args.labels, args.run)
    print(json.dumps(card.summary(), indent=2) if args.json else card.table())


if __name__ == "__main__":
    main()
