"""Hypothesis strategies that break valid input records in every format the pipeline reads.

Each strategy starts from a valid record (an image, a video or a text-only conversation) and
applies a few random mutations: keys dropped or given values of any JSON type, turns broken,
roles renamed, ids of the wrong type, media paths that escape the root or are URLs or
folders, text that is not UTF-8. Writers put the results in a JSON array, JSON Lines (with
line-level noise: BOM, CRLF, blank and non-object lines), our own Parquet, LLaVA-OneVision
Parquet and a WebDataset tar, each beside untouched control records.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from tests.helpers import conversation, jpeg_bytes, mp4_bytes

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
NOT_UTF8 = "bad \udcff byte"  # what a manifest with a stray byte decodes to (surrogateescape)
MEDIA_PATHS = st.sampled_from(
    [
        "media/good.jpg",
        "media/missing.jpg",
        "media",  # a folder
        "../outside.jpg",
        "/etc/hostname",
        "http://example.com/a.jpg",
        "file:///etc/hostname",
        "media/garbage.jpg",
        "media/clip.mp4",
        "",
        " ",
    ]
)
ROLES = st.sampled_from(["human", "gpt", "user", "assistant", "system", "GPT", "bot", "", "tool"])


def base_records() -> list[dict]:
    return [
        {
            "id": "img",
            "image": "media/good.jpg",
            "conversations": conversation("What is shown?", "A red square on a white ground."),
            "url": "https://x",
        },
        {
            "id": "vid",
            "video": "media/clip.mp4",
            "conversations": conversation("Describe.", "A blue bar moves right.", "<video>\n"),
        },
        {"idx": "txt", "conversations": conversation("Say hi.", "Hello there my friend.", "")},
    ]


@st.composite
def broken_turns(draw) -> object:
    turns = conversation("A question?", "An answer with several words.", "")
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return draw(JSON_VALUES)
    if choice == 1:
        return []
    turn = draw(st.sampled_from(turns))
    if choice == 2:
        turn.pop(draw(st.sampled_from(["from", "value"])))
    elif choice == 3:
        turn["from"] = draw(ROLES | JSON_SCALARS)
    elif choice == 4:
        turn["value"] = draw(JSON_SCALARS | st.just(NOT_UTF8))
    elif choice == 5:
        turns = [{"role": t["from"], "content": t["value"]} for t in turns]
    elif choice == 6:
        turns.insert(0, {"from": "system", "value": draw(st.text(max_size=20))})
    else:
        turns.append(draw(JSON_VALUES))
    return turns


@st.composite
def mutated_record(draw) -> dict:
    record = json.loads(json.dumps(draw(st.sampled_from(base_records()))))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 5))
        if kind == 0 and record:
            record.pop(draw(st.sampled_from(sorted(record))))
        elif kind == 1:
            key = draw(st.sampled_from(["id", "idx", "image", "video", "extra"]))
            record[key] = draw(JSON_VALUES)
        elif kind == 2:
            record["conversations"] = draw(broken_turns())
        elif kind == 3:
            key = draw(st.sampled_from(["image", "video"]))
            record[key] = draw(MEDIA_PATHS | st.lists(MEDIA_PATHS | JSON_SCALARS, max_size=3))
        elif kind == 4:
            record["id"] = draw(
                st.integers() | st.floats() | st.booleans() | st.text(max_size=8) | st.just("")
            )
        else:
            record[draw(st.text(max_size=6))] = draw(JSON_VALUES | st.just(NOT_UTF8))
    return record


JSONL_NOISE = st.sampled_from(
    ["", "   ", "\r", "42", "[1, 2]", '"text"', "null", "{broken", "}", '{"id": "raw\udcff"}']
)


@st.composite
def own_parquet_row(draw) -> dict:
    """A row of our own Parquet schema with values of the right Arrow types, broken inside."""
    from transforms.io.parquet_rows import sample_to_row
    from transforms.io.validation import llava_record_to_sample

    sample = llava_record_to_sample(draw(st.sampled_from(base_records())), "own", "fuzz")
    row = sample_to_row(sample)
    text = st.none() | st.text(max_size=12)
    for _ in range(draw(st.integers(1, 3))):
        column = draw(
            st.sampled_from(
                ["id", "source", "conversations", "images", "videos", "fields", "record_layout"]
            )
        )
        if column in ("id", "source"):
            row[column] = draw(text | st.just(NOT_UTF8.replace("\udcff", "?")))
        elif column == "conversations":
            row[column] = draw(
                st.none()
                | st.lists(st.fixed_dictionaries({"from": text | ROLES, "value": text}), max_size=3)
            )
        elif column in ("images", "videos"):
            row[column] = draw(
                st.none()
                | st.lists(
                    st.none()
                    | st.fixed_dictionaries(
                        {"bytes": st.none() | st.binary(max_size=40), "path": text | MEDIA_PATHS}
                    ),
                    max_size=2,
                )
            )
        elif column == "record_layout":
            names = st.none() | st.lists(text, max_size=3)
            row[column] = draw(
                st.none()
                | st.fixed_dictionaries(
                    {
                        "id_key": text,
                        "id_is_integer": st.none() | st.booleans(),
                        "keys": names,
                        "list_media": names,
                    }
                )
            )
        else:
            row[column] = draw(
                st.none() | st.text(max_size=20) | JSON_VALUES.map(lambda v: json.dumps(v))
            )
    return row


@st.composite
def onevision_row(draw) -> dict:
    text = st.none() | st.text(max_size=12)
    row = {
        "id": "ov",
        "image": {"bytes": jpeg_bytes(), "path": "ov.jpg"},
        "conversations": conversation("What colour?", "It is a red picture."),
        "data_source": "onevision",
        "meta": "kept",
    }
    for _ in range(draw(st.integers(1, 3))):
        column = draw(st.sampled_from(["id", "image", "conversations", "data_source", "meta"]))
        if column == "image":
            row[column] = draw(
                st.none()
                | st.fixed_dictionaries(
                    {"bytes": st.none() | st.binary(max_size=40), "path": text | MEDIA_PATHS}
                )
            )
        elif column == "conversations":
            row[column] = draw(
                st.none()
                | st.lists(st.fixed_dictionaries({"from": text | ROLES, "value": text}), max_size=3)
            )
        else:
            row[column] = draw(text)
    return row


@st.composite
def webdataset_sample(draw) -> dict[str, bytes]:
    """One sample's tar members (suffix -> bytes), broken in the .json or the media."""
    metadata = {
        "id": "wds",
        "source": "webdataset",
        "conversations": conversation("What is it?", "A red square, clearly."),
        "media": [{"kind": "image", "path": "images/a.jpg", "file": "jpg"}],
        "fields": json.dumps({"k": 1}),
    }
    files = {"jpg": jpeg_bytes()}
    choice = draw(st.integers(0, 6))
    if choice == 0:
        files["json"] = draw(st.binary(max_size=30))
        return files
    if choice == 1:
        files["json"] = json.dumps(draw(JSON_VALUES)).encode()
        return files
    if choice == 2:
        metadata.pop(draw(st.sampled_from(sorted(metadata))))
    elif choice == 3:
        metadata[draw(st.sampled_from(sorted(metadata)))] = draw(JSON_VALUES)
    elif choice == 4:
        metadata["media"][0]["file"] = draw(st.text(max_size=5))
    elif choice == 5:
        files["jpg"] = draw(st.binary(max_size=40))
    else:
        metadata["conversations"] = draw(broken_turns())
    files["json"] = json.dumps(metadata).encode()
    return files


