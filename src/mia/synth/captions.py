"""Writing CUHK-PEDES-like English captions for a synthetic identity.

Each caption is written independently: it mentions a random subset (at least three)
of the identity's attribute groups, in varied order, with varied templates and
synonyms, 1-3 sentences and roughly 15-45 words, sometimes with filler phrases and
occasionally (``FUZZY_P``) a neighbouring colour word instead of the true one.
Garments, bags and hair are written as colour + noun phrases ("a red short sleeved
t-shirt", "blue jeans", "a black backpack", "long brown hair") so that a noun-phrase
chunker finds them. A caption never mentions an attribute the identity lacks.
"""

from __future__ import annotations

import re

import numpy as np

from .attributes import FUZZY_NEIGHBOURS, HAIR_FUZZY, Attributes

FUZZY_P = 0.05
MIN_WORDS, MAX_WORDS = 15, 45

# Surface forms of canonical colours. Multi-word forms map back via COLOUR_SURFACES.
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black",), "white": ("white",), "grey": ("grey", "gray"), "blue": ("blue",),
    "navy": ("navy", "navy blue"), "red": ("red",), "green": ("green",),
    "yellow": ("yellow",), "pink": ("pink",), "purple": ("purple",), "orange": ("orange",),
    "brown": ("brown",), "beige": ("beige", "khaki", "tan"),
}
HAIR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark"), "brown": ("brown",), "blonde": ("blonde", "blond"),
    "grey": ("grey", "gray"), "white": ("white",),
}
COLOUR_SURFACES: dict[str, str] = {w: c for c, ws in COLOUR_WORDS.items() for w in ws}
HAIR_SURFACES: dict[str, str] = {w: c for c, ws in HAIR_WORDS.items() for w in ws}

SUBJECT_NOUNS = {
    "man": ("man", "guy", "gentleman", "male", "young man"),
    "woman": ("woman", "lady", "girl", "female", "young woman"),
}
NEUTRAL_NOUNS = ("person", "pedestrian")
PRONOUNS = {"man": ("he", "his"), "woman": ("she", "her")}

UPPER_NOUNS = {
    "t-shirt": ("t-shirt", "t-shirt", "tee", "tshirt"),
    "shirt": ("shirt", "shirt", "button-up shirt"),
    "blouse": ("blouse",), "jacket": ("jacket", "zip-up jacket"), "coat": ("coat", "overcoat"),
    "sweater": ("sweater", "jumper", "pullover"), "hoodie": ("hoodie", "hooded sweatshirt"),
    "dress": ("dress",),
}
LOWER_NOUNS = {"trousers": ("trousers", "pants", "slacks"), "jeans": ("jeans",),
               "shorts": ("shorts",), "skirt": ("skirt",)}
SHOE_NOUNS = {"sneakers": ("sneakers", "trainers", "running shoes", "tennis shoes"),
              "shoes": ("shoes", "leather shoes"), "boots": ("boots",),
              "sandals": ("sandals",)}
HAT_NOUNS = {"cap": ("cap", "baseball cap"), "hat": ("hat", "sun hat"),
             "beanie": ("beanie", "knit hat")}
CARRY_NOUNS = {"backpack": ("backpack", "rucksack"),
               "shoulder_bag": ("shoulder bag", "bag", "messenger bag"),
               "handbag": ("handbag", "bag", "purse")}
SLEEVE_WORDS = {"short": ("short sleeved", "short-sleeved", "short sleeve"),
                "long": ("long sleeved", "long-sleeved", "long sleeve")}
