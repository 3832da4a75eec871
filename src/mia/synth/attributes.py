"""Attribute vocabulary of synthetic pedestrians and the sampling of identities.

An identity is a flat dict of categorical attributes (``ATTRIBUTE_KEYS``), laid out
from head to feet so that image stripes and caption noun phrases correspond:

- head: ``hair_colour``, ``hair_length``, ``hat`` (+ ``hat_colour``), ``glasses``
- upper body: ``upper`` garment type, ``upper_colour``, ``sleeve``, ``pattern``
  (+ ``pattern_colour``)
- lower body: ``lower`` garment type, ``lower_colour``, ``lower_length``
  (all ``None`` when the upper garment is a dress)
- feet: ``shoes``, ``shoes_colour``
- carried item: ``carry`` (+ ``carry_side``, ``carry_colour``)
- accessory: ``accessory`` (+ ``accessory_colour``)

Not-applicable values are ``None`` (e.g. ``hat_colour`` when ``hat == "none"``).

The fine-grained structure comes from ``sample_identities``: identities are grown in
clusters, each member derived from an earlier member by changing one or two
attributes, and every attribute set is unique.
"""

from __future__ import annotations

import numpy as np

# Canonical colours and their nominal RGB values.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (232, 232, 228),
    "grey": (128, 128, 130),
    "blue": (45, 85, 185),
    "navy": (28, 38, 88),
    "red": (195, 32, 38),
    "green": (45, 125, 60),
    "yellow": (232, 200, 45),
    "pink": (232, 140, 172),
    "purple": (112, 52, 140),
    "orange": (238, 128, 32),
    "brown": (108, 70, 42),
    "beige": (212, 192, 158),
}
HAIR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (22, 20, 20),
    "brown": (92, 60, 36),
    "blonde": (208, 176, 108),
    "grey": (158, 156, 152),
}
COLOURS = tuple(COLOUR_RGB)
HAIR_COLOURS = tuple(HAIR_RGB)

# Neighbouring colours a describer may confuse a colour with (used for fuzzy captions).
FUZZY_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "black": ("grey", "navy"),
    "white": ("grey", "beige"),
    "grey": ("white", "black"),
    "blue": ("navy", "purple"),
    "navy": ("black", "blue"),
    "red": ("pink", "orange"),
    "green": ("blue", "grey"),
    "yellow": ("orange", "beige"),
    "pink": ("red", "purple"),
    "purple": ("pink", "blue"),
    "orange": ("red", "yellow"),
    "brown": ("beige", "black"),
    "beige": ("white", "brown"),
}
HAIR_FUZZY: dict[str, tuple[str, ...]] = {
    "black": ("brown",),
    "brown": ("black", "blonde"),
    "blonde": ("brown",),
    "grey": ("white",),
}

ATTRIBUTE_KEYS: tuple[str, ...] = (
    "gender",
    "hair_colour",
    "hair_length",
    "hat",
    "hat_colour",
    "glasses",
    "upper",
    "upper_colour",
    "sleeve",
    "pattern",
    "pattern_colour",
    "lower",
    "lower_colour",
    "lower_length",
    "shoes",
    "shoes_colour",
    "carry",
    "carry_side",
    "carry_colour",
    "accessory",
    "accessory_colour",
)

UPPER_TYPES = ("t-shirt", "shirt", "blouse", "jacket", "coat", "sweater", "hoodie", "dress")
LOWER_TYPES = ("trousers", "jeans", "shorts", "skirt")
SHOE_TYPES = ("sneakers", "shoes", "boots", "sandals")
HAT_TYPES = ("none", "cap", "hat", "beanie")
CARRY_TYPES = ("none", "backpack", "shoulder_bag", "handbag")
ACCESSORY_TYPES = ("none", "phone", "umbrella", "scarf")
PATTERNS = ("plain", "striped", "checked", "logo")

