"""The readers' one error policy: a bad record costs that record, a bad file costs that file.

Like webdataset's `handler=`, but with a single policy for every format: whatever goes wrong
while turning one raw record into a `Sample` becomes an `ErrorRecord` naming the file, the row
or member and the reason; whatever goes wrong while reading the file itself (a truncated
Parquet footer, a tar that is not a tar, gzip that is not gzip) becomes one `ErrorRecord` for
the file, after the records read before it. The job always goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from transforms.core.record import ErrorRecord, Sample, json_safe
from transforms.io.validation import InvalidRecord

Convert = Callable[[Any, str, str], Sample]


def record_or_error(convert: Convert, raw: Any, source: str, origin: str) -> Sample | ErrorRecord:
    """`convert(raw, source, origin)`, or an error record for this one row saying why not."""
    try:
        return convert(raw, source, origin)
    except InvalidRecord as exc:
        return ErrorRecord(
            source, "read", exc.reason, exc.detail, origin, exc.sample_id, _kept(raw)
        )
    except Exception as exc:  # noqa: BLE001 - a reader bug or an odd row costs one row
        detail = f"unexpected {type(exc).__name__} reading this record: {exc}"[:1000]
        return ErrorRecord(source, "read", "unexpected_error", detail, origin, None, _kept(raw))


def guarded_file(
    read: Callable[[str, str], Iterator[Sample | ErrorRecord]],
    path: str,
    source: str,
    reason: str = "unreadable_file",
) -> Iterator[Sample | ErrorRecord]:
    """Everything `read(path, source)` yields; if reading the file fails, one error for it.

    `reason` names the failure for this format (malformed_json, corrupt_parquet, ...); a file
    that is not there at all is `file_missing` whatever the format.
    """
    count = 0
    try:
        for item in read(path, source):
            count += 1
            yield item
    except FileNotFoundError as exc:
        yield ErrorRecord(source, "read", "file_missing", f"{path} does not exist ({exc})", path)
    except Exception as exc:  # noqa: BLE001 - one unreadable file must not end the job
        problem = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        problem = f"{type(exc).__name__}: {problem}" if problem else type(exc).__name__
        where = (
            f"after {count} records; the rest of the file is unreadable"
            if count
            else "the file could not be read"
        )
        yield ErrorRecord(source, "read", reason, f"{path}: {problem} ({where})", path)


def _kept(raw: Any) -> dict[str, Any]:
    """The raw record for the person fixing it: JSON-safe, media bytes replaced by their size."""
    safe = json_safe(raw)
    return safe if isinstance(safe, dict) else {"value": str(safe)[:1000]}
