"""A dataset of any size, written in seconds: the sample's layout with repeated small media.

The scale benchmark measures the pipeline, not the media, so a handful of tiny images and
short videos are referenced over and over (each record still has its own conversation, so
every record is its own sample for the score cache and for dedupe). The layout is the
generated sample's (ALLaVA-4V: LAION caption and instruct sharing images, VFLAN, text;
LLaVA-Video-178K: cap/oe/mc manifests over videos found only inside .tar.gz archives;
LLaVA-Instruct-665K: multi-turn conversations over COCO-style images), so the sample config's
sources read it. About 2% of the records have an
empty answer (review by rule) and 1% name a missing image (errors/), so every route carries
samples at every size.

The output is a pure function of (total, new): a rerun dataset is the same dataset written
again with `new` more records, whose ids start with `new_`.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

IMAGE_POOL = 48  # distinct images referenced round-robin
VIDEO_POOL = 6  # distinct clips, repeated inside the archives
VIDEOS_PER_ARCHIVE = 400  # LLaVA-Video-178K archives hold a few thousand; enough groups here
QUESTIONS_PER_VIDEO = 3  # one caption, one open-ended, one multiple-choice record per video
MULTITURN_TURNS = 3  # questions (and answers) per LLaVA-Instruct-style conversation
INSTRUCT_DIR = "LLaVA-Instruct-665K"
VIDEO_BUCKET = "0_30_s_scale_v0_1"
VIDEO_DIR = "scale_videos"
WORDS = ("red", "blue", "green", "square", "circle", "triangle", "small", "large", "bright")


def image_bytes(index: int, fmt: str = "JPEG") -> bytes:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(index)
    image = Image.new("RGB", (48, 32), tuple(int(c) for c in rng.integers(0, 255, 3)))
    x, y = (int(v) for v in rng.integers(0, 24, 2))
    ImageDraw.Draw(image).rectangle((x, y % 16, x + 16, y % 16 + 12), fill=(250, 250, 250))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def video_bytes(index: int, frames: int = 8, size=(64, 48)) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for frame in range(frames):
            pixels = np.full((size[1], size[0], 3), 40 * index % 255, np.uint8)
            pixels[10:20, frame * 4 : frame * 4 + 10] = (250, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def split(total: int) -> dict[str, int]:
    """Records per subset: 10% video (three per video), 10% text, 5% multi-turn, the rest
    images 3:3:2."""
    videos = max(1, total // 10 // QUESTIONS_PER_VIDEO)
    texts = max(1, total // 10)
    multiturn = max(1, total // 20)
    images = total - videos * QUESTIONS_PER_VIDEO - texts - multiturn
    laion = images * 3 // 8
    return {
        "laion": laion,
        "vflan": images - 2 * laion,
        "texts": texts,
        "multiturn": multiturn,
        "videos": videos,
    }


def _answer(kind: str, number: int) -> str:
    if number % 50 == 7:
        return "N/A"  # an empty answer: review, by rule, never scored
    words = " ".join(WORDS[(number * k) % len(WORDS)] for k in (1, 3, 5, 7))
    return f"The {kind} number {number} shows a {words} shape on a plain background."


def _conversation(question: str, kind: str, number: int) -> list[dict[str, str]]:
    return [
        {"from": "human", "value": question},
        {"from": "gpt", "value": _answer(kind, number)},
    ]


def _multiturn_records(count: int, new: int) -> list[dict]:
    """LLaVA-Instruct-665K-style records: MULTITURN_TURNS questions about one image each."""
    records = []
    for number, record_id in enumerate(_ids("mt_", count, new)):
        conversation = []
        for turn in range(MULTITURN_TURNS):
            image_tag = "<image>\n" if turn == 0 else ""
            question = f"{image_tag}Question {turn + 1} about it (#{record_id})?"
            conversation += _conversation(question, "image", number * MULTITURN_TURNS + turn)
        path = f"coco/train2017/{number % IMAGE_POOL:012d}.jpg"
        records.append({"id": record_id, "image": path, "conversations": conversation})
    return records


def _ids(prefix: str, count: int, new: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)] + [f"new_{prefix}{i}" for i in range(new)]


def _image_records(prefix: str, folder: str, count: int, new: int, question: str) -> list[dict]:
    records = []
    for number, record_id in enumerate(_ids(prefix, count, new)):
        missing = number % 100 == 11  # a file that is not there: errors/
        name = f"missing_{number}" if missing else f"{number % IMAGE_POOL}"
        records.append(
            {
                "id": record_id,
                "image": f"{folder}/images/{name}.jpeg",
                "conversations": _conversation(
                    f"<image>\n{question} (#{record_id})", "image", number
                ),
            }
        )
    return records


def write_scale_dataset(root: Path, total: int, new: int = 0) -> dict[str, int]:
    """Write `total` records (and `new` more, spread like the rest) under `root`; return the
    number of records written per subset."""
    root = Path(root)
    counts = split(total)
    extra = split(new) if new else dict.fromkeys(counts, 0)
    allava = root / "ALLaVA-4V"
    for folder in ("allava_laion", "allava_vflan"):
        images = allava / folder / "images"
        images.mkdir(parents=True, exist_ok=True)
        for index in range(IMAGE_POOL):
            path = images / f"{index}.jpeg"
            if not path.exists():
                path.write_bytes(image_bytes(index + (1000 if folder == "allava_vflan" else 0)))
    laion, new_laion = counts["laion"], extra["laion"]
    _write_json(
        allava / "allava_laion/ALLaVA-Caption-LAION-4V.json",
        _image_records("cap_", "allava_laion", laion, new_laion, "Describe the image."),
    )
    _write_json(
        allava / "allava_laion/ALLaVA-Instruct-LAION-4V.json",
        _image_records("inst_", "allava_laion", laion, new_laion, "What stands out here?"),
    )
    _write_json(
        allava / "allava_vflan/ALLaVA-Instruct-VFLAN-4V.json",
        _image_records("vflan_", "allava_vflan", counts["vflan"], extra["vflan"], "Which shape?"),
    )
    texts = [
        {"idx": record_id, "conversations": _conversation(f"Explain topic {record_id}.", "text", n)}
        for n, record_id in enumerate(_ids("text_", counts["texts"], extra["texts"]))
    ]
    _write_json(allava / "allava_text/Evol-Instruct-GPT4-Turbo-143K.json", texts)
    coco = root / INSTRUCT_DIR / "coco" / "train2017"
    coco.mkdir(parents=True, exist_ok=True)
    for index in range(IMAGE_POOL):
        path = coco / f"{index:012d}.jpg"
        if not path.exists():
            path.write_bytes(image_bytes(index + 2000))
    _write_json(
        root / INSTRUCT_DIR / "llava_v1_5_mix665k.json",
        _multiturn_records(counts["multiturn"], extra["multiturn"]),
    )
    _write_videos(root / "LLaVA-Video-178K" / VIDEO_BUCKET, counts["videos"], extra["videos"])
    written = {name: counts[name] + extra[name] for name in counts}
    written["laion"] *= 2  # caption and instruct share the images
    written["videos"] *= QUESTIONS_PER_VIDEO
    return written


def _write_videos(folder: Path, count: int, new: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = _ids("v", count, new)
    clips = [video_bytes(index) for index in range(VIDEO_POOL)]
    for start in range(0, len(names), VIDEOS_PER_ARCHIVE):
        archive = folder / f"{VIDEO_BUCKET}_videos_{start // VIDEOS_PER_ARCHIVE + 1}.tar.gz"
        part = names[start : start + VIDEOS_PER_ARCHIVE]
        if not archive.exists() or start + VIDEOS_PER_ARCHIVE > count:
            members = [
                (f"{VIDEO_DIR}/{name}.mp4", clips[(start + i) % VIDEO_POOL])
                for i, name in enumerate(part)
            ]
            _write_tar_gz(archive, members)
    for tag, question in (
        ("cap", "Describe the video in detail."),
        ("oe_v0_1_qa", "What moves in the video?"),
        ("mc_v0_1_qa", "Which colour is the moving square?\nA. red\nB. blue"),
    ):
        records = [
            {
                "id": f"{name}_{tag[:2]}",
                "video": f"{VIDEO_DIR}/{name}.mp4",
                "conversations": _conversation(f"<video>\n{question} ({name})", "video", number),
                "data_source": VIDEO_BUCKET,
            }
            for number, name in enumerate(names)
        ]
        _write_json(folder / f"{VIDEO_BUCKET}_{tag}_processed.json", records)


def _write_json(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        handle.write("[")
        for number, record in enumerate(records):
            handle.write(("," if number else "") + json.dumps(record))
        handle.write("]")


def _write_tar_gz(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
