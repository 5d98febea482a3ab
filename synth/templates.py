"""Question/answer templates for image and video conversations.

Each style is a list of ``(question, answers)`` pairs of ``str.format`` templates over the fields
from :func:`image_fields` / :func:`video_fields`. Keeping the templates as data (rather than code)
is what lets ``corrupt`` re-render the SAME answer phrasing with one attribute changed: it finds
the template that produced a conversation and formats it again with a wrong scene.
"""

from __future__ import annotations

from .scenes import ImageScene, VideoScene

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}
# Direction phrases use disjoint words per direction ("leftward" never appears in a "right"
# answer), so even a bag-of-words model can tell a wrong direction from a right one.
TOWARDS = {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward"}
EDGE = {"left": "left edge", "right": "right edge", "up": "top edge", "down": "bottom edge"}
MC_MOTION = {"left": "To the left", "right": "To the right", "up": "Upward", "down": "Downward"}
MC_EXTRA_SHAPE = "star"  # a fourth option for shape questions; never rendered


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def image_fields(s: ImageScene) -> dict[str, str]:
    """Format fields for image templates (singular/plural agree with the count)."""
    many = s.count > 1
    shapes = PLURALS[s.shape] if many else s.shape
    noun = (
        f"{NUMBER_WORDS[s.count]} {s.colour} {shapes}" if many else f"a single {s.colour} {s.shape}"
    )
    the_shapes = "the shapes" if many else "the shape"
    return {
        "n": str(s.count),
        "count_word": NUMBER_WORDS[s.count],
        "colour": s.colour,
        "Colour": _cap(s.colour),
        "shape": s.shape,
        "Shape": _cap(s.shape),
        "shape_plural": PLURALS[s.shape],
        "shapes": shapes,
        "shape_np": PLURALS[s.shape] if many else f"a {s.shape}",
        "noun_phrase": noun,
        "Noun_phrase": _cap(noun),
        "are": "are" if many else "is",
        "the_shapes": the_shapes,
        "The_shapes": _cap(the_shapes),
    }


def video_fields(s: VideoScene) -> dict[str, str]:
    """Format fields for video templates."""
    return {
        "colour": s.colour,
        "shape": s.shape,
        "towards": TOWARDS[s.motion],
        "edge": EDGE[s.motion],
    }


_IMAGE_CAPTION_QUESTIONS = (
    "Describe the image.",
    "What do you see in this picture?",
    "Write a short caption for this image.",
    "Please describe the contents of the image in detail.",
    "Can you tell me what this image depicts?",
)
_IMAGE_CAPTION_ANSWERS = (
    "The image shows {noun_phrase} on a light background.",
    "{Noun_phrase} {are} arranged on a plain, pale background.",
    "This picture contains {noun_phrase} and nothing else; the background is a light, even tone.",
    "There {are} {noun_phrase} in the image, set against a plain light backdrop.",
    "A simple graphic: {noun_phrase} on an off-white background.",
)

IMAGE_TEMPLATES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "caption": [(q, _IMAGE_CAPTION_ANSWERS) for q in _IMAGE_CAPTION_QUESTIONS],
    "instruct": [
        (
            "What colour are the shapes in this image?",
            (
                "{The_shapes} in this image {are} {colour}.",
                "Every shape in the picture is {colour}.",
                "The image shows {noun_phrase}, so the colour is {colour}.",
            ),
        ),
        (
            "Which colour is used for the objects in the picture?",
            (
                "Everything drawn on the light background is {colour}.",
                "The picture uses {colour} for {the_shapes}: {noun_phrase}.",
            ),
        ),
        (
            "What kind of shape appears in the image?",
            (
                "The image contains {shape_np}.",
                "{The_shapes} {are} {shape_np}, drawn in {colour}.",
                "You can see {noun_phrase}; the shape is a {shape}.",
            ),
        ),
        (
            "Which geometric shape is shown here?",
            (
                "The geometric shape shown is a {shape}.",
                "It is a {shape}; the image contains {noun_phrase}.",
            ),
        ),
        (
            "How many shapes are in the image?",
            (
                "There {are} {count_word} {shapes} in the image.",
                "I count {count_word} in total: {noun_phrase}.",
                "The image contains {count_word} {colour} {shapes}.",
            ),
        ),
        (
            "How many {shape_plural} can you see in the picture?",
            (
                "I can see {count_word} {shapes}.",
                "There {are} exactly {count_word}.",
            ),
        ),
    ],
    "vqa": [
        ("How many {shape_plural} are there? Answer with a number.", ("{n}",)),
        ("How many objects are in the image? Answer with a single number.", ("{n}",)),
        ("What colour are the shapes? Answer with one word.", ("{Colour}",)),
        ("What is the colour of the {shape_plural} in the image? Short answer.", ("{colour}",)),
        ("What shape is shown in the image? Answer with one word.", ("{Shape}",)),
        (
            "Which shape appears in the picture?\n"
            "Answer the question using a single word or phrase.",
            ("{shape}",),
        ),
        ("Describe the image in a few words.", ("{noun_phrase}",)),
    ],
}

_VIDEO_CAPTION_QUESTIONS = (
    "Describe what happens in the video.",
    "Provide a detailed description of the given video.",
    "What is shown in this clip? Describe it.",
    "Summarize the video in one or two sentences.",
)
_VIDEO_CAPTION_ANSWERS = (
    "A {colour} {shape} moves steadily {towards} across a plain light background.",
    "The video shows a single {colour} {shape} sliding {towards} at a constant speed; the light "
    "background never changes.",
    "Throughout the clip, one {colour} {shape} travels {towards} until it nearly reaches the "
    "{edge} of the frame.",
    "A plain, light scene in which a {colour} {shape} glides {towards}.",
)

VIDEO_TEMPLATES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "caption": [(q, _VIDEO_CAPTION_ANSWERS) for q in _VIDEO_CAPTION_QUESTIONS],
    "open_ended": [
        (
            "Which way does the {shape} move in the video?",
            (
                "The {shape} moves {towards}.",
                "It travels {towards}, ending near the {edge}.",
            ),
        ),
        (
            "In which direction is the {colour} object moving?",
            (
                "It is moving {towards}.",
                "The {colour} {shape} heads {towards}.",
            ),
        ),
        (
            "What colour is the moving shape?",
            (
                "The moving shape is {colour}.",
                "It is a {colour} {shape}.",
            ),
        ),
        (
            "What kind of object moves across the frame?",
            (
                "A {colour} {shape} moves across the frame.",
                "It is a {shape}.",
            ),
        ),
        (
            "What happens to the {shape} over the course of the video?",
            ("It moves steadily {towards} until it nears the {edge}.",),
        ),
    ],
}

MC_SUFFIX = "Answer with the option's letter from the given choices directly."