# Categorical weights (not necessarily normalised).
_GENDER_W = {"man": 0.55, "woman": 0.45}
_UPPER_W = {
    "man": {"t-shirt": 30, "shirt": 20, "jacket": 20, "coat": 8, "sweater": 10, "hoodie": 12},
    "woman": {
        "t-shirt": 25, "shirt": 10, "blouse": 12, "jacket": 15,
        "coat": 10, "sweater": 8, "hoodie": 5, "dress": 15,
    },
}
_SHORT_SLEEVE_P = {"t-shirt": 0.9, "shirt": 0.45, "blouse": 0.6, "dress": 0.6}
_PATTERN_W = {
    "t-shirt": {"plain": 60, "striped": 12, "checked": 3, "logo": 25},
    "shirt": {"plain": 55, "striped": 20, "checked": 25},
    "blouse": {"plain": 70, "striped": 15, "checked": 5, "logo": 10},
    "jacket": {"plain": 85, "striped": 5, "checked": 5, "logo": 5},
    "coat": {"plain": 90, "checked": 10},
    "sweater": {"plain": 70, "striped": 20, "logo": 10},
    "hoodie": {"plain": 60, "striped": 5, "logo": 35},
    "dress": {"plain": 70, "striped": 15, "checked": 15},
}
_LOWER_W = {
    "man": {"trousers": 45, "jeans": 40, "shorts": 15},
    "woman": {"trousers": 30, "jeans": 30, "shorts": 12, "skirt": 28},
}
_SHOES_W = {
    "man": {"sneakers": 50, "shoes": 30, "boots": 12, "sandals": 8},
    "woman": {"sneakers": 40, "shoes": 25, "boots": 20, "sandals": 15},
}
_HAIR_LEN_W = {"man": {"short": 92, "long": 8}, "woman": {"short": 20, "long": 80}}
_HAIR_COLOUR_W = {"black": 60, "brown": 25, "blonde": 10, "grey": 5}
_HAT_W = {"none": 82, "cap": 8, "hat": 5, "beanie": 5}
_CARRY_W = {
    "man": {"none": 38, "backpack": 34, "shoulder_bag": 20, "handbag": 8},
    "woman": {"none": 30, "backpack": 25, "shoulder_bag": 25, "handbag": 20},
}
_ACCESSORY_W = {"none": 65, "phone": 12, "umbrella": 10, "scarf": 13}
_GLASSES_P = 0.15

# Colour distributions per slot: skewed towards black, white, grey and blue.
_COLOUR_W = {
    "upper": {
        "black": 24, "white": 14, "grey": 11, "blue": 10, "navy": 6, "red": 7, "green": 5,
        "yellow": 4, "pink": 5, "purple": 3, "orange": 2, "brown": 4, "beige": 5,
    },
    "lower": {
        "black": 35, "grey": 15, "blue": 10, "navy": 6, "white": 6, "brown": 6, "beige": 9,
        "green": 3, "red": 3, "pink": 3, "purple": 2, "yellow": 1, "orange": 1,
    },
    "jeans": {"blue": 60, "black": 20, "navy": 10, "grey": 7, "white": 3},
    "shoes": {
        "black": 40, "white": 30, "grey": 8, "brown": 10, "blue": 4, "red": 3, "pink": 2,
        "beige": 3,
    },
    "carry": {
        "black": 45, "grey": 8, "brown": 12, "blue": 8, "red": 7, "white": 5, "pink": 5,
        "navy": 4, "green": 3, "beige": 3,
    },
    "hat": {"black": 35, "white": 20, "grey": 10, "blue": 10, "red": 8, "navy": 7, "beige": 5,
            "pink": 5},
    "accessory": {
        "black": 35, "blue": 12, "red": 10, "pink": 8, "white": 8, "navy": 6, "green": 6,
        "purple": 5, "yellow": 5, "grey": 5,
    },
}
_GENDER_COLOUR_BIAS = {
    "woman": {"pink": 3.0, "purple": 2.0, "red": 1.5, "white": 1.3},
    "man": {"pink": 0.3, "purple": 0.5, "navy": 1.3},
}

# Mutation operators used to derive a cluster member from its parent, with weights.
# Colour changes dominate: they are the hardest fine-grained differences.
_MUTATIONS = {
    "upper_colour": 16, "lower_colour": 12, "shoes_colour": 8, "carry_colour": 6,
    "pattern": 6, "upper": 6, "sleeve": 4, "lower": 6, "shoes": 5, "carry": 7,
    "carry_side": 3, "hair_colour": 4, "hair_length": 3, "hat": 4, "glasses": 3,
    "accessory": 5, "gender": 2,
}

Attributes = dict[str, object]


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """Draw one key of ``weights`` with probability proportional to its weight."""
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_colour(rng: np.random.Generator, slot: str, gender: str,
                  exclude: tuple[str, ...] = ()) -> str:
    """Draw a colour for ``slot`` from its skewed, gender-biased distribution."""
    bias = _GENDER_COLOUR_BIAS.get(gender, {})
    w = {c: v * bias.get(c, 1.0) for c, v in _COLOUR_W[slot].items() if c not in exclude}
    return _choice(rng, w)


def _contrast_colour(rng: np.random.Generator, base: str, gender: str) -> str:
    """A pattern colour that contrasts with ``base`` (stripes, checks, logos)."""
    if base in ("black", "navy", "brown", "purple", "green", "blue", "red") and rng.random() < 0.6:
        return "white"
    if base in ("white", "beige", "yellow", "pink", "grey") and rng.random() < 0.6:
        return "black"
    return sample_colour(rng, "upper", gender, exclude=(base,))


