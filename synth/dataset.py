"""Write the generated sample dataset in the real ALLaVA-4V, LLaVA-Video-178K and
LLaVA-Instruct-665K layouts.

Everything a real user would meet is reproduced at small scale: one JSON array per subset, LAION
caption and instruct subsets sharing images, VFLAN's mixed .jpg/.png, the text subset's ``idx``
key, videos that exist ONLY inside a ``.tar.gz`` and are shared by the cap/oe/mc manifests, and
LLaVA-Instruct's multi-turn conversations (2-6 questions about one COCO-style image).
``labels.jsonl`` records the planted defect of every sample (and, for a multi-turn conversation,
the turn whose answer is wrong) so a cleaning run can be scored.

Output is a pure function of ``seed``: same seed, same bytes (gzip/tar mtimes pinned to 0).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from . import conversations as C
from .pairs import TRAINING_SEED_MIN
from .scenes import (
    differs_everywhere,
    encode_image,
    encode_video,
    random_image_scene,
    random_video_scene,
)
from .wordbank import TOPICS

DEFECT_RATE = 0.20  # target share of defective samples per subset
SOURCES = (
    "allava_laion_caption",
    "allava_laion_instruct",
    "allava_vflan_instruct",
    "allava_text",
    "llava_video_caption",
    "llava_video_open_ended",
    "llava_video_multiple_choice",
    "llava_instruct_multiturn",
)
INSTRUCT_DIR = "LLaVA-Instruct-665K"
INSTRUCT_MANIFEST = "llava_v1_5_mix665k.json"
MULTITURN_SOURCE = "llava_instruct_multiturn"
VIDEO_BUCKET = "0_30_s_youtube_v0_1"
VIDEO_DIR = "liwei_youtube_videos/videos/youtube_video_2024"
_YT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def write_sample_dataset(
    output: Path,
    seed: int = 0,
    images: int = 240,
    videos: int = 90,
    texts: int = 48,
    multiturn: int = 60,
    defect_rates: dict[str, float] | None = None,
) -> dict:
    """Write the dataset under ``output`` and return counts per source and defect.

    ``images`` is split 3:3:2 over LAION caption / LAION instruct / VFLAN (240 -> 90/90/60),
    ``videos`` evenly over cap / oe / mc; ``multiturn`` conversations of 2-6 turns, each with
    its own image. The 15-25% defect rate with every applicable class present holds for
    subsets of >= 24 samples (six classes at 25%); smaller subsets get at least one of each
    class, hence a higher rate. Seeds must be below 10_000 (training's range).
    ``defect_rates`` sets another target share for some sources (by name, ``SOURCES``), e.g. to
    see what a drifting source looks like from one run to the next; the others keep theirs, and
    their samples are the same bytes as without it.
    """
    if not 0 <= seed < TRAINING_SEED_MIN:
        raise ValueError(f"sample seeds must be in [0, {TRAINING_SEED_MIN})")
    rates = {source: DEFECT_RATE for source in SOURCES}
    for source, rate in (defect_rates or {}).items():
        if source not in rates:
            raise ValueError(f"no source {source!r} in the sample; its sources: {SOURCES}")
        if not 0 <= rate <= 1:
            raise ValueError(f"defect rate {rate} for {source} is not between 0 and 1")
        rates[source] = rate
    output = Path(output)
    n_laion = (images - images // 4) // 2
    n_vflan = images - 2 * n_laion
    n_oe = n_mc = videos // 3
    n_cap = videos - n_oe - n_mc
    labels: list[dict] = []

    def rng_for(name: str) -> random.Random:
        return random.Random(f"rmclean-sample:{seed}:{name}")

    # ALLaVA LAION: one image set, captioned AND instructed (as in the real release).
    root = output / "ALLaVA-4V"
    rng = rng_for("allava_laion")
    laion = [random_image_scene(rng) for _ in range(n_laion)]
    numbers = _unique_numbers(rng, n_laion, 100_000_000, 999_999_999)
    for n, scene in zip(numbers, laion, strict=True):
        _write(root / "allava_laion/images" / f"{n}.jpeg", encode_image(scene, "JPEG"))
    for style, tag, file, source in (
        ("caption", "cap", "ALLaVA-Caption-LAION-4V.json", "allava_laion_caption"),
        ("instruct", "inst", "ALLaVA-Instruct-LAION-4V.json", "allava_laion_instruct"),
    ):
        convs = _subset(laion, C.IMAGE_DEFECTS, rng_for(source), _image_maker(style), rates[source])
        records = [
            {
                "id": f"allava_laion_{tag}_{n}",
                "image": f"allava_laion/images/{n}.jpeg",
                "conversations": conv,
                "original_caption": _alt_text(scene, n),
                "url": f"https://example.com/laion/{n}.jpg",
            }
            for n, scene, (conv, _) in zip(numbers, laion, convs, strict=True)
        ]
        _write_json(root / "allava_laion" / file, records)
        labels += _labels(records, convs, source)

    # ALLaVA VFLAN: short VQA answers; every fifth image is a PNG.
    rng = rng_for("allava_vflan")
    vflan = [random_image_scene(rng) for _ in range(n_vflan)]
    numbers = _unique_numbers(rng, n_vflan, 1_000_000, 9_999_999)
    paths = []
    for i, (n, scene) in enumerate(zip(numbers, vflan, strict=True)):
        ext, fmt = ("png", "PNG") if i % 5 == 4 else ("jpg", "JPEG")
        paths.append(f"allava_vflan/images/{n}.{ext}")
        _write(root / paths[-1], encode_image(scene, fmt))
    source = "allava_vflan_instruct"
    convs = _subset(vflan, C.IMAGE_DEFECTS, rng_for(source), _image_maker("vqa"), rates[source])
    records = [
        {"id": f"allava_vflan_inst_{n}", "image": path, "conversations": conv}
        for n, path, (conv, _) in zip(numbers, paths, convs, strict=True)
    ]
    _write_json(root / "allava_vflan/ALLaVA-Instruct-VFLAN-4V.json", records)
    labels += _labels(records, convs, "allava_vflan_instruct")

    # ALLaVA text: Evol-Instruct-like, keyed by "idx", no media.
    rng = rng_for("allava_text")
    topics = [rng.choice(sorted(TOPICS)) for _ in range(texts)]
    convs = _subset(
        topics,
        C.TEXT_DEFECTS,
        rng,
        lambda topic, r: C.text_conversation(r, topic),
        rates["allava_text"],
    )
    records = [
        {"idx": f"allava_text_{i}", "conversations": conv} for i, (conv, _) in enumerate(convs)
    ]
    _write_json(root / "allava_text/Evol-Instruct-GPT4-Turbo-143K.json", records)
    labels += _labels(records, convs, "allava_text", key="idx")

    # LLaVA-Video-178K: videos only inside the tar.gz, shared by cap/oe/mc manifests.
    folder = output / "LLaVA-Video-178K" / VIDEO_BUCKET
    rng = rng_for("llava_video")
    clips = [random_video_scene(rng) for _ in range(max(n_cap, n_oe, n_mc))]
    vids = _unique_ids(rng, len(clips))
    _write_tar_gz(
        folder / f"{VIDEO_BUCKET}_videos_1.tar.gz",
        [(f"{VIDEO_DIR}/ytb_{v}.mp4", encode_video(s)) for v, s in zip(vids, clips, strict=True)],
    )
    for style, tag, count, file, source in (
        ("caption", "cap", n_cap, f"{VIDEO_BUCKET}_cap_processed.json", "llava_video_caption"),
        (
            "open_ended",
            "oe",
            n_oe,
            "0_30_s_youtube_oe_v0_1_qa_processed.json",
            "llava_video_open_ended",
        ),
        (
            "multiple_choice",
            "mc",
            n_mc,
            "0_30_s_youtube_mc_v0_1_qa_processed.json",
            "llava_video_multiple_choice",
        ),
    ):
        convs = _subset(
            clips[:count], C.VIDEO_DEFECTS, rng_for(source), _video_maker(style), rates[source]
        )
        records = [
            {
                "id": f"{v}_{tag}",
                "video": f"{VIDEO_DIR}/ytb_{v}.mp4",
                "conversations": conv,
                "data_source": VIDEO_BUCKET,
            }
            for v, (conv, _) in zip(vids, convs, strict=True)
        ]
        _write_json(folder / file, records)
        labels += _labels(records, convs, source)

    labels += _write_multiturn(
        output / INSTRUCT_DIR, multiturn, rng_for(MULTITURN_SOURCE), rates[MULTITURN_SOURCE]
    )

    _write(output / "labels.jsonl", "".join(json.dumps(row) + "\n" for row in labels).encode())
    return _summary(labels)


def _write_multiturn(root: Path, count: int, rng: random.Random, rate: float) -> list[dict]:
    """LLaVA-Instruct-665K-style multi-turn conversations, one COCO-style image each; a
    defective one has one wrong answer at a random turn (label ``turn``, from 0; null for a
    faithful one), every other answer faithful."""
    scenes = [random_image_scene(rng) for _ in range(count)]
    numbers = _unique_numbers(rng, count, 1, 581_929)  # COCO train2017 image ids
    records, labels = [], []
    for n, scene, defect in zip(
        numbers, scenes, _defect_plan(count, C.MULTITURN_DEFECTS, rng, rate), strict=True
    ):
        path = f"coco/train2017/{n:012d}.jpg"
        _write(root / path, encode_image(scene, "JPEG"))
        turns = rng.randint(*C.MULTITURN_TURNS)
        conversation = C.multiturn_conversation(scene, turns, rng)
        wrong = rng.randrange(turns) if defect else None
        if defect:
            conversation = C.plant_wrong_turn(conversation, wrong, defect, scene, rng)
        records.append({"id": f"{n:012d}", "image": path, "conversations": conversation})
        labels.append(
            {"id": f"{n:012d}", "source": MULTITURN_SOURCE, "defect": defect, "turn": wrong}
        )
    _write_json(root / INSTRUCT_MANIFEST, records)
    return labels


def _image_maker(style: str) -> Callable:
    return lambda scene, rng: C.image_conversation(scene, style, rng)


def _video_maker(style: str) -> Callable:
    return lambda scene, rng: C.video_conversation(scene, style, rng)


def _defect_plan(
    n: int, classes: tuple[str, ...], rng: random.Random, rate: float
) -> list[str | None]:
    """Defect per position: ``rate`` of ``n``, classes round-robin, positions shuffled."""
    n_bad = min(max(round(rate * n), min(len(classes), n // 2)), n)
    order = list(classes)
    rng.shuffle(order)  # which classes get the extra sample when n_bad isn't a multiple
    plan: list[str | None] = [None] * n
    for k, pos in enumerate(rng.sample(range(n), n_bad)):
        plan[pos] = order[k % len(order)]
    return plan


def _subset(items: list, classes: tuple[str, ...], rng: random.Random, make: Callable, rate: float):
    """Faithful conversations for ``items`` with defects planted per :func:`_defect_plan`.

    Returns ``[(conversation, defect | None)]``. A "mismatched" donor is the faithful
    conversation of another item in the same subset whose content differs everywhere (scenes)
    or whose topic differs (text).
    """
    faithful = [make(item, rng) for item in items]
    out = []
    for i, defect in enumerate(_defect_plan(len(items), classes, rng, rate)):
        if defect is None:
            out.append((faithful[i], None))
            continue
        donor = None
        if defect == "mismatched":
            ok = [
                j
                for j, other in enumerate(items)
                if _donor_ok(items[i], other)
                and faithful[j][-1]["value"] != faithful[i][-1]["value"]
            ]
            donor = faithful[rng.choice(ok)] if ok else make(_fresh_donor(items[i], rng), rng)
        out.append((C.corrupt(faithful[i], defect, items[i], rng, donor), defect))
    return out


def _donor_ok(item, other) -> bool:
    if isinstance(item, str):
        return item != other
    return differs_everywhere(item, other)


def _fresh_donor(item, rng: random.Random):
    # Only for tiny subsets where no other sample qualifies as a donor.
    if isinstance(item, str):
        return rng.choice([t for t in sorted(TOPICS) if t != item])
    draw = random_image_scene if hasattr(item, "count") else random_video_scene
    while not differs_everywhere(item, other := draw(rng)):
        pass
    return other


def _alt_text(scene, n: int) -> str:
    # LAION alt text is a short, loosely phrased web caption; this one is faithful.
    shapes = f"{scene.shape}s" if scene.count > 1 else scene.shape
    return f"{scene.colour} {shapes} clip art #{n % 1000}"


def _unique_numbers(rng: random.Random, k: int, lo: int, hi: int) -> list[int]:
    return sorted(rng.sample(range(lo, hi), k))


def _unique_ids(rng: random.Random, k: int) -> list[str]:
    ids: dict[str, None] = {}
    while len(ids) < k:
        ids["".join(rng.choice(_YT_ALPHABET) for _ in range(11))] = None
    return list(ids)


def _labels(records: list[dict], convs: list, source: str, key: str = "id") -> list[dict]:
    return [
        {"id": r[key], "source": source, "defect": d}
        for r, (_, d) in zip(records, convs, strict=True)
    ]


def _summary(labels: list[dict]) -> dict:
    by_source: dict[str, dict] = {}
    for row in labels:
        entry = by_source.setdefault(row["source"], {"total": 0, "clean": 0, "defects": Counter()})
        entry["total"] += 1
        if row["defect"] is None:
            entry["clean"] += 1
        else:
            entry["defects"][row["defect"]] += 1
    for entry in by_source.values():
        entry["defects"] = dict(sorted(entry["defects"].items()))
    return {"total": len(labels), "sources": by_source}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_json(path: Path, records: list[dict]) -> None:
    _write(path, json.dumps(records, ensure_ascii=False).encode())


def _write_tar_gz(path: Path, members: list[tuple[str, bytes]]) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    _write(path, buf.getvalue())
