"""What a run's scoring cost: batch sizes, the work the models did, and per device its
throughput and busy fraction.

Combined from one `BatchStat` per scored batch (`scoring/score_ahead.py`), so memory stays
constant however many batches a run scores. The work (`models/work.py`), per model and in all:
the tokens the samples have (real), the positions the language models computed (padding
included), the padding fraction, and the seconds in vision towers and language models where the
backend measures them. The scoring span runs from the first batch's start
to the last one's end, over every device; a device's busy fraction is its time inside the
model's `score()` over that span, and device-hours per million samples prices the span at
every device that scored.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from models.work import ModelWork


def _empty() -> dict[str, Any]:
    return {
        "count": 0,
        "samples": 0,
        "tokens": 0,
        "unestimated": 0,  # batches whose backend gave no token estimate
        "first": None,
        "last": None,
        "devices": {},
        "work": {},  # model name -> ModelWork summed over the batches that reported one
        "work_batches": 0,
    }


class CombineBatchStats(beam.CombineFn):
    """BatchStats -> {"batches": {...}, "cost": {...}} for summary.json."""

    def create_accumulator(self):
        return _empty()

    def add_input(self, acc, stat):
        acc["count"] += 1
        acc["samples"] += stat.samples
        if stat.tokens is None:
            acc["unestimated"] += 1
        else:
            acc["tokens"] += stat.tokens
        if stat.work is not None:
            acc["work_batches"] += 1
            acc["work"][stat.model] = acc["work"].get(stat.model, ModelWork()) + stat.work
        if stat.busy_seconds > 0 or stat.started_at > 0:
            end = stat.started_at + stat.busy_seconds
            acc["first"] = (
                stat.started_at if acc["first"] is None else min(acc["first"], stat.started_at)
            )
            acc["last"] = end if acc["last"] is None else max(acc["last"], end)
            key = (stat.host, stat.process, stat.device)
            device = acc["devices"].setdefault(key, [0, 0, 0.0])
            device[0] += 1
            device[1] += stat.samples
            device[2] += stat.busy_seconds
        return acc

    def merge_accumulators(self, accumulators):
        merged = _empty()
        for acc in accumulators:
            for key in ("count", "samples", "tokens", "unestimated", "work_batches"):
                merged[key] += acc[key]
            for model, work in acc["work"].items():
                merged["work"][model] = merged["work"].get(model, ModelWork()) + work
            for key, pick in (("first", min), ("last", max)):
                values = [v for v in (merged[key], acc[key]) if v is not None]
                merged[key] = pick(values) if values else None
            for device, (batches, samples, busy) in acc["devices"].items():
                total = merged["devices"].setdefault(device, [0, 0, 0.0])
                total[0] += batches
                total[1] += samples
                total[2] += busy
        return merged

    def extract_output(self, acc):
        return {"batches": batches_summary(acc), "cost": cost_summary(acc)}


def batches_summary(acc: dict[str, Any]) -> dict[str, Any]:
    count = acc["count"]
    return {
        "count": count,
        "mean_samples": round(acc["samples"] / count, 2) if count else 0,
        # None when the backend has no token estimate (a plain plug-in factory).
        "mean_tokens": round(acc["tokens"] / count, 1)
        if count and not acc["unestimated"]
        else (None if count else 0),
        # What the models' forward passes computed, from the batches whose backend says.
        "batches_reporting_work": acc["work_batches"],
        **work_figures(sum(acc["work"].values(), ModelWork())),
        "work_by_model": {model: work_figures(work) for model, work in sorted(acc["work"].items())},
    }


def work_figures(work: ModelWork) -> dict[str, Any]:
    """One model's (or the run's) work as summary.json shows it; None where nothing says."""
    reported = work.forward_passes > 0
    fraction = work.padding_fraction

    def seconds(value: float | None) -> float | None:
        return round(value, 3) if value is not None else None

    return {
        "forward_passes": work.forward_passes if reported else None,
        "real_tokens": work.real_tokens if reported else None,
        "computed_tokens": work.computed_tokens if reported else None,
        "padding_fraction": round(fraction, 4) if fraction is not None else None,
        "vision_seconds": seconds(work.vision_seconds),
        "language_seconds": seconds(work.language_seconds),
    }


def _labels(copies: list[tuple[str, int, str]]) -> dict[tuple[str, int, str], str]:
    """`cuda:0`; with several machines `host/cuda:0`; with several copies on a device (one per
    worker process, without `large_model`) `cuda:0 #2`."""
    hosts = {host for host, _, _ in copies}
    labels, seen = {}, {}
    for host, process, device in sorted(copies):
        name = device if len(hosts) <= 1 else f"{host}/{device}"
        seen[name] = seen.get(name, 0) + 1
        labels[(host, process, device)] = name
    numbered = {}
    for key, name in labels.items():
        if seen[name] > 1:
            numbered[name] = numbered.get(name, 0) + 1
            labels[key] = f"{name} #{numbered[name]}"
    return labels


def cost_summary(acc: dict[str, Any]) -> dict[str, Any]:
    span = (acc["last"] - acc["first"]) if acc["first"] is not None else 0.0
    labels = _labels(list(acc["devices"]))
    devices = {}
    scored = 0
    for key, (batches, samples, busy) in sorted(
        acc["devices"].items(), key=lambda item: labels[item[0]]
    ):
        scored += samples
        devices[labels[key]] = {
            "batches": batches,
            "samples": samples,
            "busy_seconds": round(busy, 3),
            "samples_per_s": round(samples / span, 3) if span else None,
            "busy_fraction": round(busy / span, 3) if span else None,
        }
    # Priced per physical device: copies sharing one device share its hours.
    device_hours = len({(host, device) for host, _, device in acc["devices"]}) * span / 3600
    return {
        "scoring_span_seconds": round(span, 3),
        "samples_scored": scored,
        "samples_per_s": round(scored / span, 3) if span else None,
        "devices": devices,
        "device_hours_per_million_samples": (
            round(device_hours / scored * 1e6, 3) if scored and span else None
        ),
    }
