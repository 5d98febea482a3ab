"""`rmclean apply-review`: a finished run plus reviewers' decisions -> a new output prefix.

The new prefix has the run's layout plus `dropped/`: `clean/` holds the run's clean samples and
the ones reviewers kept (`review_decision: keep`, with the note), `review/` the undecided ones
(or `clean/` / `dropped/` under `--undecided keep|drop`, marked `undecided`), `dropped/` the
dropped ones, `errors/` a copy; then its own summary, report page, id -> shard index and
`_SUCCESS` last. Everything is checked before anything is written: the run must be finished,
every decision must come from this run and name exactly one of its samples, and no two may
disagree. The decisions are held in memory (a person made them, so they are few); the samples
are streamed one shard at a time, and a shard holding no decided sample is copied whole
without being decoded, which is what the run's index makes possible.
"""

from __future__ import annotations

import csv
import json
import time

import fsspec

from pipelines.run_folders.output_prefix import prepare_output
from transforms.core.routes import CLEAN, DROPPED, ERRORS, REVIEW
from transforms.core.run_identity import new_run_id, run_id
from transforms.core.run_info import RunInfo
from transforms.core.storage import absolute_url, copy_file, glob_under
from transforms.report import summary as report
from transforms.report.html import write_html_report
from transforms.report.scan import load_summary
from transforms.review.decisions import KEEP, read_decisions
from transforms.review.evidence import threshold_evidence
from transforms.review.matching import Match, decided, match_decisions
from transforms.review.reroute import (
    DESTINATIONS,
    REPAIR_COUNTS,
    Destination,
    ReviewNotConservedError,
    ReviewRouter,
    route_samples,
)
from transforms.samples.repair import ORIGINAL
from transforms.shards.shard_index import index_path

UNDECIDED_POLICIES = (REVIEW, "keep", "drop")
DEFAULT_SHARD_MB = 256  # runs written before summary.json recorded shard_mb


class ApplyReviewError(ValueError):
    """Bad input found before anything was written; the message says what to do."""


def _check_locations(run_prefix: str, new_prefix: str) -> None:
    run_path = absolute_url(run_prefix).rstrip("/")
    new_path = absolute_url(new_prefix).rstrip("/")
    if (
        new_path == run_path
        or new_path.startswith(run_path + "/")
        or run_path.startswith(new_path + "/")
    ):
        raise ApplyReviewError(
            f"--output {new_prefix} overlaps the run at {run_prefix}: write the reviewed "
            "dataset to a prefix of its own"
        )


def _copy_errors(run_prefix: str, new_prefix: str) -> int:
    files = glob_under(run_prefix, (f"{ERRORS}/*.jsonl",))
    for path in files:
        copy_file(path, f"{new_prefix}/{ERRORS}/{path.rsplit('/', 1)[-1]}")
    return len(files)


