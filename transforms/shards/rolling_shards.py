"""Temp shards rolled over at a size cap, then renamed (or joined) into a run's final files.

Writers stream into uniquely named temp files under a `.temp-*` folder; one finishing step
renames the files reported by finished bundles to `part-SSSSS-of-NNNNN.<ext>` (or joins line
files into one), so a retried bundle's leftovers never reach the output. With an index, each
temp shard also gets an id -> position sidecar, merged into the run's index under the final
names (`shard_index.py`).
"""

from __future__ import annotations

import shutil
import uuid

import fsspec

from transforms.core.run_info import RunInfo
from transforms.core.storage import COPY_BLOCK_BYTES, open_for_write, remove_tree
from transforms.shards.shard_formats import SHARD_TYPES, SUFFIXES
from transforms.shards.shard_index import SidecarWriter, merge_sidecars, sidecar_path


class RollingShards:
    """Temp shards under `temp_dir`, a new one whenever the current one reaches `shard_mb`.

    With `indexed`, each temp shard gets an index sidecar (`shard_index.py`). Used inside a
    bundle by `WriteTempShards` and on its own by apply-review.
    """

    def __init__(
        self,
        temp_dir: str,
        shard_type: type,
        shard_mb: float,
        indexed: bool = False,
        run_info: RunInfo | None = None,
    ):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_bytes = shard_mb * (1 << 20)
        self._indexed = indexed
        self._run_info = run_info
        self._handle = self._shard = self._path = self._sidecar = None
        self._written = 0

    def write(self, sample) -> str | None:
        """Write one sample; return the path of the shard this closed, if it closed one.

        Raises `UnwritableSample` (nothing written) for a sample the format cannot hold.
        """
        if self._shard is None:
            self._open()
        self._written += self._shard.write(sample)
        if self._sidecar is not None:
            self._sidecar.add(sample, self._shard.last_position)
        return self.close() if self._written >= self._shard_bytes else None

    def close(self) -> str | None:
        """Close the open shard, if any, and return its path."""
        if self._shard is None:
            return None
        self._shard.close()
        self._handle.close()
        if self._sidecar is not None:
            self._sidecar.close()
        path, self._shard, self._handle, self._sidecar = self._path, None, None, None
        return path

    def _open(self) -> None:
        self._path = temp_shard_path(self._temp_dir, self._shard_type.SUFFIX)
        self._handle = open_for_write(self._path)
        self._shard = self._shard_type(self._handle, self._run_info)
        self._sidecar = SidecarWriter(self._path) if self._indexed else None
        self._written = 0


def finalize_shards(
    _,
    directory: str,
    temp_dir: str,
    file_format: str,
    temp_paths: list[str],
    index_file: str | None = None,
    name: str = "part",
    run_info: RunInfo | None = None,
):
    """Rename the finished temp shards to <name>-SSSSS-of-NNNNN; yield the final paths.

    No samples still gives one empty shard, so readers globbing the folder find the schema.
    With `index_file`, the sidecars of these shards (and only these) are merged into it first,
    under the final names. Safe to retry: the index is rewritten from the same sidecars (they
    stay until the very end), and a shard already renamed by an earlier attempt is left as it is.
    """
    fs, _, _ = fsspec.get_fs_token_paths(temp_dir)
    suffix = SUFFIXES[file_format]
    paths = sorted(temp_paths)
    if not paths:
        empty = f"{temp_dir}/empty{suffix}"
        with open_for_write(empty) as handle:
            SHARD_TYPES[file_format](handle, run_info).close()
        if index_file:
            SidecarWriter(empty).close()
        paths = [empty]
    total = len(paths)
    finals = [f"{directory}/{name}-{index:05d}-of-{total:05d}{suffix}" for index in range(total)]
    sidecars = [sidecar_path(temp) for temp in paths]
    if index_file and all(fs.exists(fsspec.get_fs_token_paths(s)[2][0]) for s in sidecars):
        folder = directory.rstrip("/").rsplit("/", 1)[-1]
        names = [f"{folder}/{final.rsplit('/', 1)[-1]}" for final in finals]
        merge_sidecars(index_file, zip(sidecars, names, strict=True))
    for temp, final in zip(paths, finals, strict=True):
        source = fsspec.get_fs_token_paths(temp)[2][0]
        if fs.exists(source):
            fs.mv(source, fsspec.get_fs_token_paths(final)[2][0])
        yield final
    remove_tree(temp_dir)


def concatenate_shards(_, final: str, temp_dir: str, temp_paths: list[str], header: str | None):
    """Join the temp line files into the one file `final` (with `header` first); yield it.

    Streams a block at a time; an empty input still gives the file (header only). Retrying
    rewrites it from the same temp files, which are removed only once it is complete.
    """
    with open_for_write(final) as out:
        if header is not None:
            out.write((header + "\n").encode("utf-8"))
        for temp in sorted(temp_paths):
            with fsspec.open(temp, "rb") as part:
                shutil.copyfileobj(part, out, COPY_BLOCK_BYTES)
    remove_tree(temp_dir)
    yield final


def temp_dir_under(directory: str) -> str:
    """A fresh temp folder under `directory` for one writer's shards."""
    return f"{directory}/.temp-{uuid.uuid4().hex[:12]}"


def temp_shard_path(temp_dir: str, suffix: str) -> str:
    """A fresh temp shard's path in `temp_dir`."""
    return f"{temp_dir}/{uuid.uuid4().hex}{suffix}"