def sample_attributes(rng: np.random.Generator) -> Attributes:
    """Draw one identity's attributes from the marginal (prototype) distribution."""
    gender = _choice(rng, _GENDER_W)
    attrs: Attributes = {k: None for k in ATTRIBUTE_KEYS}
    attrs.update(
        gender=gender,
        hair_colour=_choice(rng, _HAIR_COLOUR_W),
        hair_length=_choice(rng, _HAIR_LEN_W[gender]),
        hat=_choice(rng, _HAT_W),
        glasses=bool(rng.random() < _GLASSES_P),
        upper=_choice(rng, _UPPER_W[gender]),
        carry=_choice(rng, _CARRY_W[gender]),
        accessory=_choice(rng, _ACCESSORY_W),
        shoes=_choice(rng, _SHOES_W[gender]),
    )
    return repair(attrs, rng)


def repair(attrs: Attributes, rng: np.random.Generator) -> Attributes:
    """Make dependent attributes consistent, drawing the missing ones.

    Called after sampling and after every mutation: it fills colours that became
    applicable, clears those that no longer are, and enforces gender plausibility
    (no dresses or skirts for men).
    """
    a = dict(attrs)
    g = a["gender"]
    if a["upper"] not in _UPPER_W[g]:
        a["upper"] = _choice(rng, _UPPER_W[g])
    _repair_head(a, rng)
    _repair_upper(a, rng)
    _repair_lower(a, rng)
    if a["shoes_colour"] is None:
        a["shoes_colour"] = sample_colour(rng, "shoes", g)
    _repair_carry(a, rng)
    _repair_accessory(a, rng)
    return a


def _repair_head(a: Attributes, rng: np.random.Generator) -> None:
    """Hat colour exists iff there is a hat."""
    if a["hat"] == "none":
        a["hat_colour"] = None
    elif a["hat_colour"] is None:
        a["hat_colour"] = sample_colour(rng, "hat", a["gender"])


def _repair_upper(a: Attributes, rng: np.random.Generator) -> None:
    """Sleeve length and pattern must suit the garment type."""
    kind, g = a["upper"], a["gender"]
    if a["upper_colour"] is None:
        a["upper_colour"] = sample_colour(rng, "upper", g)
    if kind not in _SHORT_SLEEVE_P:
        a["sleeve"] = "long"
    elif a["sleeve"] is None:
        a["sleeve"] = "short" if rng.random() < _SHORT_SLEEVE_P[kind] else "long"
    if a["pattern"] not in _PATTERN_W[kind]:
        a["pattern"] = _choice(rng, _PATTERN_W[kind])
    if a["pattern"] == "plain":
        a["pattern_colour"] = None
    elif a["pattern_colour"] is None or a["pattern_colour"] == a["upper_colour"]:
        a["pattern_colour"] = _contrast_colour(rng, a["upper_colour"], g)


def _repair_lower(a: Attributes, rng: np.random.Generator) -> None:
    """No lower garment under a dress; otherwise type, colour and length agree."""
    g = a["gender"]
    if a["upper"] == "dress":
        a["lower"] = a["lower_colour"] = a["lower_length"] = None
        return
    if a["lower"] not in _LOWER_W[g]:
        a["lower"] = _choice(rng, _LOWER_W[g])
    if a["lower_colour"] is None:
        slot = "jeans" if a["lower"] == "jeans" else "lower"
        a["lower_colour"] = sample_colour(rng, slot, g)
    if a["lower"] == "skirt":
        if a["lower_length"] not in ("short", "long"):
            a["lower_length"] = "short" if rng.random() < 0.55 else "long"
    else:
        a["lower_length"] = "short" if a["lower"] == "shorts" else "long"


def _repair_carry(a: Attributes, rng: np.random.Generator) -> None:
    """Carried items have a colour; bags worn on one side have a side."""
    if a["carry"] == "none":
        a["carry_side"] = a["carry_colour"] = None
        return
    if a["carry_colour"] is None:
        a["carry_colour"] = sample_colour(rng, "carry", a["gender"])
    if a["carry"] == "backpack":
        a["carry_side"] = None
    elif a["carry_side"] is None:
        a["carry_side"] = "left" if rng.random() < 0.5 else "right"


def _repair_accessory(a: Attributes, rng: np.random.Generator) -> None:
    """Umbrellas and scarves have a colour; a phone has none."""
    if a["accessory"] in ("none", "phone"):
        a["accessory_colour"] = None
    elif a["accessory_colour"] is None:
        a["accessory_colour"] = sample_colour(rng, "accessory", a["gender"])


def signature(attrs: Attributes) -> tuple:
    """Hashable full attribute set; two identities must never share one."""
    return tuple(attrs[k] for k in ATTRIBUTE_KEYS)


