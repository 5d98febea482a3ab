"""Parquet and WebDataset inputs, whose media bytes travel inside the input files.

Their samples cross the shuffle without those bytes: the first read keeps each sample's text
and media paths and notes which file holds the bytes; after the shuffle, the worker holding a
file's samples reads it again and passes on the kept ones whole. Each file is read twice, but
no media bytes are shuffled or held in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from transforms.core.record import ErrorRecord, MediaRef, Sample
from transforms.io.parquet_rows import iter_rows, row_to_sample
from transforms.io.read_guard import guarded_file
from transforms.io.webdataset_shards import read_webdataset_shard


def read_parquet_file(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    """Every row of one Parquet file as a sample; the origin names the file and row."""
    yield from guarded_file(_read_parquet_rows, path, source, reason="corrupt_parquet")


def _read_parquet_rows(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    for row_number, row in enumerate(iter_rows(path)):
        yield row_to_sample(row, source, f"{path}#{row_number}")


READERS = {"parquet": read_parquet_file, "webdataset": read_webdataset_shard}


def read_light(path: str, source: str, file_format: str) -> Iterator[Sample | ErrorRecord]:
    """The file's samples without their media bytes, each noting the file that holds them."""
    for item in READERS[file_format](path, source):
        if isinstance(item, Sample):
            item = item.replace(
                media=[MediaRef(ref.kind, ref.path) for ref in item.media],
                media_file=(file_format, path, source),
            )
        yield item


def read_kept(
    media_file: tuple[str, str, str], kept: Iterable[Sample]
) -> Iterator[Sample | ErrorRecord]:
    """The kept samples of one file, read again whole (media bytes included)."""
    file_format, path, source = media_file
    waiting = {sample.origin: sample for sample in kept}
    file_problem = None
    for item in READERS[file_format](path, source):
        if isinstance(item, Sample) and waiting.pop(item.origin, None) is not None:
            yield item
            if not waiting:
                return
        elif isinstance(item, ErrorRecord) and item.origin == path:
            file_problem = item.detail  # the file broke off on the second read
    for sample in waiting.values():
        detail = file_problem or f"{path} no longer holds this sample: it changed during the run"
        yield ErrorRecord.for_sample(sample, "fetch", "media_missing", detail)
