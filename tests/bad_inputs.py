"""A corpus of broken and unusual inputs, built in the test, with the outcome each must get."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import conversation, jpeg_bytes, mp4_bytes, write_tar_gz

CLEAN = ("clean", None, None)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (40, 30), (0, 200, 200, 0)).save(buffer, "JPEG")
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def _palette_alpha_png() -> bytes:
    return _png(Image.new("RGBA", (16, 16), (0, 0, 255, 128)).convert("P"))


def _sixteen_bit_png() -> bytes:
    return _png(Image.fromarray(np.full((10, 12), 40000, dtype=np.uint16)))


def _bomb_png() -> bytes:
    # 14,000 x 14,000 one-bit pixels: ~200 kB on disk, 196 Mpx decoded, past Pillow's limit.
    return _png(Image.new("1", (14_000, 14_000)))


@dataclass(frozen=True)
class MediaCase:
    id: str
    kind: str
    extension: str
    data: bytes
    expected: tuple[str, str | None, str | None]  # route, stage, reason
    answer: str = "A clear and correct answer."


def media_cases() -> list[MediaCase]:
    jpeg, png, video = jpeg_bytes(), _png(Image.new("RGB", (30, 20), (0, 255, 0))), mp4_bytes()
    return [
        MediaCase(
            "truncated-jpeg",
            "image",
            "jpg",
            jpeg[: len(jpeg) // 2],
            ("errors", "decode", "corrupt_image"),
        ),
        MediaCase(
            "truncated-png",
            "image",
            "png",
            png[: len(png) // 2],
            ("errors", "decode", "corrupt_image"),
        ),
        MediaCase("zero-byte-jpg", "image", "jpg", b"", ("errors", "decode", "empty_file")),
        MediaCase(
            "text-named-jpg",
            "image",
            "jpg",
            b"hello, I am a text file\n",
            ("errors", "decode", "not_an_image"),
        ),
        MediaCase(
            "decompression-bomb",
            "image",
            "png",
            _bomb_png(),
            ("errors", "decode", "decompression_bomb"),
        ),
        MediaCase("cmyk-jpeg", "image", "jpg", _cmyk_jpeg(), CLEAN),
        MediaCase("sixteen-bit-png", "image", "png", _sixteen_bit_png(), CLEAN),
        MediaCase("palette-alpha-png", "image", "png", _palette_alpha_png(), CLEAN),
        MediaCase("exif-rotated-jpeg", "image", "jpg", _exif_rotated_jpeg(), CLEAN),
        MediaCase("huge-dimensions", "image", "png", _png(Image.new("RGB", (20_000, 40))), CLEAN),
        MediaCase("zero-byte-mp4", "video", "mp4", b"", ("errors", "decode", "empty_file")),
        MediaCase(
            "truncated-mp4",
            "video",
            "mp4",
            video[: len(video) // 3],
            ("errors", "decode", "corrupt_video"),
        ),
        MediaCase(
            "garbage-mp4",
            "video",
            "mp4",
            bytes(range(256)) * 20,
            ("errors", "decode", "corrupt_video"),
        ),
        MediaCase("sub-second-video", "video", "mp4", mp4_bytes(frames=4, fps=8), CLEAN),
        MediaCase("one-mb-answer", "image", "jpg", jpeg, CLEAN, answer="word " * 200_000),
        MediaCase(
            "empty-answer", "image", "jpg", jpeg, ("review", None, "empty_answer"), answer=""
        ),
        MediaCase(
            "nan-score", "image", "jpg", jpeg, ("errors", "score", "non_finite_score"), answer="nan"
        ),
        MediaCase("control-image", "image", "jpg", jpeg, CLEAN),
        MediaCase("control-video", "video", "mp4", video, CLEAN),
    ]


def media_record(case: MediaCase) -> dict:
    placeholder = f"<{case.kind}>\n"
    return {
        "id": case.id,
        case.kind: f"media/{case.id}.{case.extension}",
        "conversations": conversation("Describe it.", case.answer, placeholder),
    }


# Cases only a manifest reader meets: (record or raw line, expected outcome).
MANIFEST_CASES = {
    "missing-file": (
        {
            "id": "missing-file",
            "image": "media/not-there.jpg",
            "conversations": conversation("Q?", "An answer."),
        },
        ("errors", "fetch", "media_missing"),
    ),
    "escapes-root": (
        {
            "id": "escapes-root",
            "image": "../../etc/passwd",
            "conversations": conversation("Q?", "An answer."),
        },
        ("errors", "fetch", "unsafe_media_path"),
    ),
    "absolute-path": (
        {
            "id": "absolute-path",
            "image": "/etc/passwd",
            "conversations": conversation("Q?", "An answer."),
        },
        ("errors", "fetch", "unsafe_media_path"),
    ),
    "tar-absolute-member": (
        {
            "id": "tar-absolute-member",
            "video": "evil/abs.mp4",
            "conversations": conversation("Q?", "An answer.", "<video>\n"),
        },
        ("errors", "fetch", "media_missing"),
    ),
    "tar-dotdot-member": (
        {
            "id": "tar-dotdot-member",
            "video": "../evil.mp4",
            "conversations": conversation("Q?", "An answer.", "<video>\n"),
        },
        ("errors", "fetch", "unsafe_media_path"),
    ),
    "no-conversations": (
        {"id": "no-conversations", "image": "media/control-image.jpg"},
        ("errors", "read", "missing_conversations"),
    ),
    "non-string-value": (
        {"id": "non-string-value", "conversations": [{"from": "human", "value": 42}]},
        ("errors", "read", "bad_conversation"),
    ),
    "wrong-roles": (
        {
            "id": "wrong-roles",
            "conversations": [
                {"from": "system", "value": "You are helpful."},
                {"from": "bot", "value": "Hello."},
            ],
        },
        ("errors", "read", "bad_conversation"),
    ),
    "chat-style-turns": (
        {
            "id": "chat-style-turns",
            "conversations": [
                {"role": "system", "content": "You are helpful."},
                {"role": "User", "content": "What is two plus two?"},
                {"role": "assistant", "content": "Two plus two is four."},
            ],
        },
        CLEAN,
    ),
    "1234": (
        {"id": 1234, "conversations": conversation("Q?", "An integer id is fine.", "")},
        CLEAN,
    ),
    "float-id (found by position)": (
        {"id": 12.5, "conversations": conversation("Q?", "A float id is not.", "")},
        ("errors", "read", "bad_id"),
    ),
    "null-conversations": (
        {"id": "null-conversations", "conversations": None},
        ("errors", "read", "missing_conversations"),
    ),
    "image-list": (
        {
            "id": "image-list",
            "image": ["media/control-image.jpg", "media/cmyk-jpeg.jpg"],
            "conversations": conversation("Compare <image> and <image>.", "Both are pictures."),
        },
        CLEAN,
    ),
    "null-image": (
        {"id": "null-image", "image": None, "conversations": conversation("Q?", "Text only.", "")},
        CLEAN,
    ),
    "image-list-with-number": (
        {
            "id": "image-list-with-number",
            "image": ["media/control-image.jpg", 7],
            "conversations": conversation("Q?", "An answer."),
        },
        ("errors", "read", "bad_media_path"),
    ),
    "directory-as-image": (
        {"id": "directory-as-image", "image": "media", "conversations": conversation("Q?", "A.")},
        ("errors", "fetch", "media_unreadable"),
    ),
    "http-image": (
        {
            "id": "http-image",
            "image": "http://example.com/a.jpg",
            "conversations": conversation("Q?", "An answer."),
        },
        ("errors", "fetch", "remote_media_not_allowed"),
    ),
    "file-url-image": (
        {
            "id": "file-url-image",
            "image": "file:///etc/passwd",
            "conversations": conversation("Q?", "An answer."),
        },
        ("errors", "fetch", "unsafe_media_path"),
    ),
    "empty-strings": (
        {"id": "empty-strings", "conversations": conversation("", "", "")},
        ("review", None, "empty_question"),
    ),
    "duplicate": (
        {"id": "duplicate", "conversations": conversation("Q?", "Same answer.", "")},
        CLEAN,
    ),
    "same-id-other-question": (
        {"id": "duplicate", "conversations": conversation("Q2?", "Other answer.", "")},
        CLEAN,
    ),
}


def write_llava_corpus(root: Path) -> dict[str, tuple]:
    """Files on disk + manifests; returns {id or origin marker: expected outcome}."""
    (root / "media").mkdir(parents=True)
    expected = {}
    records = []
    for case in media_cases():
        (root / "media" / f"{case.id}.{case.extension}").write_bytes(case.data)
        records.append(media_record(case))
        expected[case.id] = case.expected
    for key, (record, outcome) in MANIFEST_CASES.items():
        records.append(record)
        # A record whose id is unusable is found in errors/ by its place in the file.
        usable_id = isinstance(record.get("id"), (str, int))
        expected[key if usable_id else f"main.json[{len(records) - 1}]"] = outcome
    records.append(MANIFEST_CASES["duplicate"][0])  # an exact repeat
    expected["duplicate-repeat"] = ("errors", "read", "duplicate_sample")
    records.append({"conversations": conversation("Q?", "No id.", "")})
    expected[f"main.json[{len(records) - 1}]"] = ("errors", "read", "missing_id")
    (root / "main.json").write_text(json.dumps(records))

    good = json.dumps({"id": "jsonl-good", "conversations": conversation("Q?", "Fine.", "")})
    (root / "lines.jsonl").write_bytes(
        good.encode() + b"\n{broken json\n" + b'{"id": "bad-utf8-\xff", "conversations": []}\n'
    )
    expected["jsonl-good"] = CLEAN
    expected["lines.jsonl:2"] = ("errors", "read", "malformed_json")
    expected["lines.jsonl:3"] = ("errors", "read", "not_utf8")
    truncated = json.dumps(
        [
            {"id": "before-break", "conversations": conversation("Q?", "Ok.", "")},
            {"id": "cut", "conversations": []},
        ]
    )
    (root / "truncated.json").write_text(truncated[:-25])
    expected["before-break"] = CLEAN
    expected["truncated.json"] = ("errors", "read", "malformed_json")

    write_tar_gz(
        root / "videos_1.tar.gz", {"/evil/abs.mp4": mp4_bytes(), "../evil.mp4": mp4_bytes()}
    )
    return expected


def write_shard_corpus(root: Path, file_format: str) -> dict[str, tuple]:
    """The media cases as this tool's own Parquet or WebDataset shards (bytes embedded)."""
    from transforms.core.record import MediaRef
    from transforms.io.llava_manifests import record_to_sample
    from transforms.io.parquet_rows import SCHEMA, sample_to_row
    from transforms.io.webdataset_rows import sample_key, sample_to_files

    samples = []
    for case in media_cases():
        sample = record_to_sample(media_record(case), "shards", "corpus")
        sample.media = [MediaRef(case.kind, sample.media[0].path, case.data)]
        samples.append(sample)
    root.mkdir(parents=True)
    if file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [sample_to_row(s) for s in samples]
        pq.write_table(pa.Table.from_pylist(rows, SCHEMA), root / "part-0.parquet")
    else:
        with tarfile.open(root / "part-0.tar", "w") as tar:
            for sample in samples:
                for suffix, data in sample_to_files(sample).items():
                    info = tarfile.TarInfo(f"{sample_key(sample)}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return {case.id: case.expected for case in media_cases()}
