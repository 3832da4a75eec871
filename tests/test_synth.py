"""Behaviour of the synthetic CUHK-PEDES-format generator (mia.synth)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mia.synth.attributes import (
    ATTRIBUTE_KEYS,
    COLOUR_RGB,
    FUZZY_NEIGHBOURS,
    HAIR_FUZZY,
    attribute_distance,
    repair,
    sample_attributes,
    signature,
)
from mia.synth.captions import (
    CARRY_NOUNS,
    COLOUR_SURFACES,
    HAIR_SURFACES,
    HAT_NOUNS,
    LOWER_NOUNS,
    SHOE_NOUNS,
    UPPER_NOUNS,
)
from mia.synth.generate import build_identities, generate_dataset
from mia.synth.render import SOURCES, camera_scene, render_image, sample_appearance

H, W = 96, 32
N_IDS = 40
FIELDS = {"split", "captions", "file_path", "processed_tokens", "id"}
FILE_RE = re.compile(r"^(CUHK01|CUHK03|Market|test_query|VIPER)/(\d{5})_c(\d+)_(\d+)\.jpg$")


def _gen(out: Path, **kw) -> dict:
    args = {"n_ids": N_IDS, "seed": 0, "height": H, "width": W} | kw
    return generate_dataset(out, **args)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = _gen(out)
    entries = json.loads((out / "reid_raw.json").read_text())
    meta = json.loads((out / "synth_meta.json").read_text())
    ids = {m["id"]: m for m in meta["identities"]}
    return out, summary, entries, ids


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


# ----------------------------------------------------------------------------- format


def test_entries_have_cuhk_pedes_fields_and_files_open_at_requested_size(dataset):
    out, summary, entries, ids = dataset
    assert isinstance(entries, list) and len(entries) == summary["images"] > 0
    for e in entries:
        assert set(e) == FIELDS
        assert e["split"] in ("train", "val", "test")
        assert isinstance(e["id"], int) and e["id"] >= 1
        assert len(e["captions"]) == 2 and all(isinstance(c, str) and c for c in e["captions"])
        m = FILE_RE.match(e["file_path"])
        assert m, e["file_path"]
        assert int(m.group(2)) == e["id"] and m.group(1) == ids[e["id"]]["source"]
        assert int(m.group(3)) == ids[e["id"]]["cameras"][int(m.group(4))]
        with Image.open(out / "imgs" / e["file_path"]) as im:
            assert im.format == "JPEG" and im.size == (W, H) and im.mode == "RGB"
    assert sorted({e["id"] for e in entries}) == list(range(1, N_IDS + 1))


def test_processed_tokens_are_the_lowercased_words_of_each_caption(dataset):
    for e in dataset[2]:
        assert len(e["processed_tokens"]) == len(e["captions"])
        for cap, toks in zip(e["captions"], e["processed_tokens"]):
            expected = re.sub(r"[^a-z0-9'\- ]", " ", cap.lower()).split()
            assert toks == [t.strip("-'") for t in expected if t.strip("-'")]
            assert all(t == t.lower() for t in toks)


def test_images_per_id_and_summary_counts(dataset):
    _, summary, entries, ids = dataset
    per_id: dict[int, int] = {}
    for e in entries:
        per_id[e["id"]] = per_id.get(e["id"], 0) + 1
    assert all(2 <= n <= 5 for n in per_id.values())
    assert len(set(per_id.values())) > 1  # uniform in the range, not constant
    assert summary["ids"] == N_IDS and summary["captions"] == 2 * len(entries)
    assert sum(s["images"] for s in summary["splits"].values()) == len(entries)
    assert summary["images_per_second"] > 0
    for m in ids.values():
        assert m["source"] in SOURCES and len(m["cameras"]) == per_id[m["id"]]
        if len(m["cameras"]) >= 2:
            assert len(set(m["cameras"])) >= 2  # seen by more than one camera


def test_no_temporary_files_left_behind(dataset):
    out = dataset[0]
    assert sorted(p.name for p in out.iterdir()) == ["imgs", "reid_raw.json", "synth_meta.json"]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_outputs_and_other_seed_differs(dataset, tmp_path):
    out = dataset[0]
    _gen(tmp_path / "again")
    assert (tmp_path / "again/reid_raw.json").read_bytes() == (out / "reid_raw.json").read_bytes()
    assert (tmp_path / "again/synth_meta.json").read_bytes() == (
        out / "synth_meta.json").read_bytes()
    assert _files(tmp_path / "again/imgs") == _files(out / "imgs")
    _gen(tmp_path / "other", seed=1)
    assert (tmp_path / "other/reid_raw.json").read_bytes() != (out / "reid_raw.json").read_bytes()


def test_two_workers_give_the_same_output_as_one(dataset, tmp_path):
    out = dataset[0]
    _gen(tmp_path / "w2", workers=2)
    assert (tmp_path / "w2/reid_raw.json").read_bytes() == (out / "reid_raw.json").read_bytes()
    assert _files(tmp_path / "w2/imgs") == _files(out / "imgs")


# ----------------------------------------------------------------------------- splits


def test_splits_are_disjoint_by_identity_and_val_test_nonempty(dataset):
    entries = dataset[2]
    split_of: dict[int, set] = {}
    for e in entries:
        split_of.setdefault(e["id"], set()).add(e["split"])
    assert all(len(s) == 1 for s in split_of.values())
    counts = {s: sum(1 for v in split_of.values() if s in v) for s in ("train", "val", "test")}
    assert counts == {"train": 28, "val": 6, "test": 6}


def test_three_ids_give_one_id_per_split(tmp_path):
    summary = _gen(tmp_path, n_ids=3, images_per_id=(1, 1))
    assert {s: v["ids"] for s, v in summary["splits"].items()} == {"train": 1, "val": 1, "test": 1}


# ----------------------------------------------------------------------------- identities


def test_attribute_sets_are_unique_and_mostly_have_a_close_lookalike():
    idents = build_identities(300, 5, (2, 5), (0.7, 0.15, 0.15))
    attrs = [i["attributes"] for i in idents]
    assert all(set(a) == set(ATTRIBUTE_KEYS) for a in attrs)
    assert len({signature(a) for a in attrs}) == len(attrs)
    near = 0
    for i, a in enumerate(attrs):
        same_split = [b for j, b in enumerate(attrs) if j != i
                      and idents[j]["split"] == idents[i]["split"]]
        near += min(attribute_distance(a, b) for b in same_split) <= 2
    assert near / len(attrs) >= 0.7


def test_attributes_are_plausible_and_colours_skewed():
    rng = np.random.default_rng(0)
    attrs = [sample_attributes(rng) for _ in range(2000)]
    for a in attrs:
        assert repair(a, np.random.default_rng(1)) == a  # already consistent
        if a["gender"] == "man":
            assert a["upper"] != "dress" and a["lower"] != "skirt"
        assert (a["lower"] is None) == (a["upper"] == "dress")
        assert (a["hat_colour"] is None) == (a["hat"] == "none")
        assert (a["carry_side"] is None) == (a["carry"] in ("none", "backpack"))
    uppers = [a["upper_colour"] for a in attrs]
    common = sum(c in ("black", "white", "grey", "blue", "navy") for c in uppers) / len(uppers)
    assert common > 0.5 and uppers.count("black") > 3 * uppers.count("orange")


# ----------------------------------------------------------------------------- captions

_SLOT_OF, _TYPE_OF = {}, {}
for _slot, _key, _vocab in (("upper", "upper", UPPER_NOUNS), ("lower", "lower", LOWER_NOUNS),
                            ("shoes", "shoes", SHOE_NOUNS), ("hat", "hat", HAT_NOUNS),
                            ("carry", "carry", CARRY_NOUNS)):
    for _type, _phrases in _vocab.items():
        for _p in _phrases:
            _SLOT_OF[_p.split()[-1]] = _slot
            _TYPE_OF.setdefault((_key, _p.split()[-1]), set()).add(_type)
_SLOT_OF.update(hair="hair", umbrella="accessory", scarf="accessory")
_COLOUR_KEY = {s: f"{s}_colour" for s in ("upper", "lower", "shoes", "hat", "carry", "hair",
                                          "accessory")}
_STOP = {"a", "an", "the", "and", "with", "in", "his", "her", "on", "over", "is", "has", "of",
         ",", "."}
_MAN = {"man", "guy", "gentleman", "male", "he", "his", "him"}
_WOMAN = {"woman", "lady", "girl", "female", "she", "her"}


def _colour_mentions(caption: str) -> list[tuple[str, str]]:
    """(slot, canonical colour) for every colour word directly modifying a slot noun."""
    text = caption.lower().replace("navy blue", "navy")
    toks = text.replace(".", " . ").replace(",", " , ").split()
    found = []
    for i, t in enumerate(toks):
        slot = _SLOT_OF.get(t)
        if slot is None:
            continue
        surfaces = HAIR_SURFACES if slot == "hair" else COLOUR_SURFACES
        for j in range(i - 1, max(i - 5, -1), -1):
            if toks[j] in surfaces:
                found.append((slot, surfaces[toks[j]]))
                break
            if toks[j] in _STOP or toks[j] in _SLOT_OF:
                break
    return found


def _groups(tokens: list[str]) -> set[str]:
    g = {_SLOT_OF[t] for t in tokens if t in _SLOT_OF and t != "umbrella" and t != "scarf"}
    if {"glasses", "eyeglasses", "spectacles"} & set(tokens):
        g.add("glasses")
    if {"umbrella", "scarf", "phone"} & set(tokens):
        g.add("accessory")
    return g


def test_captions_mention_only_attributes_the_identity_has(dataset):
    _, _, entries, ids = dataset
    n_mentions = n_fuzzy = 0
    for e in entries:
        a = ids[e["id"]]["attributes"]
        for cap, toks in zip(e["captions"], e["processed_tokens"]):
            assert not set(toks) & (_WOMAN if a["gender"] == "man" else _MAN), cap
            for (key, noun), types in _TYPE_OF.items():
                if noun in toks:
                    assert a[key] in types, (cap, key, a[key])
            if {"cap", "beanie", "hat"} & set(toks):
                assert a["hat"] != "none", cap
            if {"glasses", "eyeglasses", "spectacles"} & set(toks):
                assert a["glasses"], cap
            for word in ("umbrella", "scarf", "phone"):
                if word in toks:
                    assert a["accessory"] == word, cap
            if "bag" in toks or "handbag" in toks or "purse" in toks:
                assert a["carry"] in ("shoulder_bag", "handbag"), cap
            assert len(_groups(toks)) >= 3, cap
            for slot, colour in _colour_mentions(cap):
                true = a[_COLOUR_KEY[slot]]
                fuzzy = HAIR_FUZZY if slot == "hair" else FUZZY_NEIGHBOURS
                assert colour == true or colour in fuzzy[true], (cap, slot, true)
                n_mentions += 1
                n_fuzzy += colour != true
    assert n_mentions > 300
    assert 0.005 < n_fuzzy / n_mentions < 0.12


def test_captions_are_varied_and_cuhk_like_in_length(dataset):
    entries = dataset[2]
    caps = [c for e in entries for c in e["captions"]]
    lengths = np.array([len(t) for e in entries for t in e["processed_tokens"]])
    assert lengths.min() >= 10 and lengths.max() <= 60
    assert np.mean((lengths >= 15) & (lengths <= 45)) > 0.9
    assert len(set(caps)) >= 0.97 * len(caps)  # written independently
    first_words = {c.split()[0].lower() for c in caps}
    assert {"a", "the", "this"} <= first_words
    joined = " ".join(caps).lower()
    for synonyms in (("trousers", "pants"), ("grey", "gray"), ("wearing", "dressed in")):
        assert all(s in joined for s in synonyms), synonyms


# ----------------------------------------------------------------------------- rendering


def _region_means(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of the upper-body band and the lower-body band (central columns)."""
    x = np.asarray(img, np.float64)
    h, w = x.shape[:2]
    cols = slice(int(0.3 * w), int(0.7 * w))
    upper = x[int(0.27 * h):int(0.45 * h), cols].reshape(-1, 3).mean(0)
    lower = x[int(0.62 * h):int(0.82 * h), cols].reshape(-1, 3).mean(0)
    return upper, lower