@dataclass
class FuzzCase:
    """Mutated inputs for every format; `controls` are valid records that must come out clean."""

    array: list[dict] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    own_rows: list[dict] = field(default_factory=list)
    onevision_rows: list[dict] = field(default_factory=list)
    shard_samples: list[dict[str, bytes]] = field(default_factory=list)


@st.composite
def fuzz_case(draw, per_format: int = 6) -> FuzzCase:
    size = st.integers(1, per_format)
    lines = []
    for record in draw(st.lists(mutated_record(), min_size=1, max_size=per_format)):
        lines.append(json.dumps(record))
        if draw(st.booleans()):
            lines.append(draw(JSONL_NOISE))
    return FuzzCase(
        array=draw(st.lists(mutated_record(), min_size=1, max_size=per_format)),
        lines=lines,
        own_rows=draw(st.lists(own_parquet_row(), min_size=draw(size), max_size=per_format)),
        onevision_rows=draw(st.lists(onevision_row(), min_size=1, max_size=per_format)),
        shard_samples=draw(st.lists(webdataset_sample(), min_size=1, max_size=per_format)),
    )


def control_records(tag: str) -> list[dict]:
    """Valid records with ids the mutations never produce, one per modality."""
    records = json.loads(json.dumps(base_records()))
    for record in records:
        key = "idx" if "idx" in record else "id"
        record[key] = f"control-{tag}-{record[key]}"
    return records


