"""Vocabulary for text-only samples and for off-topic answers.

Text samples imitate ALLaVA's Evol-Instruct subset: a question about a subject and an answer that
keeps using the subject's words and its topic's vocabulary. Variety comes from combining
topics x subjects x question templates x answer sentences, so a small reward model has to learn
"the answer is about what was asked" rather than memorise a handful of strings.

Off-topic answers come from domains whose words never occur in faithful image/video answers
(tests check this), so an off-topic answer is detectable from the text alone.
"""

from __future__ import annotations

# topic -> (subjects, terms). Subjects are unique across topics so a question maps to one topic.
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cooking": (
        (
            "braising short ribs",
            "making fresh pasta",
            "baking sourdough bread",
            "seasoning a cast iron skillet",
            "cooking risotto",
            "making a pan sauce",
        ),
        ("heat", "simmer", "salt", "knife", "stock", "oven", "ingredients", "flavour"),
    ),
    "gardening": (
        (
            "growing tomatoes",
            "pruning roses",
            "starting a compost heap",
            "planting bulbs",
            "caring for houseplants",
            "building a raised bed",
        ),
        ("soil", "watering", "seedlings", "mulch", "roots", "sunlight", "fertiliser", "pests"),
    ),
    "programming": (
        (
            "writing unit tests",
            "learning Python",
            "using version control with git",
            "debugging memory leaks",
            "designing a REST API",
            "refactoring legacy code",
        ),
        (
            "functions",
            "tests",
            "commits",
            "variables",
            "errors",
            "documentation",
            "code review",
            "the compiler",
        ),
    ),
    "astronomy": (
        (
            "observing Jupiter's moons",
            "choosing a first telescope",
            "photographing the Milky Way",
            "finding constellations",
            "watching a meteor shower",
            "understanding black holes",
        ),
        (
            "telescope",
            "planets",
            "orbit",
            "galaxies",
            "dark skies",
            "the night sky",
            "stars",
            "eyepiece",
        ),
    ),
    "music": (
        (
            "learning the guitar",
            "practising piano scales",
            "writing a song",
            "reading sheet music",
            "singing in a choir",
            "mixing a home recording",
        ),
        (
            "rhythm",
            "chords",
            "melody",
            "tempo",
            "practice sessions",
            "harmony",
            "metronome",
            "the instrument",
        ),
    ),
    "fitness": (
        (
            "training for a marathon",
            "starting strength training",
            "improving flexibility",
            "building a home workout routine",
            "recovering after exercise",
            "learning to swim",
        ),
        (
            "muscles",
            "warm-up",
            "endurance",
            "rest days",
            "stretching",
            "heart rate",
            "protein",
            "form",
        ),
    ),
    "history": (
        (
            "the fall of the Roman Empire",
            "the Industrial Revolution",
            "the Silk Road",
            "the printing press",
            "ancient Egyptian pyramids",
            "the Renaissance in Florence",
        ),
        (
            "empires",
            "trade",
            "centuries",
            "historians",
            "archives",
            "dynasties",
            "merchants",
            "primary sources",
        ),
    ),
    "travel": (
        (
            "backpacking through Japan",
            "planning a road trip",
            "travelling on a tight budget",
            "packing for a long flight",
            "visiting Lisbon",
            "booking hostels abroad",
        ),
        (
            "itinerary",
            "luggage",
            "passport",
            "local transport",
            "accommodation",
            "currency",
            "sightseeing",
            "train tickets",
        ),
    ),
    "photography": (
        (
            "shooting portraits",
            "understanding exposure",
            "photographing landscapes",
            "choosing a camera lens",
            "editing raw files",
            "street photography",
        ),
        (
            "aperture",
            "shutter speed",
            "composition",
            "lighting",
            "ISO",
            "the lens",
            "focus",
            "the sensor",
        ),
    ),
    "chess": (
        (
            "learning chess openings",
            "improving at endgames",
            "avoiding blunders in chess",
            "studying chess tactics",
            "playing blitz chess",
            "analysing your own chess games",
        ),
        ("pawns", "the king", "tactics", "openings", "knights", "rooks", "checkmate", "positions"),
    ),
    "woodworking": (
        (
            "building a bookshelf",
            "sharpening chisels",
            "finishing oak furniture",
            "cutting dovetail joints",
            "choosing hand planes",
            "setting up a small workshop",
        ),
        ("grain", "clamps", "sandpaper", "joinery", "hardwood", "glue", "the saw", "measurements"),
    ),
    "birdwatching": (
        (
            "identifying garden birds",
            "choosing binoculars",
            "recording bird songs",
            "attracting birds to a feeder",
            "spotting owls at dusk",
            "keeping a birding journal",
        ),
        (
            "binoculars",
            "feathers",
            "nests",
            "migration",
            "field guide",
            "habitat",
            "bird calls",
            "species",
        ),
    ),
}

# Off-topic domains. None of these words appear in faithful image/video answers; for text
# samples ``OFF_TOPIC_EXCLUDE`` removes the domains that would overlap the question's topic.
OFF_TOPIC: dict[str, tuple[str, ...]] = {
    "weather": (
        "Looks like tomorrow will be drizzly and cool, so bring an umbrella and a warm jacket.",
        "The forecast promises clear skies for the weekend with a gentle breeze from the coast.",
        "Humidity should climb this afternoon before thunderstorms roll in after sunset.",
        "Frost is expected overnight, so cover any delicate plants before bedtime.",
    ),
    "sports_scores": (
        "Last night the Riverton Hawks edged the Marlowe Giants 87 to 79 in overtime.",
        "The visitors cruised to a 5-0 victory after a hat trick from their striker.",
        "The champion saved match point and won the tiebreak 9-7 after a marathon rally.",
        "The Harbor City Comets have now won eleven straight games at home this season.",
    ),
    "recipes": (
        "Whisk the eggs with sugar until fluffy, fold in the flour, and bake for twenty minutes.",
        "For the marinade, combine soy sauce, garlic, ginger and honey, then chill overnight.",
        "Simmer the lentils with cumin and chopped onion until they turn creamy.",
        "Toss the salad with lemon juice, olive oil and a pinch of flaky sea salt.",
    ),
    "stock_prices": (
        "Shares of Northwind Logistics slipped 6 percent after the company trimmed its forecast.",
        "The index closed at a record high as investors cheered strong quarterly earnings.",
        "Bond yields rose sharply, dragging utility stocks lower for a third straight session.",
        "Analysts upgraded the chipmaker, citing robust demand and widening profit margins.",
    ),
    "traffic": (
        "Expect heavy congestion on the ring road this evening because of bridge repairs.",
        "A stalled lorry is blocking the northbound lane near exit 9, so allow extra minutes.",
        "Commuters should avoid the tunnel tonight while crews resurface the pavement.",
    ),
    "celebrity": (
        "The actor was spotted at a film festival premiere wearing a vintage tuxedo.",
        "Fans lined the street for hours hoping to catch an autograph from the pop star.",
        "The talk show host announced she is stepping away after a decade on air.",
    ),
}

OFF_TOPIC_EXCLUDE: dict[str, frozenset[str]] = {
    "cooking": frozenset({"recipes"}),
    "gardening": frozenset({"weather", "recipes"}),
    "fitness": frozenset({"sports_scores"}),
    "travel": frozenset({"weather", "traffic"}),
    "music": frozenset({"celebrity"}),
    "photography": frozenset({"celebrity"}),
}