def _dist(a, name: str) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(COLOUR_RGB[name])))


def test_upper_and_lower_colours_land_in_their_body_regions():
    rng = np.random.default_rng(3)
    a = sample_attributes(rng)
    a.update(upper="t-shirt", upper_colour="red", pattern="plain", pattern_colour=None,
             lower="trousers", lower_colour="blue", lower_length="long", carry="none",
             accessory="none", hat="none", hat_colour=None)
    a = repair(a, rng)
    app = sample_appearance(a, rng)
    wins_red = wins_blue = 0
    n = 24
    for k in range(n):
        scene = camera_scene(0, SOURCES[k % 5], k % 3 + 1)
        img = render_image(a, app, scene, 192, 64, np.random.default_rng([9, k]), occlusion_p=0)
        assert img.size == (64, 192)
        upper, lower = _region_means(img)
        wins_red += _dist(upper, "red") < _dist(lower, "red")
        wins_blue += _dist(lower, "blue") < _dist(upper, "blue")
    assert wins_red >= 0.9 * n and wins_blue >= 0.9 * n


def test_generated_images_place_garment_colours_top_to_bottom(dataset):
    out, _, entries, ids = dataset
    correct = total = 0
    for e in entries:
        a = ids[e["id"]]["attributes"]
        if a["lower_colour"] is None or a["upper"] == "coat":
            continue
        if _dist(COLOUR_RGB[a["upper_colour"]], a["lower_colour"]) < 150:
            continue
        with Image.open(out / "imgs" / e["file_path"]) as im:
            upper, lower = _region_means(im.convert("RGB"))
        right = _dist(upper, a["upper_colour"]) + _dist(lower, a["lower_colour"])
        swapped = _dist(upper, a["lower_colour"]) + _dist(lower, a["upper_colour"])
        correct += right < swapped
        total += 1
    assert total >= 20 and correct / total >= 0.8


