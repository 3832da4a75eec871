"""Build the real-photo sets of docs/EXPERIMENTS.md, cuhk-dev and cuhk-weak, from local git
copies of three public repositories, checking what it reads.

    python benchmarks/build_cuhk_sets.py --person-reid GIT --textreidnet GIT \\
        [--dem GIT] --out /data [--sets dev weak] [--distractor-ids 800]

Sources (each a local git directory; a bare mirror is enough), read at fixed commits:

- giaabaoo/person-reid @ 04fe2d85948a: every CUHK-PEDES image (``datasets/CUHK-PEDES/imgs``),
  the official val annotations (``annotations/val.json``: 1,000 people, 3,078 images,
  real captions) and, in ``inference_utils/train.txt``, the official TRAIN split's 34,054
  image paths. A training person's identity is in the file name (CUHK01: the first 4
  digits; CUHK03, Market: the prefix before '_'; SSM train_query/test_query: 'pNNNN';
  VIPeR cam_a/cam_b: the number before '_'); in order of first appearance they are
  numbered 0..11002, exactly the split's 11,003 people.
- rocksyne/TextReIDNet @ 846249e166f6: ``datasets/paraphrased_captions.json``, one machine
  paraphrase of one real caption per training person, keyed 0..11002 (a "weak" caption).
- optional, Annoonnymous/DEM @ 32bdbdf656fc: ``data/cuhk_train.json``, the real captions of
  training people 0..479 (lower-cased, punctuation removed), keyed by image_id = number + 1.

Sets written under ``--out`` (each ``reid_raw.json`` + ``imgs/`` + ``build.json``, the
sources and what was counted):

- ``cuhk-dev``: the official val people only, with their real captions: the 800 with the
  lowest ids are ``train``, the last 200 ``val`` (1,230 queries x 614 images).
- ``cuhk-weak`` (``cuhk-weak-real`` with ``--dem``): ``train`` = the training people with
  their weak caption (with ``--dem``: people 0..479 with their real captions) + cuhk-dev's
  800 train people; ``val`` = cuhk-dev's val; ``distractors`` = ``--distractor-ids``
  training people (default 800, drawn with a fixed seed from people 480..11002, so no
  real-caption person is lost) held out of train. ``val`` + ``distractors`` is **val-1k**:
  1,000 people and about 3,100 images queried by the 200 val people's 1,230 real
  captions, a gallery of the test split's size (``mia evaluate --split val --distractors
  distractors``; ``eval.distractors`` in a recipe). ``--distractor-ids 0`` gives the
  earlier cuhk-weak (all 11,003 people in train, no distractors).

The official TEST split is never read. The dataset's terms forbid redistribution: ``--out``
must be outside this repository (the script refuses a path inside it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

IMAGES = ("giaabaoo/person-reid", "04fe2d85948a")
PARAPHRASES = ("rocksyne/TextReIDNet", "846249e166f6")
REAL = ("Annoonnymous/DEM", "32bdbdf656fc")
ROOT = "datasets/CUHK-PEDES"
TRAIN_PEOPLE, TRAIN_IMAGES = 11003, 34054
VAL_PEOPLE, VAL_IMAGES = 1000, 3078
DEV_VAL_IDS = 200  # the last 200 official-val people are cuhk-dev's val
REAL_PEOPLE, REAL_IMAGES, REAL_CAPTIONS = 480, 1452, 2907
DISTRACTOR_SEED = 0
IMAGE_MAGIC = (b"\xff\xd8", b"\x89PNG", b"BM")  # the sources hold JPEG, PNG and BMP files
REPO = Path(__file__).resolve().parent.parent


class SourceError(SystemExit):
    """A source that does not hold what this script expects: one line, no traceback."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


def blob(git: str, commit: str, path: str) -> bytes:
    done = subprocess.run(["git", f"--git-dir={git}", "cat-file", "-p", f"{commit}:{path}"],
                          capture_output=True)
    if done.returncode:
        raise SourceError(f"{git}: cannot read {commit}:{path} "
                          f"({done.stderr.decode().strip() or 'git failed'})")
    return done.stdout


def read_json(git: str, commit: str, path: str):
    try:
        return json.loads(blob(git, commit, path))
    except ValueError as exc:
        raise SourceError(f"{git}: {commit}:{path} is not valid JSON ({exc})") from exc


def expect(what: str, got, want) -> None:
    if got != want:
        raise SourceError(f"{what}: found {got}, expected {want}")


