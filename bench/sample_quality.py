"""Defect recall and false-flag rate of a finished run, with the sample's labels.jsonl as truth,
in total and per source (faithful flagged per source, recall per class and per source x class);
and, for the multi-turn source (labels with a `turn`), whether the run found the wrong turn and
what a repair kept.

.venv/bin/python bench/sample_quality.py [--labels data/sample/labels.jsonl] [--run RUN] [--json]

Without `--run`, the latest finished run of configs/sample.yaml (its LATEST pointer).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import fsspec

from synth.scorecard import Scorecard
from transforms.shards.stored_samples import iter_stored_samples

SAMPLE_CONFIG = "configs/sample.yaml"


def flagged_rows(run: str) -> dict[tuple[str, str], dict]:
    """report/flagged.jsonl by (source, id)."""
    with fsspec.open(f"{run.rstrip('/')}/report/flagged.jsonl", "rt") as handle:
        rows = (json.loads(line) for line in handle if line.strip())
        return {(row.get("source"), row["id"]): row for row in rows}


def scorecard(labels_path: str, run: str) -> Scorecard:
    flagged = {sample_id for _, sample_id in flagged_rows(run)}
    card = Scorecard()
    for label in _labels(labels_path):
        card.add(label["source"], label["defect"], label["id"] in flagged)
    return card


def quality(labels_path: str, run: str) -> dict:
    """Totals (`recall`, `defects`, `clean_flagged_fraction`, ...) and `sources`: the same
    figures for each source."""
    return scorecard(labels_path, run).summary()


def _labels(labels_path: str) -> list[dict]:
    return [json.loads(line) for line in Path(labels_path).read_text().splitlines()]


def clean_turns(run: str, sources: set[str]) -> dict[tuple[str, str], int]:
    """(source, id) -> the assistant turns its record in clean/ holds, for `sources`."""
    fs, root = fsspec.core.url_to_fs(run.rstrip("/"))
    held = {}
    for shard in sorted(fs.glob(f"{root}/clean/part-*")):
        for _, sample in iter_stored_samples(fs, shard):
            if sample.source in sources:
                held[(sample.source, sample.id)] = len(sample.assistant_turns())
    return held


def turn_quality(labels_path: str, run: str) -> dict[str, dict]:
    """Per multi-turn source: of the defective conversations, how often the first turn below
    the cut is the planted one; of the faithful, how many were flagged or cut; and what
    `repair: truncate` kept: the whole good prefix (the turns before the planted one) of each
    defective conversation that has one, and never the planted turn."""
    labels = [label for label in _labels(labels_path) if "turn" in label]
    flagged = flagged_rows(run)
    held = clean_turns(run, {label["source"] for label in labels})
    figures: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for label in labels:
        key, turn = (label["source"], label["id"]), label["turn"]
        counts, row, kept = figures[label["source"]], flagged.get(key), held.get(key)
        if label["defect"] is None:
            counts["faithful"] += 1
            counts["faithful_flagged"] += row is not None
            counts["faithful_cut_short"] += row is not None and kept is not None
            continue
        counts["defective"] += 1
        counts["first_low_turn_is_planted"] += row is not None and row["low_score_turn"] == turn
        counts["planted_turn_in_clean"] += kept is not None and kept > turn
        if turn > 0:
            counts["with_good_prefix"] += 1
            counts["good_prefix_kept_whole"] += kept == turn
            repaired = row is not None and row.get("repaired_prefix_turns") is not None
            counts["planted_turn_in_a_repair"] += repaired and kept is not None and kept > turn
    return {source: _shares(dict(counts)) for source, counts in sorted(figures.items())}


def _shares(counts: dict) -> dict:
    counts = {key: int(value) for key, value in counts.items()}
    for part, whole in (
        ("first_low_turn_is_planted", "defective"),
        ("faithful_flagged", "faithful"),
        ("good_prefix_kept_whole", "with_good_prefix"),
    ):
        counts[f"{part}_share"] = round(counts.get(part, 0) / max(counts.get(whole, 0), 1), 4)
    return counts


def turn_table(figures: dict[str, dict]) -> str:
    lines = []
    for source, f in figures.items():
        lines.append(
            f"{source}: first low turn is the planted one {f.get('first_low_turn_is_planted', 0)}"
            f"/{f.get('defective', 0)}; faithful flagged {f.get('faithful_flagged', 0)}"
            f"/{f.get('faithful', 0)}; good prefix kept whole {f.get('good_prefix_kept_whole', 0)}"
            f"/{f.get('with_good_prefix', 0)}; planted turn in a repair "
            f"{f.get('planted_turn_in_a_repair', 0)}, in clean at all "
            f"{f.get('planted_turn_in_clean', 0)}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--labels", default="data/sample/labels.jsonl")
    parser.add_argument("--run", help="a finished run (default: the latest run of the sample)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.run is None:
        from pipelines.config import load_config
        from pipelines.run_folders.latest_run import NoFinishedRunError, latest_run

        try:
            args.run = latest_run(load_config(SAMPLE_CONFIG).output)
        except NoFinishedRunError as exc:
            parser.error(f"{exc} (or pass --run)")
    card = scorecard(args.labels, args.run)
    turns = turn_quality(args.labels, args.run)
    if args.json:
        print(json.dumps({**card.summary(), "turns": turns}, indent=2))
    else:
        print(card.table())
        print(turn_table(turns))


if __name__ == "__main__":
    main()
