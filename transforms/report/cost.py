"""The report page's "Scoring cost" section, from summary.json's `batches` and `cost`.

Per device: samples scored, samples/s and the fraction of the scoring span spent inside the
model's `score()`; for the run: device-hours per million samples, the batch sizes and how
many scores the score cache served (a rerun's cost is mostly what the cache spared); per model,
the work its forward passes did (real and computed tokens, padding, vision and language-model
seconds) when its backend reports it. Runs made before these figures existed lack the keys, and
the section says so.
"""

from __future__ import annotations

from html import escape
from typing import Any

from transforms.report.rows import num


def _fraction(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "–"


def cost_html(summary: dict[str, Any]) -> str:
    cost, batches = summary.get("cost"), summary.get("batches")
    if not cost:
        return '<p class="muted">This run did not record its scoring cost.</p>'
    rows = "".join(
        f'<tr class="device-cost"><td>{escape(str(device))}</td>'
        f'<td class="num">{escape(str(figures.get("samples", 0)))}</td>'
        f'<td class="num">{num(figures.get("samples_per_s"))}</td>'
        f'<td class="num">{_fraction(figures.get("busy_fraction"))}</td></tr>'
        for device, figures in (cost.get("devices") or {}).items()
    )
    from_cache = (summary.get("scoring") or {}).get("from_cache") or 0
    if not rows:
        spared = f": all {from_cache} scores came from the score cache" if from_cache else ""
        rows = f'<tr><td colspan="4" class="muted">nothing was scored by a model{spared}</td></tr>'
    cache_line = (
        f'<p class="from-cache">{from_cache} scores came from the score cache (not scored '
        "again).</p>"
        if from_cache
        else ""
    )
    batch_line = ""
    if batches:
        batch_line = (
            f"{escape(str(batches.get('count', 0)))} batches of "
            f"{num(batches.get('mean_samples'))} samples and "
            f"{num(batches.get('mean_tokens'), 4)} estimated tokens on average; "
        )
    return (
        '<table class="cost"><tr><th>device</th><th class="num">samples</th>'
        '<th class="num">samples/s</th><th class="num">model busy</th></tr>'
        f"{rows}</table><p>{batch_line}scoring span "
        f"{num(cost.get('scoring_span_seconds'), 4)} s; "
        f'<b class="device-hours">{num(cost.get("device_hours_per_million_samples"))}</b> '
        "device-hours per million samples. Model busy: time inside the model's score() over "
        f"the span from the first batch to the last.</p>{cache_line}"
        f"{work_html(batches or {})}"
    )


def _seconds(value: Any) -> str:
    return f"{num(value, 4)} s" if isinstance(value, (int, float)) else "–"


def work_html(batches: dict[str, Any]) -> str:
    """Per model: forward passes, real and computed tokens, padding, vision / language time."""
    by_model = batches.get("work_by_model") or {}
    if not by_model:
        return '<p class="muted">No model reported the tokens its forward passes computed.</p>'
    rows = "".join(
        f'<tr class="model-work"><td>{escape(str(model))}</td>'
        f'<td class="num">{escape(str(work.get("forward_passes")))}</td>'
        f'<td class="num">{escape(str(work.get("real_tokens")))}</td>'
        f'<td class="num">{escape(str(work.get("computed_tokens")))}</td>'
        f'<td class="num">{_fraction(work.get("padding_fraction"))}</td>'
        f'<td class="num">{_seconds(work.get("vision_seconds"))}</td>'
        f'<td class="num">{_seconds(work.get("language_seconds"))}</td></tr>'
        for model, work in by_model.items()
    )
    return (
        '<table class="cost"><tr><th>model</th><th class="num">forward passes</th>'
        '<th class="num">real tokens</th><th class="num">computed tokens</th>'
        '<th class="num">padding</th><th class="num">vision</th>'
        f'<th class="num">language model</th></tr>{rows}</table>'
        "<p>Real tokens: the samples' own; computed: every position the language model ran, "
        "padding included; times on the device's clock, retries of failing batches included."
        "</p>"
    )
