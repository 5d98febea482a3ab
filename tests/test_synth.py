"""Tests for the generated sample dataset (synth/): layout, determinism, content, defects."""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
from collections import Counter, deque
from pathlib import Path

import decord
import numpy as np
import pytest
from PIL import Image

from synth import conversations as C
from synth import templates as T
from synth.dataset import write_sample_dataset
from synth.pairs import preference_pairs
from synth.scenes import (
    COLOURS,
    ImageScene,
    VideoScene,
    encode_image,
    encode_video,
    random_image_scene,
    random_video_scene,
    render_image,
)
from synth.wordbank import OFF_TOPIC, TOPICS

ALLAVA = "ALLaVA-4V"
VIDEO_FOLDER = "LLaVA-Video-178K/0_30_s_youtube_v0_1"
MANIFESTS = {
    "allava_laion_caption": f"{ALLAVA}/allava_laion/ALLaVA-Caption-LAION-4V.json",
    "allava_laion_instruct": f"{ALLAVA}/allava_laion/ALLaVA-Instruct-LAION-4V.json",
    "allava_vflan_instruct": f"{ALLAVA}/allava_vflan/ALLaVA-Instruct-VFLAN-4V.json",
    "allava_text": f"{ALLAVA}/allava_text/Evol-Instruct-GPT4-Turbo-143K.json",
    "llava_video_caption": f"{VIDEO_FOLDER}/0_30_s_youtube_v0_1_cap_processed.json",
    "llava_video_open_ended": f"{VIDEO_FOLDER}/0_30_s_youtube_oe_v0_1_qa_processed.json",
    "llava_video_multiple_choice": f"{VIDEO_FOLDER}/0_30_s_youtube_mc_v0_1_qa_processed.json",
    "llava_instruct_multiturn": "LLaVA-Instruct-665K/llava_v1_5_mix665k.json",
}
MULTITURN = "llava_instruct_multiturn"
TAR = f"{VIDEO_FOLDER}/0_30_s_youtube_v0_1_videos_1.tar.gz"
CLASSES = {
    "allava_text": set(C.TEXT_DEFECTS),
    **{s: set(C.IMAGE_DEFECTS) for s in MANIFESTS if s.startswith("allava_") and "text" not in s},
    **{s: set(C.VIDEO_DEFECTS) for s in MANIFESTS if s.startswith("llava_video")},
    MULTITURN: set(C.MULTITURN_DEFECTS),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    write_sample_dataset(out, seed=0)
    return out


def _records(root: Path, source: str) -> list[dict]:
    return json.loads((root / MANIFESTS[source]).read_text())


def _labels(root: Path) -> dict[str, dict]:
    lines = (root / "labels.jsonl").read_text().splitlines()
    return {row["id"]: row for row in map(json.loads, lines)}


def _tar_members(root: Path) -> dict[str, bytes]:
    with tarfile.open(root / TAR, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _saturated(rgb: np.ndarray) -> np.ndarray:
    # Shapes are saturated colours; the background is light grey.
    rgb = rgb.astype(int)
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) > 80


def _dominant_colour(rgb: np.ndarray) -> str:
    mean = rgb[_saturated(rgb)].mean(axis=0)
    return min(COLOURS, key=lambda c: float(np.sum((np.array(COLOURS[c]) - mean) ** 2)))


def _components(mask: np.ndarray, min_px: int = 3) -> int:
    seen = np.zeros_like(mask, dtype=bool)
    found = 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        size, queue = 0, deque([(y, x)])
        seen[y, x] = True
        while queue:
            cy, cx = queue.popleft()
            size += 1
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                if inside and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        found += size >= min_px
    return found


# --- layout -------------------------------------------------------------------------------


@pytest.mark.slow
def test_layout_files_exist_and_parse_as_arrays(root):
    for path in [*MANIFESTS.values(), TAR, "labels.jsonl"]:
        assert (root / path).is_file(), path
    for source in MANIFESTS:
        records = _records(root, source)
        assert isinstance(records, list) and records
        turns = (1, 1) if source != MULTITURN else C.MULTITURN_TURNS
        for r in records:
            roles = [t["from"] for t in r["conversations"]]
            assert turns[0] <= len(roles) // 2 <= turns[1], source
            assert roles == ["human", "gpt"] * (len(roles) // 2), source
    assert not list(root.rglob("*.mp4")), "videos must live only inside the tar.gz"


def test_record_keys_follow_each_subset(root):
    for r in _records(root, "allava_laion_caption"):
        assert r["id"].startswith("allava_laion_cap_")
        assert {"original_caption", "url"} <= r.keys()
        assert r["conversations"][0]["value"].startswith("<image>\n")
    for r in _records(root, "allava_vflan_instruct"):
        assert "original_caption" not in r and "url" not in r
    for r in _records(root, "allava_text"):
        assert "idx" in r and "id" not in r and "image" not in r
        assert "<image>" not in r["conversations"][0]["value"]
    for source in ("llava_video_caption", "llava_video_open_ended", "llava_video_multiple_choice"):
        for r in _records(root, source):
            assert r["data_source"] == "0_30_s_youtube_v0_1"
            assert re.fullmatch(
                r"liwei_youtube_videos/videos/youtube_video_2024/ytb_.+\.mp4", r["video"]
            )
            assert r["conversations"][0]["value"].startswith("<video>\n")


def test_multiturn_conversations_ask_about_one_image_in_llava_instruct_layout(root):
    records = _records(root, MULTITURN)
    lengths = Counter(len(r["conversations"]) // 2 for r in records)
    assert set(lengths) == set(range(2, 7))  # every length from 2 to 6 turns occurs
    for r in records:
        assert re.fullmatch(r"\d{12}", r["id"]) and r["image"] == f"coco/train2017/{r['id']}.jpg"
        assert (root / "LLaVA-Instruct-665K" / r["image"]).is_file()
        questions = [t["value"] for t in r["conversations"][::2]]
        assert questions[0].startswith("<image>\n")
        assert not any("<image>" in q for q in questions[1:])
        assert len(set(questions)) == len(questions)  # a different question each turn
    labels = _labels(root)
    for r in records:
        label = labels[r["id"]]
        if label["defect"] is None:
            assert label["turn"] is None
        else:
            assert 0 <= label["turn"] < len(r["conversations"]) // 2
    planted = {labels[r["id"]]["turn"] for r in records} - {None}
    assert 0 in planted and max(planted) >= 2  # some at the first turn, some after a prefix


def test_a_planted_wrong_turn_changes_that_answer_only():
    scene = ImageScene("circle", "red", 3, 300, 200, 7)
    rng = random.Random(5)
    faithful = C.multiturn_conversation(scene, 4, rng)
    for defect, attr, values in (
        ("wrong_colour", "colour", sorted(COLOURS)),
        ("wrong_count", "count", [1, 2, 3, 4]),
        ("wrong_object", "shape", ["circle", "square", "triangle"]),
    ):
        planted = C.plant_wrong_turn(faithful, 2, defect, scene, random.Random(1))
        changed = [i for i, (a, b) in enumerate(zip(faithful, planted, strict=True)) if a != b]
        assert changed == [5]  # the third answer, nothing else
        truth = getattr(scene, attr)
        wrong = [v for v in values if v != truth and C.mentions(planted[5]["value"], attr, v)]
        assert wrong, (defect, planted[5]["value"])
    off = C.plant_wrong_turn(faithful, 0, "off_topic", scene, random.Random(1))
    assert off[1]["value"] != faithful[1]["value"] and off[2:] == faithful[2:]
    with pytest.raises(ValueError, match="multi-turn defect"):
        C.plant_wrong_turn(faithful, 0, "empty_answer", scene, rng)


def test_default_sizes(root):
    sizes = {s: len(_records(root, s)) for s in MANIFESTS}
    images = sum(v for k, v in sizes.items() if k.startswith("allava_") and k != "allava_text")
    videos = sum(v for k, v in sizes.items() if k.startswith("llava_video"))
    assert images >= 200 and videos >= 40 and sizes["allava_text"] >= 40
    assert sizes[MULTITURN] == 60
    total = sum(sizes.values())
    assert total == len(_labels(root)) == 438
    # The README says so where it says how many samples the sample has.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    claims = re.findall(r"(?:scores its|writes) (\d+) samples", readme)
    assert claims and all(int(n) == total for n in claims), claims


def test_image_paths_resolve_and_laion_subsets_share_images(root):
    exts = Counter()
    for source in ("allava_laion_caption", "allava_laion_instruct", "allava_vflan_instruct"):
        for r in _records(root, source):
            path = root / ALLAVA / r["image"]
            assert path.is_file(), r["image"]
            exts[path.suffix] += 1
    assert exts[".png"] > 0 and exts[".jpg"] > 0 and exts[".jpeg"] > 0
    cap = {r["image"] for r in _records(root, "allava_laion_caption")}
    inst = {r["image"] for r in _records(root, "allava_laion_instruct")}
    assert cap == inst


def test_video_members_exist_in_tar_and_decode(root):
    members = _tar_members(root)
    paths = set()
    for source in ("llava_video_caption", "llava_video_open_ended", "llava_video_multiple_choice"):
        paths |= {r["video"] for r in _records(root, source)}
    assert paths == set(members)
    cap = {r["video"] for r in _records(root, "llava_video_caption")}
    oe = {r["video"] for r in _records(root, "llava_video_open_ended")}
    assert cap & oe, "videos are shared across cap/oe/mc"
    for data in members.values():
        reader = decord.VideoReader(io.BytesIO(data))
        assert 24 <= len(reader) <= 48  # 3-6 s at 8 fps
        assert reader[0].asnumpy().ndim == 3


def test_ids_unique_across_dataset(root):
    ids = [r.get("id", r.get("idx")) for s in MANIFESTS for r in _records(root, s)]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(_labels(root))


# --- defects ------------------------------------------------------------------------------


def test_defect_rate_and_every_class_in_every_subset(root):
    labels = list(_labels(root).values())
    for source, classes in CLASSES.items():
        rows = [r for r in labels if r["source"] == source]
        bad = [r["defect"] for r in rows if r["defect"] is not None]
        assert 0.15 <= len(bad) / len(rows) <= 0.25, source
        assert set(bad) == classes, source
    assert {r["source"] for r in labels} == set(MANIFESTS)


def test_empty_answers_use_both_forms(root):
    labels = _labels(root)
    empties = set()
    for source in MANIFESTS:
        for r in _records(root, source):
            if labels[r.get("id", r.get("idx"))]["defect"] == "empty_answer":
                empties.add(r["conversations"][-1]["value"])
    assert empties == {"", "N/A"}


def test_laion_captions_agree_with_pixels_unless_colour_is_wrong(root):
    labels = _labels(root)
    for r in _records(root, "allava_laion_caption"):
        defect = labels[r["id"]]["defect"]
        if defect not in (None, "wrong_colour"):
            continue
        seen = _dominant_colour(np.asarray(Image.open(root / ALLAVA / r["image"]).convert("RGB")))
        claimed = {c for c in COLOURS if C.mentions(r["conversations"][-1]["value"], "colour", c)}
        assert (seen in claimed) == (defect is None), (r["id"], seen, claimed)


@pytest.mark.slow
def test_same_seed_same_bytes_and_different_seed_differs(root, tmp_path):
    write_sample_dataset(tmp_path / "again", seed=0)
    write_sample_dataset(tmp_path / "other", seed=1)
    for path in [*MANIFESTS.values(), TAR, "labels.jsonl"]:
        assert (root / path).read_bytes() == (tmp_path / "again" / path).read_bytes(), path
    assert (root / "labels.jsonl").read_bytes() != (tmp_path / "other/labels.jsonl").read_bytes()
    for path in MANIFESTS.values():
        assert (root / path).read_bytes() != (tmp_path / "other" / path).read_bytes(), path


def test_seed_ranges_are_disjoint(tmp_path):
    with pytest.raises(ValueError):
        write_sample_dataset(tmp_path, seed=10_000)
    with pytest.raises(ValueError):
        next(preference_pairs(1, seed=0))


# --- rendering ----------------------------------------------------------------------------


def test_rendered_images_show_colour_and_count_even_at_64px():
    rng = random.Random(7)
    for _ in range(30):
        scene = random_image_scene(rng)
        img = render_image(scene)
        assert img.size == (scene.width, scene.height)
        assert 256 <= min(img.size) and max(img.size) <= 640
        assert _dominant_colour(np.asarray(img)) == scene.colour
        small = np.asarray(img.resize((64, 64), Image.BILINEAR))
        assert _components(_saturated(small)) == scene.count, scene


def test_encoding_is_deterministic_and_decodable():
    scene = ImageScene("triangle", "yellow", 3, 400, 300, 11)
    assert encode_image(scene) == encode_image(scene)
    assert Image.open(io.BytesIO(encode_image(scene, "PNG"))).format == "PNG"
    clip = VideoScene("square", "blue", "up", 3, 8, 160, 128, 5)
    assert encode_video(clip) == encode_video(clip)


@pytest.mark.parametrize("motion", ["left", "right", "up", "down"])
def test_video_shape_moves_in_scene_direction(motion):
    scene = random_video_scene(random.Random(motion))
    scene = VideoScene(scene.shape, scene.colour, motion, 3, 8, scene.width, scene.height, 1)
    reader = decord.VideoReader(io.BytesIO(encode_video(scene)))
    first, last = reader[0].asnumpy(), reader[len(reader) - 1].asnumpy()
    assert _dominant_colour(first) == scene.colour
    (y0, x0), (y1, x1) = (np.argwhere(_saturated(f)).mean(axis=0) for f in (first, last))
    dx, dy = x1 - x0, y1 - y0
    expected = {"left": -dx, "right": dx, "up": -dy, "down": dy}[motion]
    assert expected > 0.5 * (scene.width if motion in ("left", "right") else scene.height)


# --- conversations and corruptions ---------------------------------------------------------


def _scenes_and_convs(n: int = 60):
    rng = random.Random(3)
    for i in range(n):
        if i % 2:
            scene = random_image_scene(rng)
            yield scene, C.image_conversation(scene, C.IMAGE_STYLES[i % 3], rng)
        else:
            scene = random_video_scene(rng)
            yield scene, C.video_conversation(scene, C.VIDEO_STYLES[i % 3], rng)


def test_attribute_defects_state_a_wrong_value():
    rng = random.Random(5)
    attrs = {
        "wrong_object": "shape",
        "wrong_colour": "colour",
        "wrong_count": "count",
        "wrong_motion": "motion",
    }
    values = {
        "shape": ("circle", "square", "triangle"),
        "colour": tuple(COLOURS),
        "count": (1, 2, 3, 4),
        "motion": ("left", "right", "up", "down"),
    }
    for scene, conv in _scenes_and_convs():
        applicable = C.IMAGE_DEFECTS if isinstance(scene, ImageScene) else C.VIDEO_DEFECTS
        for defect in (d for d in applicable if d in attrs):
            before = json.dumps(conv)
            bad = C.corrupt(conv, defect, scene, rng)
            assert json.dumps(conv) == before, "input must be left untouched"
            answer, question = bad[-1]["value"], bad[0]["value"]
            assert answer != conv[-1]["value"]
            if re.fullmatch(r"[A-D]\.", conv[-1]["value"]):
                options = dict(re.findall(r"\n([A-D])\. (.+)", question))
                assert answer[0] in options and options[answer[0]] != options[conv[-1]["value"][0]]
                continue
            attr = attrs[defect]
            truth = getattr(scene, attr)
            assert any(C.mentions(answer, attr, v) for v in values[attr] if v != truth), answer
            if attr != "count":  # "a single" vs "one" can both appear in count phrasing
                assert not C.mentions(answer, attr, truth), answer


def test_inapplicable_defects_are_rejected():
    rng = random.Random(0)
    image = random_image_scene(rng)
    with pytest.raises(ValueError):
        C.corrupt(C.image_conversation(image, "caption", rng), "wrong_motion", image, rng)
    video = random_video_scene(rng)
    with pytest.raises(ValueError):
        C.corrupt(C.video_conversation(video, "caption", rng), "wrong_count", video, rng)


def test_multiple_choice_format():
    rng = random.Random(2)
    for _ in range(20):
        conv = C.video_conversation(random_video_scene(rng), "multiple_choice", rng)
        lines = conv[0]["value"].split("\n")
        assert lines[0] == "<video>" and [ln[:3] for ln in lines[2:6]] == [
            "A. ",
            "B. ",
            "C. ",
            "D. ",
        ]
        assert lines[6] == T.MC_SUFFIX
        assert re.fullmatch(r"[A-D]\.", conv[1]["value"])


def test_off_topic_vocabulary_never_appears_in_faithful_media_answers():
    faithful = set()
    for _, conv in _scenes_and_convs(400):
        faithful |= set(re.findall(r"[a-z]+", conv[-1]["value"].lower()))
    off = {w for pool in OFF_TOPIC.values() for s in pool for w in re.findall(r"[a-z]+", s.lower())}
    stop = {
        "a",
        "an",
        "the",
        "and",
        "in",
        "on",
        "of",
        "to",
        "is",
        "it",
        "at",
        "so",
        "for",
        "its",
        "with",
        "from",
        "after",
        "before",
        "then",
        "this",
        "until",
        "their",
        "she",
        "has",
        "have",
        "now",
        "be",
        "will",
        "should",
        "any",
        "as",
        "near",
        "one",
    }
    assert not (off - stop) & faithful, sorted((off - stop) & faithful)


def test_text_answers_stay_on_subject_and_off_topic_changes_subject():
    rng = random.Random(9)
    questions = set()
    for _ in range(200):
        conv = C.text_conversation(rng)
        topic = C.topic_of(conv)
        subjects, terms = TOPICS[topic]
        subject = next(s for s in subjects if s in conv[0]["value"])
        answer = conv[-1]["value"].lower()
        assert subject.lower() in answer and any(t.lower() in answer for t in terms)
        questions.add(conv[0]["value"])
        bad = C.corrupt(conv, "off_topic", topic, rng)[-1]["value"].lower()
        assert subject.lower() not in bad and not any(t.lower() in bad for t in terms)
    assert len(questions) > 120


def test_mismatched_text_keeps_the_question_and_takes_another_topics_answer():
    rng = random.Random(4)
    conv = C.text_conversation(rng, "cooking")
    with pytest.raises(ValueError):
        C.corrupt(conv, "mismatched", "cooking", rng, donor=C.text_conversation(rng, "cooking"))
    donor = C.text_conversation(rng, "chess")
    corrupted = C.corrupt(conv, "mismatched", "cooking", rng, donor=donor)
    assert corrupted[0] == conv[0] and corrupted[-1]["value"] == donor[-1]["value"]
    with pytest.raises(ValueError):
        C.corrupt(conv, "mismatched", "cooking", rng)


def test_preference_pairs_mix_kinds_and_include_empty_answers():
    pairs = list(preference_pairs(60, seed=10_000))
    kinds = Counter(p.kind for p in pairs)
    assert kinds["image"] > kinds["video"] > 0 and kinds["text"] > 0
    assert all(p.chosen != p.rejected for p in pairs)
    # The rules catch empty answers first, but the model still has to rank them low.
    empty = [p for p in pairs if p.defect == "empty_answer"]
    assert empty and all(p.rejected[-1]["value"] in ("", "N/A") for p in empty)
    for p in pairs:
        if p.kind == "image":
            assert Image.open(io.BytesIO(p.media)).format in ("JPEG", "PNG")
        elif p.kind == "video":
            assert p.media_ext == "mp4" and len(decord.VideoReader(io.BytesIO(p.media))) > 0
        else:
            assert p.media is None
    again = list(preference_pairs(5, seed=10_000))
    assert [p.rejected for p in again] == [p.rejected for p in pairs[:5]]
