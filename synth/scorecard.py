"""How well a cleaning run (or a model at a cut) matches the planted labels, per source.

Totals hide a weak source: the text-only subset is an eighth of the samples, so it can flag a
quarter of its faithful samples while the overall false-flag rate still looks small. A
``Scorecard`` therefore keeps every figure per source: faithful samples flagged, and the recall
of each planted defect class (``labels.jsonl``: ``id``, ``source``, ``defect`` or null).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

FAITHFUL = "faithful"  # the column of samples without a planted defect


@dataclass
class Scorecard:
    # (source, defect or FAITHFUL) -> [flagged, total]
    counts: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(_pair))

    def add(self, source: str, defect: str | None, flagged: bool) -> None:
        cell = self.counts[(source, defect or FAITHFUL)]
        cell[0] += bool(flagged)
        cell[1] += 1

    def merge(self, other: Scorecard) -> None:
        for key, (flagged, total) in other.counts.items():
            self.counts[key][0] += flagged
            self.counts[key][1] += total

    def sources(self) -> list[str]:
        return sorted({source for source, _ in self.counts})

    def defects(self) -> list[str]:
        return sorted({d for _, d in self.counts if d != FAITHFUL})

    def cell(self, source: str | None, column: str) -> tuple[int, int]:
        """(flagged, total) in one source, or over all sources when ``source`` is None."""
        flagged = total = 0
        for (s, d), (f, t) in self.counts.items():
            if d == column and source in (None, s):
                flagged, total = flagged + f, total + t
        return flagged, total

    def summary(self) -> dict:
        """Totals (recall per class, faithful flagged) and the same figures per source."""

        def figures(source: str | None) -> dict:
            flagged, total = self.cell(source, FAITHFUL)
            present = [d for d in self.defects() if self.cell(source, d)[1]]
            return {
                "recall": {d: _share(*self.cell(source, d)) for d in present},
                "defects": {d: self.cell(source, d)[1] for d in present},
                "clean_flagged": flagged,
                "clean_total": total,
                "clean_flagged_fraction": _share(flagged, total),
            }

        out = figures(None)
        out["sources"] = {source: figures(source) for source in self.sources()}
        return out

    def table(self) -> str:
        """Sources as rows; faithful flagged, then caught/total per defect class ('-' where a
        class does not occur in that source); a last row with each class's recall."""
        defects = self.defects()
        rows = [["source", FAITHFUL + " flagged", *defects]]
        for source in [*self.sources(), None]:
            flagged, total = self.cell(source, FAITHFUL)
            rows.append(
                [
                    source or "all sources",
                    f"{flagged}/{total} ({_percent(flagged, total)})",
                    *[_caught(*self.cell(source, d)) for d in defects],
                ]
            )
        rows.append(["recall", "", *[f"{_share(*self.cell(None, d)):.3f}" for d in defects]])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = []
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


def _pair() -> list[int]:
    return [0, 0]


def _share(part: int, total: int) -> float:
    return round(part / max(total, 1), 4)


def _percent(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


def _caught(part: int, total: int) -> str:
    return f"{part}/{total}" if total else "-"