def _write_flagged(run_prefix: str, new_prefix: str, decided: set, keep_undecided: bool) -> None:
    """report/flagged.jsonl and .csv of the new review/: the run's rows, less the decided."""
    fs, root = fsspec.core.url_to_fs(run_prefix)
    with fsspec.open(f"{new_prefix}/report/flagged.jsonl", "wt", encoding="utf-8") as out:
        if keep_undecided and fs.exists(f"{root}/report/flagged.jsonl"):
            with fs.open(f"{root}/report/flagged.jsonl", "r", encoding="utf-8") as lines:
                for line in lines:
                    row = json.loads(line) if line.strip() else None
                    if row and (row.get("source"), row.get("origin") or "") not in decided:
                        out.write(line if line.endswith("\n") else line + "\n")
    with fsspec.open(f"{new_prefix}/report/flagged.csv", "wt", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(report.FLAGGED_COLUMNS)
        if keep_undecided and fs.exists(f"{root}/report/flagged.csv"):
            with fs.open(f"{root}/report/flagged.csv", "r", encoding="utf-8") as handle:
                rows = csv.reader(handle)
                header = next(rows, [])
                source, origin = header.index("source"), header.index("origin")
                for row in rows:
                    if (row[source], row[origin]) not in decided:
                        writer.writerow(row)


def _new_counts(run_summary: dict, routed: dict[str, dict[str, int]]) -> dict:
    """Per source: the run's input and errors, where the samples went, and, for a repaired
    run, its repairs (as the run counted them: a prefix in clean, its original apart)."""
    per_source = {}
    old = run_summary["counts"]["per_source"]
    repairs = REPAIR_COUNTS if run_summary.get("repair") else ()
    for source in sorted(set(old) | set(routed)):
        counts = routed.get(source, dict.fromkeys((*DESTINATIONS, *REPAIR_COUNTS), 0))
        per_source[source] = {
            "input": old.get(source, {}).get("input", 0),
            **{key: counts[key] for key in DESTINATIONS},
            ERRORS: old.get(source, {}).get(ERRORS, 0),
            **{key: counts[key] for key in repairs},
        }
    keys = ("input", *DESTINATIONS, ERRORS, *repairs)
    total = {key: sum(c[key] for c in per_source.values()) for key in keys}
    return {"total": total, "per_source": per_source}


def _repairs(run_summary: dict, counts: dict, matches) -> dict:
    """summary.json's `repair` for the reviewed prefix: the prefixes still standing, and how
    many originals reviewers kept whole instead."""
    if not run_summary.get("repair"):
        return {}
    restored = sum(m.repair == ORIGINAL and m.verdict == KEEP for m in matches)
    mode = run_summary["repair"].get("mode")
    return {"repair": {"mode": mode, "repaired": counts["total"]["repaired"], "restored": restored}}


def check_review_conservation(counts: dict) -> None:
    broken = [
        f"{source}: input {c['input']} != clean {c[CLEAN]} + review {c[REVIEW]} + dropped "
        f"{c[DROPPED]} + errors {c[ERRORS]}"
        for source, c in counts["per_source"].items()
        if c["input"] != c[CLEAN] + c[REVIEW] + c[DROPPED] + c[ERRORS]
    ]
    broken += [
        f"{source}: {c['repaired']} repaired prefixes in clean/ but "
        f"{c['repaired_originals']} originals beside them"
        for source, c in counts["per_source"].items()
        if c.get("repaired", 0) != c.get("repaired_originals", 0)
    ]
    if broken:
        raise ReviewNotConservedError("sample counts do not add up: " + "; ".join(broken))


def apply_review(
    run_prefix: str,
    decision_files: list[str],
    new_prefix: str,
    undecided: str = REVIEW,
    overwrite: bool = False,
) -> dict:
    """Write the reviewed dataset to `new_prefix`; return its summary.

    Raises ApplyReviewError, DecisionError, MissingIndexError, ReportInputError or
    OutputExistsError before writing anything; ReviewNotConservedError if the run's shards
    changed under it (then no `_SUCCESS` is written).
    """
    started = time.time()
    run_prefix, new_prefix = run_prefix.rstrip("/"), new_prefix.rstrip("/")
    if undecided not in UNDECIDED_POLICIES:
        raise ApplyReviewError(f"--undecided must be one of {', '.join(UNDECIDED_POLICIES)}")
    fs, root = fsspec.core.url_to_fs(run_prefix)
    summary = load_summary(fs, root)
    if not fs.exists(f"{root}/_SUCCESS"):
        raise ApplyReviewError(f"{run_prefix} has no _SUCCESS: the run did not finish")
    _check_locations(run_prefix, new_prefix)
    decisions = read_decisions(decision_files, run_id(summary))
    index_files = {route: index_path(run_prefix, route) for route in (CLEAN, REVIEW)}
    matches = match_decisions(decisions, index_files)
    prepare_output(new_prefix, overwrite)  # the first write, once everything checked out

    by_shard: dict[str, dict[str, Match]] = {}
    for (shard, position), match in matches.items():
        by_shard.setdefault(shard, {})[position] = match
    file_format = summary.get("format") or "parquet"
    shard_mb = summary.get("shard_mb") or DEFAULT_SHARD_MB
    new_id = new_run_id()
    # Shards rewritten here say so; shards copied whole keep the run's own information.
    run_info = RunInfo(
        new_id,
        summary.get("model") or "",
        summary.get("text_model"),
        summary.get("threshold"),
        summary.get("percentile"),
        summary.get("cuts"),
    )
    destinations = {
        folder: Destination(new_prefix, folder, file_format, shard_mb, run_info)
        for folder in DESTINATIONS
    }
    router = ReviewRouter(undecided, destinations)
    route_samples(run_prefix, router, by_shard)
    for destination in destinations.values():
        destination.finish()
    _copy_errors(run_prefix, new_prefix)

    counts = _new_counts(summary, router.counts)
    verdicts = [m.verdict for m in decided(matches.values())]
    new_summary = {
        **summary,
        "run_id": new_id,
        "rmclean_version": run_info.rmclean_version,
        "output": new_prefix,
        "counts": counts,
        **_repairs(summary, counts, matches.values()),
        "review": {
            "from_run": run_id(summary),
            "from_output": run_prefix,
            "decision_files": list(decision_files),
            "undecided": undecided,
            "decisions": {"keep": verdicts.count("keep"), "drop": verdicts.count("drop")},
            "threshold_evidence": threshold_evidence(decided(matches.values())),
            "seconds": round(time.time() - started, 3),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    report.write_json(f"{new_prefix}/report/summary.json", new_summary)
    check_review_conservation(counts)
    decided_in_review = {(m.source, m.origin) for m in matches.values() if m.route == REVIEW}
    _write_flagged(run_prefix, new_prefix, decided_in_review, undecided == REVIEW)
    write_html_report(new_prefix, new_summary)
    report.write_success(new_prefix)
    return new_summary
