"""``mia data``: check a dataset, show the phrases of a caption, generate the synthetic set."""

from __future__ import annotations

import argparse

from mia.cli.common import FORMAT_CHOICES, HelpFormatter, nonneg_int, positive_int, print_json
from mia.utils.errors import DatasetError

CHECK_HELP = """Validate a dataset and print per split: images, ids, captions, vocabulary
size, caption length, noun phrases per caption, captions without a noun phrase, and images
listed but missing on disk. Every image is decoded once (skip with --no-decode). Phrases are
cached in DIR/.mia_cache/, the only thing ever written into a dataset directory."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="check datasets, inspect phrases, make synthetic data",
                            description="Dataset tools.")
    data_sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    check = data_sub.add_parser("check", help="validate a dataset and print its statistics",
                                description=CHECK_HELP, formatter_class=HelpFormatter)
    check.add_argument("dir", metavar="DIR", help="dataset directory")
    check.add_argument("--format", choices=FORMAT_CHOICES,
                       help="dataset format (default: detected)")
    check.add_argument("--skip-bad", action="store_true",
                       help="drop bad entries, missing and unreadable images, and report them")
    check.add_argument("--no-decode", action="store_true", help="do not decode every image")
    check.add_argument("--mode", default="noun_phrases", choices=("noun_phrases", "words"),
                       help="phrase extraction mode")
    check.add_argument("--workers", type=positive_int, default=2, help="processes for phrase extraction")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=run_check)

    phrases = data_sub.add_parser(
        "phrases", help="print the tokens and phrases the model sees for a caption",
        description="Tokenise a caption and extract its noun phrases (POS tags + NLTK "
        "regexp chunking), exactly as the model will see them.", formatter_class=HelpFormatter)
    phrases.add_argument("text", metavar="TEXT", help="a caption, quoted")
    phrases.add_argument("--mode", default="noun_phrases", choices=("noun_phrases", "words"),
                         help="noun phrases (the paper) or every word as a phrase (Table VII)")
    phrases.add_argument("--json", action="store_true",
                         help='print {"tokens": [...], "phrases": [[...], ...]}')
    phrases.set_defaults(func=run_phrases)

    synth = data_sub.add_parser(
        "synth", help="write a synthetic pedestrian set in CUHK-PEDES format",
        description="Generate a synthetic pedestrian dataset (reid_raw.json + imgs/) whose "
        "identities differ in one or two attributes, photographed by several cameras and "
        "described by incomplete, varied captions. Deterministic for a seed.",
        formatter_class=HelpFormatter)
    synth.add_argument("--out", required=True, metavar="DIR", help="output dataset directory")
    synth.add_argument("--ids", type=positive_int, default=500, help="number of identities")
    synth.add_argument("--seed", type=nonneg_int, default=0, help="random seed")
    synth.add_argument("--height", type=positive_int, default=384, help="image height")
    synth.add_argument("--width", type=positive_int, default=128, help="image width")
    synth.add_argument("--images-per-id", type=positive_int, nargs=2, default=(2, 5),
                       metavar=("MIN", "MAX"), help="images per identity (uniform)")
    synth.add_argument("--workers", type=positive_int, default=1, help="rendering processes")
    synth.add_argument("--json", action="store_true", help="print the summary as JSON")
    synth.set_defaults(func=run_synth)


def run_check(args: argparse.Namespace) -> int:
    from mia.data.formats.base import missing_images
    from mia.data.images import unreadable_images
    from mia.data.reader import open_dataset
    from mia.data.stats import dataset_stats
    from mia.text.cache import load_or_parse

    dataset = open_dataset(args.dir, args.format, skip_bad=args.skip_bad, check_images=False)
    missing = missing_images(dataset)
    unreadable = [] if args.no_decode else unreadable_images(dataset, progress=not args.json)
    problems = _image_problems(missing, unreadable)
    if args.skip_bad and problems:
        bad = {id(r) for r in missing} | {id(r) for r, _ in unreadable}
        dataset.records = [r for r in dataset.records if id(r) not in bad]
        dataset.skipped.update({k: v for k, v in (("image missing", len(missing)),
                                                  ("image unreadable", len(unreadable))) if v})
    parsed = load_or_parse(dataset.annotation_file, dataset.captions(), mode=args.mode,
                           workers=args.workers, progress=not args.json)
    stats = dataset_stats(dataset, parsed)
    for split, entry in stats["splits"].items():
        entry["missing_images"] = sum(r.split == split for r in missing)
    stats["unreadable_images"] = len(unreadable)
    stats["missing_examples"] = [r.file_path for r in missing[:5]]
    stats["valid"] = not problems or args.skip_bad
    print_json(stats) if args.json else _print_check(stats)
    if problems and not args.skip_bad:
        raise DatasetError(f"{dataset.annotation_file}: " + "; ".join(problems)
                           + " (use --skip-bad to drop them)")
    return 0


def _image_problems(missing: list, unreadable: list) -> list[str]:
    problems = []
    if missing:
        listed = ", ".join(r.file_path for r in missing[:5])
        problems.append(f"{len(missing)} listed images are missing (first: {listed})")
    if unreadable:
        first, message = unreadable[0]
        problems.append(f"{len(unreadable)} unreadable image file(s); first at entry "
                        f"{first.entry} (id {first.person_id}): {message}")
    return problems


def _print_check(stats: dict) -> None:
    print(f"format: {stats['format']}   annotations: {stats['annotation_file']}")
    print(f"images: {stats['image_root']}")
    header = (f"{'split':<8}{'images':>8}{'ids':>7}{'captions':>10}{'vocab':>8}"
              f"{'len mean/max':>14}{'NP mean/min/max':>17}{'no NP':>7}{'missing':>9}"
              f"{'unknown':>9}")
    print(header)
    for name, s in stats["splits"].items():
        length = f"{s['caption_length']['mean']:.1f}/{s['caption_length']['max']}"
        nps = s["noun_phrases"]
        phrase = f"{nps['mean']:.2f}/{nps['min']}/{nps['max']}"
        print(f"{name:<8}{s['images']:>8}{s['ids']:>7}{s['captions']:>10}{s['vocabulary']:>8}"
              f"{length:>14}{phrase:>17}{s['captions_without_noun_phrase']:>7}"
              f"{s['missing_images']:>9}{_percent(s['unknown_word_rate']):>9}")
    print("unknown: share of the split's words absent from the training split's (a model "
          "trained on it reads them as <unk>)")
    if stats["unreadable_images"]:
        print(f"unreadable images: {stats['unreadable_images']}")
    for reason, count in stats["skipped"].items():
        print(f"skipped {count} entries: {reason}")
    for warning in stats["warnings"]:
        print(f"warning: {warning}")


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.2f}%"


def run_phrases(args: argparse.Namespace) -> int:
    from mia.text.phrases import parse_caption

    if not args.text.strip():
        raise DatasetError("the caption is empty")
    parsed = parse_caption(args.text, args.mode)
    if args.json:
        print_json({"tokens": parsed.tokens, "phrases": parsed.phrases})
        return 0
    print("tokens: " + " ".join(parsed.tokens))
    note = "  (no noun phrase found: the whole caption is used as one phrase)"
    print(f"phrases ({len(parsed.phrases)}):" + (note if parsed.fallback else ""))
    for i, phrase in enumerate(parsed.phrases, 1):
        print(f"  {i}. {' '.join(phrase)}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from mia.synth.generate import generate_dataset

    try:
        summary = generate_dataset(args.out, n_ids=args.ids, seed=args.seed, height=args.height,
                                   width=args.width, images_per_id=tuple(args.images_per_id),
                                   workers=args.workers, progress=not args.json)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {args.out}: " + ", ".join(f"{k}={v}" for k, v in summary.items()
                                                if not isinstance(v, dict)))
    return 0
