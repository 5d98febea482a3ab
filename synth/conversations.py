"""Templated LLaVA-format conversations about known scenes, and planted defects.

A conversation is ``[{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]`` with the
``<image>\\n`` / ``<video>\\n`` placeholder at the start of the human turn (none for text);
a multi-turn one (:func:`multiturn_conversation`) asks several questions about one image, the
placeholder in its first turn. Faithful conversations only state what the scene contains;
:func:`corrupt` plants one defect in the last answer, :func:`plant_wrong_turn` in any answer of
a multi-turn conversation, always one that can be detected from the media (or question) plus
that answer.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import replace

from . import templates as T
from .scenes import COLOURS, COUNTS, MOTIONS, SHAPES, ImageScene, VideoScene
from .wordbank import OFF_TOPIC, OFF_TOPIC_EXCLUDE, TOPICS

IMAGE_STYLES = ("caption", "instruct", "vqa")
VIDEO_STYLES = ("caption", "open_ended", "multiple_choice")

DEFECTS = (
    "wrong_object",
    "wrong_colour",
    "wrong_count",
    "wrong_motion",
    "mismatched",
    "empty_answer",
    "off_topic",
)
IMAGE_DEFECTS = (
    "wrong_object",
    "wrong_colour",
    "wrong_count",
    "mismatched",
    "empty_answer",
    "off_topic",
)
VIDEO_DEFECTS = (
    "wrong_object",
    "wrong_colour",
    "wrong_motion",
    "mismatched",
    "empty_answer",
    "off_topic",
)
TEXT_DEFECTS = ("mismatched", "empty_answer", "off_topic")
# A wrong answer in one turn of a multi-turn conversation: what the image contradicts, or an
# answer about something else entirely.
MULTITURN_DEFECTS = ("wrong_object", "wrong_colour", "wrong_count", "off_topic")
MULTITURN_TURNS = (2, 6)  # assistant turns per multi-turn conversation, inclusive

_ATTRIBUTE = {
    "wrong_object": "shape",
    "wrong_colour": "colour",
    "wrong_count": "count",
    "wrong_motion": "motion",
}
_VALUES = {"shape": SHAPES, "colour": tuple(sorted(COLOURS)), "count": COUNTS, "motion": MOTIONS}
_MC_ANSWER = re.compile(r"[A-D]\.")
_LETTERS = "ABCD"


def _turns(placeholder: str, question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": placeholder + question}, {"from": "gpt", "value": answer}]


def image_conversation(scene: ImageScene, style: str, rng: random.Random) -> list[dict]:
    """A faithful single-turn conversation; style: caption, instruct or vqa (short answers)."""
    question, answers = rng.choice(T.IMAGE_TEMPLATES[style])
    fields = T.image_fields(scene)
    return _turns("<image>\n", question.format(**fields), rng.choice(answers).format(**fields))


def multiturn_conversation(scene: ImageScene, turns: int, rng: random.Random) -> list[dict]:
    """A faithful conversation of ``turns`` question/answer pairs about one image, as in
    LLaVA-Instruct-665K: different questions (instruct and VQA templates), the ``<image>``
    placeholder in the first."""
    pool = [pair for style in ("instruct", "vqa") for pair in T.IMAGE_TEMPLATES[style]]
    fields = T.image_fields(scene)
    out: list[dict] = []
    for number, (question, answers) in enumerate(rng.sample(pool, turns)):
        placeholder = "<image>\n" if number == 0 else ""
        out += _turns(placeholder, question.format(**fields), rng.choice(answers).format(**fields))
    return out


def plant_wrong_turn(
    conversation: list[dict], turn: int, defect: str, scene: ImageScene, rng: random.Random
) -> list[dict]:
    """A copy of ``conversation`` whose assistant turn ``turn`` (from 0) answers wrongly
    (``defect``, one of MULTITURN_DEFECTS); every other turn is unchanged."""
    if defect not in MULTITURN_DEFECTS:
        raise ValueError(f"{defect!r} is not a multi-turn defect {MULTITURN_DEFECTS}")
    out = copy.deepcopy(conversation)
    answer = [i for i, t in enumerate(out) if t["from"] == "gpt"][turn]
    out[answer] = corrupt(out[answer - 1 : answer + 1], defect, scene, rng)[1]
    return out


def video_conversation(scene: VideoScene, style: str, rng: random.Random) -> list[dict]:
    """A faithful conversation; style: caption, open_ended or multiple_choice (A-D letter)."""
    if style == "multiple_choice":
        return _multiple_choice(scene, rng)
    question, answers = rng.choice(T.VIDEO_TEMPLATES[style])
    fields = T.video_fields(scene)
    return _turns("<video>\n", question.format(**fields), rng.choice(answers).format(**fields))


def _multiple_choice(scene: VideoScene, rng: random.Random) -> list[dict]:
    # LLaVA-Video-178K mc layout: question, one "X. option" line per letter, fixed instruction;
    # the answer is just the letter and a period.
    kind = rng.choice(("motion", "colour", "shape"))
    if kind == "motion":
        question = f"In which direction does the {scene.colour} {scene.shape} move?"
        truth, options = T.MC_MOTION[scene.motion], list(T.MC_MOTION.values())
    elif kind == "colour":
        question = f"What colour is the moving {scene.shape}?"
        others = rng.sample([c for c in sorted(COLOURS) if c != scene.colour], 3)
        truth, options = (
            scene.colour.capitalize(),
            [c.capitalize() for c in [scene.colour, *others]],
        )
    else:
        question = "What shape moves across the video?"
        truth, options = (
            scene.shape.capitalize(),
            [s.capitalize() for s in (*SHAPES, T.MC_EXTRA_SHAPE)],
        )
    rng.shuffle(options)
    lines = [question] + [f"{_LETTERS[i]}. {opt}" for i, opt in enumerate(options)] + [T.MC_SUFFIX]
    answer = f"{_LETTERS[options.index(truth)]}."
    return _turns("<video>\n", "\n".join(lines), answer)


_TEXT_QUESTIONS = (
    "How do I get started with {subject}?",
    "What are common beginner mistakes with {subject}, and how can I avoid them?",
    "Can you explain the basics of {subject} in simple terms?",
    "Give me a few practical tips on {subject}.",
    "I'm interested in {topic}. What should I know about {subject}?",
    "Write a short guide to {subject} for a complete beginner.",
    "Why do people find {subject} so rewarding?",
    "What is the most important thing to understand about {subject}?",
)
_TEXT_OPENERS = (
    "Great question: {subject} rewards patience more than talent.",
    "When it comes to {subject}, a little preparation goes a long way.",
    "{Subject} is easier to approach once you understand a few key ideas.",
    "Many people interested in {topic} start with {subject}, and for good reason.",
    "Here is a practical overview of {subject}.",
)
_TEXT_BODY = (
    "Pay close attention to {t1}, because it shapes everything else in {topic}.",
    "Start by learning how {t1} and {t2} work together.",
    "A common mistake is to neglect {t1}; checking it regularly avoids most problems.",
    "Experienced people in {topic} spend time on {t1} before worrying about {t2}.",
    "Keep notes about {t1} and {t2} so you can see what changes from one attempt to the next.",
    "Getting {t1} right makes {subject} far more forgiving.",
    "Don't rush {t2}; in {topic}, small adjustments add up quickly.",
    "If something goes wrong, look at {t1} first and {t3} second.",
)
_TEXT_CLOSERS = (
    "With steady practice, {subject} becomes second nature.",
    "Enjoy the process; {topic} is something you can keep learning for years.",
    "Take it one step at a time and {subject} will start to feel natural.",
    "Most of all, keep experimenting with {t3}.",
)


def text_conversation(rng: random.Random, topic: str | None = None) -> list[dict]:
    """A text-only instruction sample whose answer keeps to the question's subject and topic.

    Variety: 12 topics x 6 subjects x 8 questions x 5 openers x C(8,2) bodies x 4 closers, with
    topic terms drawn per answer.
    """
    topic = topic or rng.choice(sorted(TOPICS))
    subjects, terms = TOPICS[topic]
    subject = rng.choice(subjects)
    t1, t2, t3 = rng.sample(terms, 3)
    f = {
        "subject": subject,
        "Subject": subject[:1].upper() + subject[1:],
        "topic": topic,
        "t1": t1,
        "t2": t2,
        "t3": t3,
    }
    sentences = [
        rng.choice(_TEXT_OPENERS),
        *rng.sample(_TEXT_BODY, rng.randint(2, 3)),
        rng.choice(_TEXT_CLOSERS),
    ]
    answer = " ".join(s.format(**f) for s in sentences)
    return _turns("", rng.choice(_TEXT_QUESTIONS).format(**f), answer)


def topic_of(conversation: list[dict]) -> str | None:
    """The text topic whose subject the human turn asks about (None for media questions)."""
    question = conversation[0]["value"]
    for topic, (subjects, _) in TOPICS.items():
        if any(subject in question for subject in subjects):
            return topic
    return None


def corrupt(
    conversation: list[dict],
    defect: str,
    scene: ImageScene | VideoScene | str | None,
    rng: random.Random,
    donor: list[dict] | None = None,
) -> list[dict]:
    """Return a copy of ``conversation`` with ``defect`` planted in its last answer.

    ``scene`` is the media's ground truth (a topic name or None for text). ``donor`` is required
    for "mismatched": the caller picks another sample whose content differs (see
    ``scenes.differs_everywhere``; for text, a different topic, which is checked here). Media
    samples take the donor's whole conversation; text samples keep their question and take
    the donor's answer.
    """
    if defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}")
    out = copy.deepcopy(conversation)
    gpt = max(i for i, turn in enumerate(out) if turn["from"] == "gpt")
    if defect == "mismatched":
        if donor is None or donor[-1]["value"] == conversation[gpt]["value"]:
            raise ValueError("mismatched needs a donor conversation with a different answer")
        if scene is None or isinstance(scene, str):
            if topic_of(donor) == (scene or topic_of(conversation)):
                raise ValueError("a text donor must come from a different topic")
            # Without media, a whole borrowed conversation would be a valid sample: the
            # mismatch is the question answered by another sample's answer.
            out[gpt]["value"] = donor[-1]["value"]
            return out
        return copy.deepcopy(donor)
    if defect == "empty_answer":
        out[gpt]["value"] = rng.choice(("", "N/A"))
    elif defect == "off_topic":
        out[gpt]["value"] = _off_topic(conversation, scene, rng)
    else:
        question = out[gpt - 1]["value"].removeprefix("<image>\n").removeprefix("<video>\n")
        out[gpt]["value"] = _wrong_answer(question, out[gpt]["value"], defect, scene, rng)
    return out


def _off_topic(conversation: list[dict], scene, rng: random.Random) -> str:
    domains = sorted(OFF_TOPIC)
    if scene is None or isinstance(scene, str):
        excluded = OFF_TOPIC_EXCLUDE.get(scene or topic_of(conversation) or "", frozenset())
        domains = [d for d in domains if d not in excluded]
    pool = OFF_TOPIC[rng.choice(domains)]
    return " ".join(rng.sample(pool, rng.randint(1, 2)))


def _wrong_answer(question: str, answer: str, defect: str, scene, rng: random.Random) -> str:
    attr = _ATTRIBUTE[defect]
    if not hasattr(scene, attr):
        raise ValueError(f"{defect} does not apply to {type(scene).__name__}")
    if _MC_ANSWER.fullmatch(answer) and f"\n{answer[0]}. " in question:
        letters = [c for c in _LETTERS if c != answer[0] and f"\n{c}. " in question]
        return f"{rng.choice(letters)}."
    wrong_value = rng.choice([v for v in _VALUES[attr] if v != getattr(scene, attr)])
    wrong = replace(scene, **{attr: wrong_value})
    if isinstance(scene, ImageScene):
        styles, fields, wrong_fields = (
            T.IMAGE_TEMPLATES,
            T.image_fields(scene),
            T.image_fields(wrong),
        )
    else:
        styles, fields, wrong_fields = (
            T.VIDEO_TEMPLATES,
            T.video_fields(scene),
            T.video_fields(wrong),
        )
    for pairs in styles.values():
        for q_tpl, answers in pairs:
            if q_tpl.format(**fields) != question:
                continue
            for a_tpl in answers:
                if a_tpl.format(**fields) == answer:
                    rewritten = a_tpl.format(**wrong_fields)
                    if mentions(rewritten, attr, wrong_value):
                        return rewritten
    # The answer's phrasing does not state this attribute (e.g. a count answered "3" under
    # wrong_colour): state it, wrongly, so the defect is visible from media + answer.
    return _statement(wrong, short=len(answer.split()) <= 3)


def _statement(scene, short: bool) -> str:
    if isinstance(scene, ImageScene):
        f = T.image_fields(scene)
        return f["noun_phrase"] if short else "There {are} {noun_phrase} in the image.".format(**f)
    f = T.video_fields(scene)
    return (
        "{colour} {shape}, {towards}".format(**f)
        if short
        else ("A {colour} {shape} moves {towards}.".format(**f))
    )


def mentions(answer: str, attr: str, value) -> bool:
    """Whether ``answer`` states ``value`` for ``attr`` (used by corrupt and by tests)."""
    words = set(re.findall(r"[a-z0-9]+", answer.lower()))
    if attr == "count":
        return bool({str(value), T.NUMBER_WORDS[value]} & words) or (
            value == 1 and "single" in words
        )
    if attr == "shape":
        return bool({value, T.PLURALS[value]} & words)
    if attr == "colour":
        return value in words
    if attr == "motion":
        return T.TOWARDS[value] in answer.lower() or T.EDGE[value] in answer.lower()
    raise ValueError(attr)
