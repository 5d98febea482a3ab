"""Defect recall and false-flag rate of a finished run, with the sample's labels.jsonl as truth,
in total and per source (faithful flagged per source, recall per class and per source x class).

.venv/bin/python bench/sample_quality.py [--labels data/sample/labels.jsonl] [--run RUN] [--json]

Without `--run`, the latest finished run of configs/sample.yaml (its LATEST pointer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import fsspec

from synth.scorecard import Scorecard

SAMPLE_CONFIG = "configs/sample.yaml"


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
    parser.add_argument("--labels", default="data/sample/labels.jsonl")
    parser.add_argument("--run", help="a finished run (default: the latest run of the sample)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.run is None:
        from pipelines.config import load_config
        from pipelines.latest_run import NoFinishedRunError, latest_run

        try:
            args.run = latest_run(load_config(SAMPLE_CONFIG).output)
        except NoFinishedRunError as exc:
            parser.error(f"{exc} (or pass --run)")
    card = scorecard(args.labels, args.run)
    print(json.dumps(card.summary(), indent=2) if args.json else card.table())


if __name__ == "__main__":
    main()