def attribute_distance(a: Attributes, b: Attributes) -> int:
    """Number of attribute keys on which two identities differ."""
    return sum(a[k] != b[k] for k in ATTRIBUTE_KEYS)


def mutate(attrs: Attributes, rng: np.random.Generator, n_changes: int = 1) -> Attributes:
    """Derive a look-alike: change ``n_changes`` attributes, then repair dependents."""
    a = dict(attrs)
    ops = rng.choice(list(_MUTATIONS), size=n_changes, replace=False,
                     p=_normalised(list(_MUTATIONS.values())))
    for op in ops:
        _apply_mutation(a, str(op), rng)
    return repair(a, rng)


def _normalised(values: list[float]) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64)
    return p / p.sum()


def _apply_mutation(a: Attributes, op: str, rng: np.random.Generator) -> None:
    """Change attribute ``op`` to a different value (dependents are cleared)."""
    g = a["gender"]
    if op.endswith("_colour"):
        slot = {"upper_colour": "upper", "shoes_colour": "shoes", "carry_colour": "carry"}
        if op == "hair_colour":
            a[op] = _choice(rng, {c: w for c, w in _HAIR_COLOUR_W.items() if c != a[op]})
        elif op == "lower_colour":
            if a["lower"] is not None:
                kind = "jeans" if a["lower"] == "jeans" else "lower"
                a[op] = sample_colour(rng, kind, g, exclude=(a[op],))
        elif op == "carry_colour" and a["carry"] == "none":
            a["carry"] = "backpack"
        else:
            a[op] = sample_colour(rng, slot[op], g, exclude=(a[op],))
        return
    if op == "glasses":
        a["glasses"] = not a["glasses"]
    elif op == "gender":
        a["gender"] = "woman" if g == "man" else "man"
        if rng.random() < 0.7:
            a["hair_length"] = _choice(rng, _HAIR_LEN_W[a["gender"]])
    elif op in ("sleeve", "hair_length", "carry_side"):
        flip = {"short": "long", "long": "short", "left": "right", "right": "left"}
        if a[op] is not None:
            a[op] = flip[a[op]]
    else:
        _resample_type(a, op, rng)


def _resample_type(a: Attributes, op: str, rng: np.random.Generator) -> None:
    """Replace a categorical type attribute by a different one, clearing dependents."""
    g = a["gender"]
    table = {
        "upper": _UPPER_W[g], "lower": _LOWER_W[g], "shoes": _SHOES_W[g],
        "carry": _CARRY_W[g], "hat": _HAT_W, "accessory": _ACCESSORY_W,
        "pattern": _PATTERN_W[a["upper"]],
    }[op]
    options = {k: w for k, w in table.items() if k != a[op]}
    if not options:
        return
    a[op] = _choice(rng, options)
    if op == "upper":
        a["sleeve"] = None
    elif op == "pattern":
        a["pattern_colour"] = None
    elif op == "lower":
        a["lower_colour"] = a["lower_length"] = None
    elif op == "carry":
        a["carry_side"] = None if a["carry"] == "backpack" else a["carry_side"]


def sample_identities(n: int, rng: np.random.Generator, taken: set[tuple] | None = None,
                      cluster_size: tuple[int, int] = (2, 8)) -> list[tuple[Attributes, int]]:
    """Draw ``n`` unique identities grown in look-alike clusters.

    Each cluster starts from a prototype drawn from the marginals; every further
    member copies a random earlier member and changes one (70%) or two attributes.
    Returns ``(attributes, cluster_index)`` pairs. ``taken`` holds signatures that
    must not be reused (it is updated in place, so several calls stay unique).
    """
    taken = set() if taken is None else taken
    out: list[tuple[Attributes, int]] = []
    cluster = 0
    while len(out) < n:
        size = min(int(rng.integers(cluster_size[0], cluster_size[1] + 1)), n - len(out))
        members = [_unique(lambda: sample_attributes(rng), rng, taken)]
        while len(members) < size:
            parent = members[int(rng.integers(len(members)))]
            n_changes = 1 if rng.random() < 0.7 else 2
            members.append(_unique(lambda p=parent, k=n_changes: mutate(p, rng, k), rng, taken))
        out.extend((m, cluster) for m in members)
        cluster += 1
    return out


def _unique(draw, rng: np.random.Generator, taken: set[tuple], max_tries: int = 50) -> Attributes:
    """Call ``draw`` until it returns an attribute set not in ``taken``; record it.

    Falls back to fresh prototypes when ``draw`` keeps colliding (a crowded cluster).
    """
    for attempt in range(max_tries * 4):
        attrs = draw() if attempt < max_tries else sample_attributes(rng)
        sig = signature(attrs)
        if sig not in taken:
            taken.add(sig)
            return attrs
    raise RuntimeError("could not draw a unique identity; the attribute space is exhausted")