def person_key(file_path: str) -> tuple[str, str]:
    """The identity of a training image, from its path (see the module docstring)."""
    source, name = file_path.split("/", 1)
    if source == "CUHK01":
        return source, name[:4]
    if source in ("train_query", "test_query"):
        return "SSM", name.split("_")[0]
    if source in ("cam_a", "cam_b"):
        return "VIPeR", name.split("_")[0]
    return source, name.split("_")[0]  # CUHK03, Market


def training_people(git: str) -> dict[str, int]:
    """Official TRAIN image path -> person number 0..11002."""
    lines = blob(git, IMAGES[1], "inference_utils/train.txt").decode().split()
    number: dict[tuple[str, str], int] = {}
    person: dict[str, int] = {}
    for path in lines:
        person.setdefault(path, number.setdefault(person_key(path), len(number)))
    expect("official train people (person-reid train.txt)", len(number), TRAIN_PEOPLE)
    expect("official train images (person-reid train.txt)", len(person), TRAIN_IMAGES)
    return person


def official_val(git: str) -> list[dict]:
    """The official val split's images, each with its person and real captions."""
    ann = read_json(git, IMAGES[1], f"{ROOT}/annotations/val.json")
    by_image: dict[str, dict] = {}
    for k, a in enumerate(ann.get("annotations", []) if isinstance(ann, dict) else []):
        for key in ("file_path", "id", "sentence"):
            if key not in a:
                raise SourceError(f"person-reid val.json: annotation {k} has no '{key}'")
        e = by_image.setdefault(a["file_path"], {"file_path": a["file_path"], "id": a["id"],
                                                 "captions": []})
        if e["id"] != a["id"]:
            raise SourceError(f"person-reid val.json: {a['file_path']} has two ids")
        e["captions"].append(a["sentence"])
    expect("official val images (val.json)", len(by_image), VAL_IMAGES)
    expect("official val people (val.json)", len({e["id"] for e in by_image.values()}),
           VAL_PEOPLE)
    return list(by_image.values())


def weak_captions(git: str) -> dict[int, str]:
    data = read_json(git, PARAPHRASES[1], "datasets/paraphrased_captions.json")
    if sorted(map(int, data)) != list(range(TRAIN_PEOPLE)):
        raise SourceError("TextReIDNet paraphrased_captions.json: keys are not 0..11002")
    return {int(k): v for k, v in data.items()}


def real_captions(git: str, person: dict[str, int]) -> dict[str, list[str]]:
    """Training image path -> its real captions, for the people DEM's file covers."""
    real: dict[str, list[str]] = defaultdict(list)
    for k, e in enumerate(read_json(git, REAL[1], "data/cuhk_train.json")):
        if person.get(e["image"]) != e["image_id"] - 1:
            raise SourceError(f"DEM cuhk_train.json entry {k}: {e['image']} is not training "
                              f"person {e['image_id'] - 1}")
        if e["caption"] not in real[e["image"]]:
            real[e["image"]].append(e["caption"])
    people = {person[p] for p in real}
    expect("DEM people", (len(people), min(people), max(people)), (REAL_PEOPLE, 0,
                                                                   REAL_PEOPLE - 1))
    expect("DEM images, captions", (len(real), sum(map(len, real.values()))),
           (REAL_IMAGES, REAL_CAPTIONS))
    return real


def dev_entries(val: list[dict]) -> list[dict]:
    ids = sorted({e["id"] for e in val})
    held = set(ids[-DEV_VAL_IDS:])
    return [{"split": "val" if e["id"] in held else "train", **e} for e in val]


def weak_entries(person: dict[str, int], weak: dict[int, str], dev: list[dict],
                 real: dict[str, list[str]], distractor_ids: int) -> list[dict]:
    pool = sorted(set(person.values()) - set(range(REAL_PEOPLE)))
    if not 0 <= distractor_ids <= len(pool):
        raise SourceError(f"--distractor-ids must be 0..{len(pool)}, got {distractor_ids}")
    held = set(random.Random(DISTRACTOR_SEED).sample(pool, distractor_ids))
    entries = []
    for path, pid in person.items():
        split = "distractors" if pid in held else "train"
        if path in real:
            entries.append({"split": split, "captions": real[path], "file_path": path,
                            "id": pid})
        else:
            entries.append({"split": split, "captions": [weak[pid]], "file_path": path,
                            "id": pid, "weak": True})
    if set(e["id"] for e in dev) & set(person.values()):
        raise SourceError("official val ids collide with the training people's numbers")
    return entries + dev