@pytest.mark.parametrize("size", [(96, 32), (128, 48), (384, 128)])
def test_renders_at_any_requested_size(size):
    rng = np.random.default_rng(0)
    a = sample_attributes(rng)
    img = render_image(a, sample_appearance(a, rng), camera_scene(0, "Market", 1), *size, rng)
    assert img.size == (size[1], size[0]) and img.mode == "RGB"
    assert np.asarray(img).std() > 10  # not a flat image


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("kw, word", [
    ({"n_ids": 2}, "n_ids"), ({"n_ids": 0}, "n_ids"), ({"n_ids": 5.0}, "n_ids"),
    ({"seed": -1}, "seed"), ({"height": 8}, "height"), ({"width": 4}, "width"),
    ({"images_per_id": (3, 2)}, "images_per_id"), ({"images_per_id": (0, 2)}, "images_per_id"),
    ({"captions_per_image": 0}, "captions_per_image"),
    ({"split_fractions": (0.5, 0.5, 0.5)}, "split_fractions"),
    ({"split_fractions": (1.0, 0.0, 0.0)}, "split_fractions"), ({"workers": 0}, "workers"),
    ({"images_per_id": 3}, "images_per_id"), ({"split_fractions": 0.7}, "split_fractions"),
])
def test_bad_arguments_raise_a_clear_value_error(tmp_path, kw, word):
    with pytest.raises(ValueError, match=word):
        _gen(tmp_path / "bad", **kw)
    assert not (tmp_path / "bad").exists()
