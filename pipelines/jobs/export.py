"""`rmclean export`: a finished run's clean (or review) samples back in their dataset's layout.

Training code that reads LLaVA-style JSON (LLaVA, LLaVA-NeXT, ALLaVA's own) then takes the
cleaned data as it took the original: each manifest is written under its original file name
and path relative to the dataset root, holding the kept records in their original order, each
record as the dataset wrote it (`record_layout.py`: the id key, integer ids, key order, media
lists), and every image or video at the path its record names, under the source's media root
(videos come out of the shards, so nothing has to be extracted from LLaVA-Video's archives).

`--layout jsonl` writes every manifest as JSON Lines instead (`x.json` -> `x.jsonl`).

Written for runs of millions of samples: shards are read one sample at a time; records wait for
their turn in a `SortedSpool` on local disk (about the size of the manifests), not in memory;
media files are written as their samples go by, each path once.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field

import fsspec

from transforms.core.json_lines import json_line
from transforms.core.record import Sample, sample_to_record
from transforms.core.routes import CLEAN, DROPPED, REVIEW
from transforms.core.sorted_spool import SortedSpool
from transforms.core.storage import absolute_url, glob_under, holds_files
from transforms.io.manifest_files import ManifestWriter, as_json_lines_name, as_json_name
from transforms.io.media_files import MediaFiles
from transforms.io.origins import OriginError, parse_origin
from transforms.io.paths import RemoteMediaError, UnsafePathError, join_inside
from transforms.report.scan import load_summary
from transforms.shards.stored_samples import iter_stored_samples

LAYOUTS = ("llava", "jsonl")
PARTS = (CLEAN, REVIEW, DROPPED)


class ExportError(ValueError):
    """Bad usage found before anything was written; the message says what to do."""


@dataclass
class ExportReport:
    samples: int = 0
    manifests: dict[str, int] = field(default_factory=dict)
    media_written: int = 0
    media_shared: int = 0  # media another exported sample had already written
    media_skipped: Counter = field(default_factory=Counter)  # reason -> count


def _relative_to(path: str, root: str) -> str | None:
    root = root.rstrip("/") + "/"
    return path[len(root) :] if path.startswith(root) else None


def _manifest_name(origin: str, root: str) -> str:
    """The exported manifest's path relative to the output: the input file's path relative
    to the dataset root (its file name alone if it was outside the root)."""
    file = parse_origin(origin).file
    relative = _relative_to(file, root) or posixpath.basename(file)
    return as_json_name(relative)


def _check_output(output: str) -> None:
    if holds_files(output):
        raise ExportError(
            f"--output {output} already holds files; export into a new or empty folder "
            "(media paths an export already wrote are not written twice)"
        )


def _run_summary(run: str, part: str) -> dict:
    fs, root = fsspec.core.url_to_fs(run)
    if not fs.exists(f"{root}/_SUCCESS"):
        raise ExportError(f"{run} has no _SUCCESS: the run did not finish (or is not a run)")
    summary = load_summary(fs, root)
    if not fs.isdir(f"{root}/{part}"):
        if part == DROPPED and "review" not in summary:
            raise ExportError(
                f"{run} has no {DROPPED}/ folder: only a reviewed prefix has one. Apply the "
                f"review first (make apply-review OUTPUT={run} DECISIONS=decisions.jsonl, or "
                f"rmclean apply-review {run} --decisions decisions.jsonl) and export its output"
            )
        raise ExportError(f"{run} has no {part}/ folder")
    return summary


def _shards(run: str, part: str) -> list[str]:
    return sorted(glob_under(run, (f"{part}/*.parquet", f"{part}/*.tar")))


class _Exporter:
    def __init__(self, output: str, input_root: str, media_roots: dict[str, str], layout: str):
        self.output = output.rstrip("/")
        self.input_root = absolute_url(input_root) if input_root else ""
        self.media_roots = media_roots
        self.layout = layout
        self.report = ExportReport()
        self.spool = SortedSpool()
        self.media = MediaFiles(self.output)

    def add(self, sample: Sample) -> None:
        try:
            origin = parse_origin(sample.origin)
            name = _manifest_name(sample.origin, self.input_root)
        except OriginError:
            # Not read from a file (cannot happen to a run's samples, but never drop one).
            origin, name = None, f"{sample.source}.json"
        if self.layout == "jsonl":
            name = as_json_lines_name(name)
        order = origin.order if origin is not None else (self.report.samples, "")
        self.spool.add((name, *order), json_line(sample_to_record(sample)))
        self._write_media(sample)
        self.report.samples += 1

    def _write_media(self, sample: Sample) -> None:
        media_root = self.media_roots.get(sample.source, "")
        for ref in sample.media:
            if ref.data is None:
                self.report.media_skipped["no bytes in the shard"] += 1
                continue
            try:
                relative = join_inside(media_root, ref.path)
            except UnsafePathError:
                self.report.media_skipped["path outside the dataset root"] += 1
                continue
            except RemoteMediaError:
                self.report.media_skipped["a URL, not a file"] += 1
                continue
            self.media.write(relative, ref.data)

    def finish(self) -> ExportReport:
        self.media.close()
        self.report.media_written = self.media.written
        self.report.media_shared = self.media.already_there
        writer, current = None, None
        try:
            for (name, *_), text in self.spool.sorted_items():
                if name != current:
                    if writer is not None:
                        writer.close()
                    writer, current = ManifestWriter(f"{self.output}/{name}"), name
                writer.write_encoded(text)
                self.report.manifests[name] = writer.count
            if writer is not None:
                writer.close()
        finally:
            self.spool.close()
        return self.report


def export_run(run: str, output: str, layout: str = "llava", part: str = CLEAN) -> ExportReport:
    """Write `part` of the finished run at `run` to `output` in `layout`; say what was written.

    Raises ExportError before writing anything if the run is not finished, has no such part,
    or `output` already holds files.
    """
    if layout not in LAYOUTS:
        raise ExportError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if part not in PARTS:
        raise ExportError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    run = run.rstrip("/")
    summary = _run_summary(run, part)
    _check_output(output)
    exporter = _Exporter(output, summary.get("input") or "", summary.get("media_roots", {}), layout)
    for shard in _shards(run, part):
        fs, path = fsspec.core.url_to_fs(shard)
        for _, sample in iter_stored_samples(fs, path):
            exporter.add(sample)
    return exporter.finish()