CHECK_WORDS = ("checked", "plaid", "checkered")
GLASSES_PHRASES = ("glasses", "eyeglasses", "a pair of glasses", "spectacles")
FILLERS = (
    "{P} appears to be walking.", "It looks like {p} is heading somewhere.",
    "{P} is walking down the street.", "{P} seems to be in a hurry.",
    "{P} is walking on the sidewalk.", "{P} appears to be looking down.",
    "{P} seems to be going somewhere.", "The picture is a little blurry.",
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (hyphenated words kept whole, punctuation dropped)."""
    return _TOKEN.findall(text.lower())


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(words: str) -> str:
    return ("an " if words[:1] in "aeiou" else "a ") + words


def colour_word(rng: np.random.Generator, colour: str, hair: bool = False) -> str:
    """Surface word for a colour, replaced by a neighbouring colour with ``FUZZY_P``."""
    fuzzy, words = (HAIR_FUZZY, HAIR_WORDS) if hair else (FUZZY_NEIGHBOURS, COLOUR_WORDS)
    if rng.random() < FUZZY_P:
        colour = _pick(rng, fuzzy[colour])
    return _pick(rng, words[colour])


# ----------------------------------------------------------------------------- phrases


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def hair_phrase(a: Attributes, rng: np.random.Generator) -> str:
    """'long brown hair', 'short hair', 'blonde hair'."""
    u = rng.random()
    length = a["hair_length"] if u < 0.75 else None
    colour = colour_word(rng, a["hair_colour"], hair=True) if u > 0.2 else None
    return _join(length, colour, "hair")


def upper_phrase(a: Attributes, rng: np.random.Generator) -> str:
    """'a red short sleeved t-shirt with a white logo', 'a blue plaid shirt'."""
    colour = colour_word(rng, a["upper_colour"]) if rng.random() > 0.05 else None
    sleeve = None
    if a["upper"] in ("t-shirt", "shirt", "blouse", "dress") and rng.random() < 0.5:
        sleeve = _pick(rng, SLEEVE_WORDS[a["sleeve"]])
    noun = _pick(rng, UPPER_NOUNS[a["upper"]])
    pre, post = None, None
    if a["pattern"] != "plain" and rng.random() < 0.75:
        pre, post = _pattern_words(a, rng)
    return _article(_join(colour, sleeve, pre, noun)) + (f" {post}" if post else "")


def _pattern_words(a: Attributes, rng: np.random.Generator) -> tuple[str | None, str | None]:
    """Pattern as an adjective before the noun or a 'with ...' phrase after it."""
    pc = colour_word(rng, a["pattern_colour"])
    if a["pattern"] == "striped":
        return ("striped", None) if rng.random() < 0.5 else (None, f"with {pc} stripes")
    if a["pattern"] == "checked":
        return _pick(rng, CHECK_WORDS), None
    post = _pick(rng, (f"with a {pc} logo on the front", f"with a {pc} print on it",
                       "with a logo on it", f"with a {pc} graphic"))
    return None, post


def lower_phrase(a: Attributes, rng: np.random.Generator) -> str:
    """'blue jeans', 'black trousers', 'a short grey skirt'."""
    colour = colour_word(rng, a["lower_colour"]) if rng.random() > 0.08 else None
    noun = _pick(rng, LOWER_NOUNS[a["lower"]])
    if a["lower"] == "skirt":
        length = None
        if rng.random() < 0.6:
            length = "long" if a["lower_length"] == "long" else _pick(rng, ("short", "mini"))
        return _article(_join(length, colour, noun))
    length = "long" if a["lower"] == "trousers" and rng.random() < 0.2 else None
    phrase = _join(length, colour, noun)
    return f"a pair of {phrase}" if rng.random() < 0.15 else phrase


def shoes_phrase(a: Attributes, rng: np.random.Generator) -> str:
    """'white sneakers', 'a pair of black boots'."""
    colour = colour_word(rng, a["shoes_colour"]) if rng.random() > 0.2 else None
    phrase = _join(colour, _pick(rng, SHOE_NOUNS[a["shoes"]]))
    return f"a pair of {phrase}" if rng.random() < 0.25 else phrase


def hat_phrase(a: Attributes, rng: np.random.Generator) -> str:
    colour = colour_word(rng, a["hat_colour"]) if rng.random() > 0.15 else None
    return _article(_join(colour, _pick(rng, HAT_NOUNS[a["hat"]])))


def scarf_phrase(a: Attributes, rng: np.random.Generator) -> str:
    phrase = _article(_join(colour_word(rng, a["accessory_colour"]), "scarf"))
    return phrase + (" around {p_poss} neck" if rng.random() < 0.3 else "")


def carry_phrase(a: Attributes, rng: np.random.Generator) -> str:
    """'a black backpack', 'a brown bag over her left shoulder', 'a red purse in her hand'."""
    colour = colour_word(rng, a["carry_colour"]) if rng.random() > 0.25 else None
    noun = _pick(rng, CARRY_NOUNS[a["carry"]])
    phrase = _article(_join(colour, noun))
    side = a["carry_side"] if rng.random() < 0.6 else None
    if a["carry"] == "backpack":
        return phrase + (" on {p_poss} back" if rng.random() < 0.3 else "")
    if a["carry"] == "shoulder_bag" and rng.random() < 0.7:
        place = _pick(rng, ("over", "on"))
        return phrase + f" {place} {{p_poss}} " + _join(side, "shoulder")
    if a["carry"] == "handbag" and rng.random() < 0.6:
        return phrase + " in {p_poss} " + _join(side, "hand")
    return phrase


def held_phrase(a: Attributes, rng: np.random.Generator) -> str:
    """Phone or umbrella, as the object of 'holding'."""
    if a["accessory"] == "phone":
        return _pick(rng, ("a phone", "a cell phone", "a mobile phone", "{p_poss} phone"))
    colour = colour_word(rng, a["accessory_colour"]) if rng.random() > 0.1 else None
    return _article(_join(colour, "umbrella"))


# ----------------------------------------------------------------------------- mentions

_MENTION_P = {"upper": 0.92, "lower": 0.8, "shoes": 0.55, "hair": 0.55, "hat": 0.75,
              "glasses": 0.5, "carry": 0.75, "accessory": 0.6}
_WEAR_ORDER = ("hat", "glasses", "scarf", "upper", "lower", "shoes")


def available_groups(a: Attributes) -> list[str]:
    """Attribute groups that the identity has and a caption may mention."""
    groups = ["hair", "upper", "shoes"]
    if a["lower"] is not None:
        groups.append("lower")
    if a["hat"] != "none":
        groups.append("hat")
    if a["glasses"]:
        groups.append("glasses")
    if a["carry"] != "none":
        groups.append("carry")
    if a["accessory"] != "none":
        groups.append("accessory")
    return groups


def choose_groups(a: Attributes, rng: np.random.Generator, minimum: int = 3) -> list[str]:
    """A random subset of the available groups, topped up to at least ``minimum``."""
    groups = available_groups(a)
    chosen = [g for g in groups if rng.random() < _MENTION_P[g]]
    rest = [g for g in groups if g not in chosen]
    rng.shuffle(rest)
    while len(chosen) < minimum and rest:
        chosen.append(rest.pop())
    return chosen


def _phrases(a: Attributes, groups: list[str], rng: np.random.Generator) -> dict:
    """Noun phrases per role: 'wear' list, 'hair', 'carry' list."""
    wear: dict[str, str] = {}
    carry: list[str] = []
    hair = hair_phrase(a, rng) if "hair" in groups else None
    builders = {"upper": upper_phrase, "lower": lower_phrase, "shoes": shoes_phrase,
                "hat": hat_phrase}
    for g in groups:
        if g in builders:
            wear[g] = builders[g](a, rng)
        elif g == "glasses":
            wear[g] = _pick(rng, GLASSES_PHRASES)
        elif g == "carry":
            carry.append(carry_phrase(a, rng))
        elif g == "accessory" and a["accessory"] == "scarf":
            wear["scarf"] = scarf_phrase(a, rng)
        elif g == "accessory":
            carry.append(held_phrase(a, rng))
    order = [k for k in _WEAR_ORDER if k in wear]
    if rng.random() < 0.3:
        rng.shuffle(order)
    return {"wear": [wear[k] for k in order], "hair": hair, "carry": carry,
            "glasses": "glasses" in wear}


# ----------------------------------------------------------------------------- sentences


def _list(items: list[str], rng: np.random.Generator) -> str:
    """'a, b and c' (sometimes with an Oxford comma, sometimes with 'with')."""
    if len(items) == 1:
        return items[0]
    if len(items) == 2 and rng.random() < 0.25:
        return f"{items[0]} with {items[1]}"
    sep = ", and " if rng.random() < 0.3 and len(items) > 2 else " and "
    return ", ".join(items[:-1]) + sep + items[-1]


def _subject(a: Attributes, rng: np.random.Generator) -> str:
    det = _pick(rng, ("A", "The", "This", "A", "The"))
    nouns = NEUTRAL_NOUNS if rng.random() < 0.1 else SUBJECT_NOUNS[a["gender"]]
    noun = _pick(rng, nouns)
    return _article(noun).capitalize() if det == "A" else f"{det} {noun}"


def _main_sentence(subj: str, ph: dict, rng: np.random.Generator) -> tuple[str, bool]:
    """The first sentence; returns it and whether it already used the hair phrase."""
    wear, hair = ph["wear"], ph["hair"]
    with_hair = f" with {hair}" if hair and rng.random() < 0.5 else ""
    if not wear:
        if hair and not with_hair:
            return f"{subj} has {hair}", True
        return f"{subj}{with_hair} is walking", bool(with_hair)
    items = _list(wear, rng)
    if hair and not with_hair and rng.random() < 0.5:
        verb = "wearing" if ph["glasses"] or rng.random() < 0.5 else "dressed in"
        return f"{subj} has {hair} and is {verb} {items}", True
    verbs = ("is wearing", "wearing", "wears", "has on", "who is wearing")
    if not ph["glasses"]:  # one is not 'dressed in glasses'
        verbs += ("is dressed in", "dressed in", "in")
    verb = _pick(rng, verbs)
    return f"{subj}{with_hair} {verb} {items}", bool(with_hair)


def _carry_part(ph: dict, rng: np.random.Generator) -> tuple[str, str]:
    """The carried items as a clause of the main sentence or a sentence of their own."""
    if not ph["carry"]:
        return "", ""
    items = _list(ph["carry"], rng)
    if rng.random() < 0.45:
        return f", {_pick(rng, ('carrying', 'holding', 'and carrying', 'with'))} {items}", ""
    verb = _pick(rng, ("is carrying", "has", "carries", "is holding"))
    return "", f"{{P}} {verb} {items}."


def compose_caption(a: Attributes, rng: np.random.Generator, groups: list[str],
                    fillers: int) -> str:
    """One caption from chosen groups plus ``fillers`` filler sentences."""
    ph = _phrases(a, groups, rng)
    main, used_hair = _main_sentence(_subject(a, rng), ph, rng)
    clause, carry_sentence = _carry_part(ph, rng)
    sentences = [main + clause + "."]
    if ph["hair"] and not used_hair:
        sentences.append(f"{{P}} has {ph['hair']}.")
    if carry_sentence:
        sentences.append(carry_sentence)
    pool = list(FILLERS)
    rng.shuffle(pool)
    sentences += pool[:fillers]
    order = sentences[1:]
    if rng.random() < 0.3:
        rng.shuffle(order)
    text = " ".join([sentences[0]] + order)
    subj, poss = PRONOUNS[a["gender"]]
    text = text.replace("{P}", subj.capitalize()).replace("{p}", subj).replace("{p_poss}", poss)
    return text.lower() if rng.random() < 0.1 else text


def write_caption(a: Attributes, rng: np.random.Generator) -> str:
    """A caption of roughly MIN_WORDS-MAX_WORDS words (redrawn or padded to fit)."""
    best, best_gap = "", None
    for _ in range(8):
        groups = choose_groups(a, rng)
        fillers = int(rng.random() < 0.3)
        text = compose_caption(a, rng, groups, fillers)
        while len(tokenize(text)) < MIN_WORDS and fillers < 3:
            fillers += 1
            text = compose_caption(a, rng, groups, fillers)
        n = len(tokenize(text))
        gap = max(MIN_WORDS - n, n - MAX_WORDS, 0)
        if gap == 0:
            return text
        if best_gap is None or gap < best_gap:
            best, best_gap = text, gap
    return best