def check_splits(entries: list[dict]) -> dict:
    """No person in two splits, no image twice; counts per split."""
    split_of: dict[int, str] = {}
    seen: set[str] = set()
    counts: dict[str, dict] = defaultdict(lambda: {"images": 0, "people": set(), "captions": 0,
                                                   "weak_images": 0})
    for e in entries:
        if split_of.setdefault(e["id"], e["split"]) != e["split"]:
            raise SourceError(f"person {e['id']} is in splits {split_of[e['id']]} and "
                              f"{e['split']}")
        if e["file_path"] in seen:
            raise SourceError(f"image {e['file_path']} listed twice")
        seen.add(e["file_path"])
        c = counts[e["split"]]
        c["images"] += 1
        c["people"].add(e["id"])
        c["captions"] += len(e["captions"])
        c["weak_images"] += bool(e.get("weak"))
    return {s: {**c, "people": len(c["people"])} for s, c in sorted(counts.items())}


def copy_images(git: str, paths: list[str], out: Path) -> None:
    """Write each image under OUT/imgs with one ``git cat-file --batch`` process, checking
    that each is an image file; an image already there (same size) is kept."""
    proc = subprocess.Popen(["git", f"--git-dir={git}", "cat-file", "--batch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for i, path in enumerate(paths):
        proc.stdin.write(f"{IMAGES[1]}:{ROOT}/imgs/{path}\n".encode())
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if len(header) != 3:
            raise SourceError(f"{git}: image {path} missing ({b' '.join(header).decode()})")
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)
        if not data.startswith(IMAGE_MAGIC):
            raise SourceError(f"{git}: image {path} is not a JPEG, PNG or BMP file (a Git "
                              "LFS pointer?)")
        dst = out / "imgs" / path
        if not (dst.is_file() and dst.stat().st_size == len(data)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, dst)
        if (i + 1) % 5000 == 0:
            print(f"  {i + 1} / {len(paths)} images", flush=True)
    proc.stdin.close()
    proc.wait()


def write_set(name: str, entries: list[dict], out: Path, args, sources: dict) -> None:
    counts = check_splits(entries)
    target = out / name
    print(f"{name}: writing {len(entries)} images to {target}", flush=True)
    copy_images(args.person_reid, [e["file_path"] for e in entries], target)
    for file, content in (("reid_raw.json", entries),
                          ("build.json", {"sources": sources, "splits": counts,
                                          "distractor_ids": args.distractor_ids,
                                          "distractor_seed": DISTRACTOR_SEED})):
        tmp = target / (file + ".part")
        tmp.write_text(json.dumps(content, indent=None if file == "reid_raw.json" else 1))
        os.replace(tmp, target / file)
    for split, c in counts.items():
        print(f"  {split}: {c['images']} images ({c['weak_images']} weak), {c['people']} "
              f"people, {c['captions']} captions")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--person-reid", required=True, metavar="GIT",
                    help="git directory of giaabaoo/person-reid")
    ap.add_argument("--textreidnet", metavar="GIT",
                    help="git directory of rocksyne/TextReIDNet (needed for cuhk-weak)")
    ap.add_argument("--dem", metavar="GIT", help="git directory of Annoonnymous/DEM: real "
                    "captions for training people 0..479 (cuhk-weak-real)")
    ap.add_argument("--out", required=True, type=Path, help="folder outside this repository")
    ap.add_argument("--sets", nargs="+", choices=("dev", "weak"), default=["dev", "weak"])
    ap.add_argument("--distractor-ids", type=int, default=800, metavar="N",
                    help="training people held out of cuhk-weak's train as val-1k's "
                    "distractors (default 800; 0: none)")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    if out == REPO or REPO in out.parents:
        raise SourceError(f"--out {args.out} is inside this repository; the dataset's terms "
                          "forbid redistribution: write it elsewhere")
    if "weak" in args.sets and not args.textreidnet:
        raise SourceError("--sets weak needs --textreidnet")
    sources = {"images": f"{IMAGES[0]} @ {IMAGES[1]}"}
    dev = dev_entries(official_val(args.person_reid))
    if "dev" in args.sets:
        write_set("cuhk-dev", dev, out, args, sources)
    if "weak" in args.sets:
        person = training_people(args.person_reid)
        sources["weak captions"] = f"{PARAPHRASES[0]} @ {PARAPHRASES[1]}"
        real = {}
        if args.dem:
            real = real_captions(args.dem, person)
            sources["real captions"] = f"{REAL[0]} @ {REAL[1]}"
        name = "cuhk-weak-real" if args.dem else "cuhk-weak"
        write_set(name, weak_entries(person, weak_captions(args.textreidnet), dev, real,
                                     args.distractor_ids), out, args, sources)


if __name__ == "__main__":
    sys.exit(main())
