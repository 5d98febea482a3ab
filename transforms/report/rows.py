"""HTML for the sample rows a reviewer decides on, and the page frame around them.

The index and every review page share these, so a row looks and behaves the same wherever it
is: media, conversation, score, reason, source, id and origin, then Keep / Drop and a note. The
row's `data-*` attributes carry what a decision line needs (id, source, origin, route, score,
reason), escaped like all dataset text; the script (`assets.py`) reads them from there.
"""

from __future__ import annotations

from html import escape
from typing import Any

from transforms.core.record import ASSISTANT_ROLES
from transforms.core.routes import REVIEW
from transforms.report.assets import SCRIPT, STYLE
from transforms.report.scan import Pick, order_key
from transforms.samples.turns import first_low_turn

TURNS_SHOWN = 12  # messages: a six-turn conversation whole
TURN_CHARS = 1500
DETAIL_CHARS = 400
ORIGIN_CHARS = 400
LOWEST, NEAREST = "lowest", "nearest"


def clip(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return escape(text)
    return escape(text[:limit]) + f'<span class="muted">… [{len(text) - limit} more chars]</span>'


def num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) else "–"


def _media_html(pick: Pick) -> str:
    cells = []
    for src, thumb in pick.thumbs:
        if src:
            cells.append(
                f'<img src="{escape(src)}" alt="{escape(thumb.label)}" '
                f'title="{escape(thumb.label)}">'
            )
        else:
            cells.append(
                f'<div class="missing">{escape(thumb.label)}: {escape(thumb.problem or "")}</div>'
            )
    return (
        f'<div class="media">{"".join(cells)}</div>'
        if cells
        else '<span class="muted">text only</span>'
    )


def turn_strip_html(pick: Pick) -> str:
    """One cell per assistant turn with its score, low turns red, the first of them outlined;
    for a repaired original, the turns kept in clean/ underlined. Empty for one turn."""
    turns = pick.turn_scores or ()
    if len(turns) < 2 or pick.route != REVIEW:
        return ""
    first = first_low_turn(turns, pick.cut)
    kept = (pick.repaired_prefix or {}).get("turns") or 0
    cells = []
    for i, score in enumerate(turns):
        classes = ["turn-cell"]
        said = f"assistant turn {i + 1}: {num(score)}"
        if pick.cut is not None and score < pick.cut:
            classes.append("low")
            said += f", below the cut {num(pick.cut)}"
        if i == first:
            classes.append("first-low")
        if i < kept:
            classes.append("kept")
            said += ", kept in clean/"
        cells.append(
            f'<span class="{" ".join(classes)}" title="{escape(said)}">'
            f'<span class="turn-number">{i + 1}</span>{num(score, 2)}</span>'
        )
    if kept:
        cells.append(f'<span class="muted">turns 1–{kept} kept in clean/</span>')
    return (
        f'<div class="turn-strip" aria-label="score of each assistant turn">{"".join(cells)}</div>'
    )


def _turn_html(turn: dict, low: bool) -> str:
    classes = "turn low-turn" if low else "turn"
    return (
        f'<div class="{classes}"><span class="role">{escape(str(turn.get("from", "?")))}</span>'
        f"{clip(turn.get('value'), TURN_CHARS)}</div>"
    )


def _conversation_html(pick: Pick) -> str:
    """The first TURNS_SHOWN messages, the first low answer marked (and shown with its
    question even when it comes later)."""
    turns = pick.sample.conversations if pick.sample else []
    low = first_low_turn(pick.turn_scores, pick.cut) if pick.route == REVIEW else None
    answers = [i for i, turn in enumerate(turns) if turn.get("from") in ASSISTANT_ROLES]
    low_at = answers[low] if low is not None and low < len(answers) else None
    parts = [_turn_html(t, i == low_at) for i, t in enumerate(turns[:TURNS_SHOWN])]
    if len(turns) > TURNS_SHOWN:
        parts.append(f'<div class="muted">… {len(turns) - TURNS_SHOWN} more turns</div>')
        if low_at is not None and low_at >= TURNS_SHOWN:
            parts += [_turn_html(turns[low_at - 1], False), _turn_html(turns[low_at], True)]
    if pick.sample is None:
        parts.append('<div class="muted">sample could not be re-read from its shard</div>')
    return turn_strip_html(pick) + "".join(parts)