def write_media(root: Path) -> None:
    (root / "media").mkdir(parents=True, exist_ok=True)
    (root / "media" / "good.jpg").write_bytes(jpeg_bytes())
    (root / "media" / "garbage.jpg").write_bytes(b"not a picture at all")
    (root / "media" / "clip.mp4").write_bytes(mp4_bytes())


def write_case(root: Path, case: FuzzCase) -> dict[str, int]:
    """Write every format under `root`; return how many records each file holds (its inputs)."""
    from transforms.io.parquet_rows import SCHEMA, sample_to_row
    from transforms.io.validation import llava_record_to_sample
    from transforms.io.webdataset_rows import sample_key, sample_to_files

    write_media(root)
    array = case.array + control_records("array")
    (root / "array.json").write_text(json.dumps(array))
    controls = [json.dumps(r) for r in control_records("lines")]
    text = "\ufeff" + "\r\n".join(case.lines + controls) + "\r\n"
    (root / "lines.jsonl").write_bytes(text.encode("utf-8", "surrogateescape"))
    line_records = sum(1 for line in case.lines + controls if line.strip())

    own_controls = [
        sample_to_row(_with_media(llava_record_to_sample(r, "own", "-"), root))
        for r in control_records("own")
    ]
    pq.write_table(pa.Table.from_pylist(case.own_rows + own_controls, SCHEMA), root / "own.parquet")

    ov_control = {
        "id": "control-onevision",
        "image": {"bytes": jpeg_bytes(), "path": "c.jpg"},
        "conversations": conversation("What colour?", "It is a red picture."),
        "data_source": "onevision",
        "meta": "kept",
    }
    ov_rows = case.onevision_rows + [ov_control]
    pq.write_table(pa.Table.from_pylist(ov_rows, _onevision_schema()), root / "onevision.parquet")

    wds_control = llava_record_to_sample(control_records("wds")[0], "webdataset", "-")
    wds_control = _with_media(wds_control, root)
    shard = [*case.shard_samples, sample_to_files(wds_control)]
    with tarfile.open(root / "shard.tar", "w") as tar:
        for number, files in enumerate(shard):
            key = sample_key(wds_control) if number == len(shard) - 1 else f"s{number:04d}"
            for suffix, data in files.items():
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return {
        "array.json": len(array),
        "lines.jsonl": line_records,
        "own.parquet": len(case.own_rows) + len(own_controls),
        "onevision.parquet": len(ov_rows),
        "shard.tar": len(shard),
    }


def _with_media(sample, root: Path):
    for ref in sample.media:
        ref.data = (root / ref.path).read_bytes()
    return sample


def _onevision_schema() -> pa.Schema:
    turn = pa.struct([("from", pa.string()), ("value", pa.string())])
    return pa.schema(
        [
            ("id", pa.string()),
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("conversations", pa.list_(turn)),
            ("data_source", pa.string()),
            ("meta", pa.string()),
        ]
    )
