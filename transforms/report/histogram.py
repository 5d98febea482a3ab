"""A source's score histogram as inline SVG: clean stacked on review per bin, the cut dashed;
and two runs' histograms of one source overlaid (the report's "since the last run").

Both axes are labelled (reward score; number of samples, with ticks), so a reader can tell a
bin of 3 from a bin of 3,000 without hovering; each bar's title gives its exact counts.
"""

from __future__ import annotations

import math
from html import escape

from transforms.core.routes import CLEAN, REVIEW
from transforms.report.rows import num
from transforms.report.scan import StreamingHistogram

SVG_WIDTH, SVG_HEIGHT = 580, 210  # px
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 26, 40  # px of margin around the plot
Y_TICKS = 4


def count_ticks(peak: int, ticks: int = Y_TICKS) -> list[int]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least `peak`."""
    if peak <= 0:
        return [0]
    raw = peak / ticks
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(s * power for s in (1, 2, 5, 10) if s * power >= raw)
    step = max(int(step), 1)
    return list(range(0, math.ceil(peak / step) * step + 1, step))


def histogram_svg(source: str, histogram: StreamingHistogram, cut: float | None) -> str:
    rows = histogram.rows()
    if not rows:
        return f'<p class="muted">{escape(source)}: no scored samples.</p>'
    low, high = rows[0][0], rows[-1][1]
    has_cut = isinstance(cut, (int, float)) and math.isfinite(cut)
    if has_cut:
        low, high = min(low, cut - histogram.width), max(high, cut + histogram.width)
    plot_w, plot_h = SVG_WIDTH - LEFT - RIGHT, SVG_HEIGHT - TOP - BOTTOM
    base_y = TOP + plot_h
    ticks = count_ticks(max(clean + review for _, _, clean, review in rows))
    top_count = ticks[-1] or 1

    def x(value: float) -> float:
        return LEFT + (value - low) / (high - low) * plot_w

    def y(count: float) -> float:
        return base_y - count / top_count * plot_h

    parts = [
        f'<svg class="histogram" width="{SVG_WIDTH}" height="{SVG_HEIGHT}" '
        f'viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img">'
        f"<title>{escape(source)}: reward score histogram</title>"
    ]
    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" '
            f'y2="{y(tick):.1f}"/><line class="tick" x1="{LEFT - 4}" y1="{y(tick):.1f}" '
            f'x2="{LEFT}" y2="{y(tick):.1f}"/><text class="count-label" x="{LEFT - 6}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for bin_low, bin_high, clean, review in rows:
        top = base_y
        for count, route in ((review, REVIEW), (clean, CLEAN)):
            if count:
                height = count / top_count * plot_h
                top -= height
                parts.append(
                    f'<rect class="bar {route}" x="{x(bin_low):.1f}" y="{top:.1f}" '
                    f'width="{max(x(bin_high) - x(bin_low) - 1, 1):.1f}" height="{height:.1f}">'
                    f"<title>[{num(bin_low)}, {num(bin_high)}): {clean} clean, "
                    f"{review} review</title></rect>"
                )
    unscored = f" · {histogram.unscored} not scored" if histogram.unscored else ""
    parts.append(_axes(low, high, base_y, plot_w, plot_h))
    parts.append(f'<text x="{LEFT}" y="{TOP - 10}">{escape(source)}{unscored}</text>')
    if has_cut:
        parts.append(
            f'<line class="cut" x1="{x(cut):.1f}" y1="{TOP - 2}" x2="{x(cut):.1f}" '
            f'y2="{base_y}"/><text x="{x(cut) + 3:.1f}" y="{TOP + 10}">cut {num(cut)}</text>'
        )
    return "".join(parts) + "</svg>"


def overlay_svg(source: str, overlay: dict) -> str:
    """The previous run's scores (grey) under this run's (orange outline), same bins.

    `overlay` is a comparison's `histogram`: {low, high, before: [counts], after: [counts]}.
    """
    before, after = overlay["before"], overlay["after"]
    low, high = overlay["low"], overlay["high"]
    if high <= low:
        high = low + 1.0
    plot_w, plot_h = SVG_WIDTH - LEFT - RIGHT, SVG_HEIGHT - TOP - BOTTOM
    base_y = TOP + plot_h
    ticks = count_ticks(max([*before, *after, 0]))
    top_count = ticks[-1] or 1
    width = plot_w / len(before)

    def y(count: float) -> float:
        return base_y - count / top_count * plot_h

    parts = [
        f'<svg class="histogram overlay" width="{SVG_WIDTH}" height="{SVG_HEIGHT}" '
        f'viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img">'
        f"<title>{escape(source)}: scores of the previous run and of this one</title>"
    ]
    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" '
            f'y2="{y(tick):.1f}"/><text class="count-label" x="{LEFT - 6}" '
            f'y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    step = (high - low) / len(before)
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        span = f"[{num(low + i * step)}, {num(low + (i + 1) * step)})"
        for count, run, label in ((old, "before", "previous run"), (new, "after", "this run")):
            if count:
                parts.append(
                    f'<rect class="bar {run}" x="{LEFT + i * width:.1f}" y="{y(count):.1f}" '
                    f'width="{max(width - 1, 1):.1f}" height="{base_y - y(count):.1f}">'
                    f"<title>{span}: {count} in the {label}</title></rect>"
                )
    parts.append(_axes(low, high, base_y, plot_w, plot_h))
    parts.append(
        f'<text x="{LEFT}" y="{TOP - 10}">{escape(source)}: grey the previous run, '
        "orange this one</text>"
    )
    return "".join(parts) + "</svg>"


def _axes(low: float, high: float, base_y: float, plot_w: float, plot_h: float) -> str:
    """Both histograms' axes: the lines, the score range at the ends, the two axis labels."""
    return (
        f'<line class="axis" x1="{LEFT}" y1="{base_y}" x2="{LEFT + plot_w}" y2="{base_y}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base_y}"/>'
        f'<text x="{LEFT}" y="{base_y + 14}">{num(low)}</text>'
        f'<text x="{LEFT + plot_w}" y="{base_y + 14}" text-anchor="end">{num(high)}</text>'
        f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{SVG_HEIGHT - 6}" '
        'text-anchor="middle">reward score</text>'
        f'<text class="axis-label" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">samples per bin</text>'
    )