def _reason_html(pick: Pick) -> str:
    if pick.route != REVIEW:
        text = "<b>near miss</b><br>clean, just above the cut"
    else:
        text = f"<b>{escape(pick.reason)}</b><br>{clip(pick.detail, DETAIL_CHARS)}"
    if pick.decision:
        text += (
            f'<div class="muted">reviewed: {escape(pick.decision)}'
            f"{' — ' + clip(pick.note, DETAIL_CHARS) if pick.note else ''}</div>"
        )
    return text


def row_html(pick: Pick) -> str:
    rank, _ = order_key(pick.score)
    score = "" if rank == 0 else repr(float(pick.score))
    kind = "flagged" if pick.route == REVIEW else "near-miss"
    return (
        f'<tr class="sample {kind}" data-id="{escape(pick.id)}" '
        f'data-source="{escape(pick.source)}" data-origin="{escape(pick.origin)}" '
        f'data-route="{escape(pick.route)}" data-reason="{escape(pick.reason)}" '
        f'data-score="{score}" data-rank="{rank}">'
        f'<td>{_media_html(pick)}</td><td class="conversation">{_conversation_html(pick)}</td>'
        f'<td class="num">{"not scored" if rank == 0 else num(pick.score)}</td>'
        f"<td>{_reason_html(pick)}</td>"
        f"<td>{escape(pick.source)}<br><code>{clip(pick.id, 200)}</code>"
        f'<div class="origin">{clip(pick.origin, ORIGIN_CHARS)}</div></td>'
        '<td class="decide"><button type="button" class="keep" aria-pressed="false">Keep'
        '</button><button type="button" class="drop" aria-pressed="false">Drop</button><br>'
        '<input class="decision-note" type="text" placeholder="note" aria-label="note"></td></tr>'
    )


def samples_table(rows: str, side: str, default_sort: str) -> str:
    """A table of rows; `side` is below the cut (flagged) or above it (near misses)."""
    return (
        f'<table class="samples" data-side="{side}" data-default-sort="{default_sort}">'
        "<thead><tr><th>media</th><th>conversation</th>"
        '<th class="num">score</th><th>reason</th><th>source / id / origin</th>'
        f"<th>decision</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _options(values: list[str]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def controls_html(sources: list[str], reasons: list[str]) -> str:
    """Search, filters, sort, the download button and the keys, sticky at the top."""
    return (
        '<div class="filters"><input id="filter-text" type="search" '
        'placeholder="search questions and answers" aria-label="search">'
        '<label>source <select id="filter-source"><option value="">all</option>'
        f"{_options(sources)}</select></label>"
        '<label>reason <select id="filter-reason"><option value="">all</option>'
        f"{_options(reasons)}</select></label>"
        '<label>decision <select id="filter-decision"><option value="">all</option>'
        f"{_options(['undecided', 'keep', 'drop'])}</select></label>"
        '<label>sort <select id="sort"><option value="default">as listed</option>'
        f'<option value="{LOWEST}">lowest score first</option>'
        f'<option value="{NEAREST}">nearest the cut first</option></select></label>'
        '<button type="button" id="download">Download decisions</button>'
        '<span><span id="visible-count"></span> flagged rows visible · '
        '<span id="decided-total">0</span> decisions in this browser</span>'
        '<span class="keys">keys: <b>k</b> keep · <b>d</b> drop · <b>j</b>/<b>n</b> next · '
        '<b>u</b> undo</span><span id="status"></span></div>'
    )


def counter_html(source: str, total: int) -> str:
    return (
        f'<span class="counter"><span class="decided-count" data-source="{escape(source)}">0'
        f"</span> of {total} decided</span>"
    )


def page_head(title: str, run: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f'<body data-run="{escape(run)}"><h1>{escape(title)}</h1>'
    )


def page_foot() -> str:
    return f"<script>{SCRIPT}</script></body></html>\n"
