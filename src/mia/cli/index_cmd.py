"""``mia index build``: encode a gallery once into a persistent index."""

from __future__ import annotations

import argparse

from mia.cli.common import FORMAT_CHOICES, HelpFormatter, positive_int, print_json

DESCRIPTION = """Encode a gallery with a trained run and store its features (global, parts
and the visual MLP outputs) as a persistent index for `mia search` and `mia serve`.
The gallery is a dataset split (--data DIR [--split test]) or every image under a folder
(--images DIR). Building is resumable: an interrupted build continues where it stopped,
and a half-built index is never loadable. The index records the model's fingerprint, so
searching it with another model is a clear error."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("index", help="build a gallery index",
                            description="Gallery indexes for search.")
    index_sub = parser.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    build = index_sub.add_parser("build", help="encode a gallery into an index",
                                 description=DESCRIPTION, formatter_class=HelpFormatter)
    build.add_argument("--run", required=True, metavar="RUN", help="trained run directory")
    build.add_argument("--checkpoint", help="checkpoint (default: best.pt, else last.pt)")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="DIR", help="dataset directory (any supported format)")
    source.add_argument("--images", metavar="DIR", help="a folder of images (recursive)")
    build.add_argument("--split", default="test", help="dataset split to index (with --data)")
    build.add_argument("--format", choices=FORMAT_CHOICES)
    build.add_argument("--skip-bad", action="store_true",
                       help="leave out bad dataset entries and unreadable images (listed in "
                       "the manifest's 'skipped') instead of failing")
    build.add_argument("--out", required=True, metavar="INDEX", help="index directory to write")
    build.add_argument("--dtype", default="float16", choices=("float16", "float32"),
                       help="storage precision of the features")
    build.add_argument("--batch-size", type=positive_int, default=128)
    build.add_argument("--overwrite", action="store_true", help="replace an existing index")
    build.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    build.add_argument("--no-progress", action="store_true")
    build.add_argument("--json", action="store_true", help="print the manifest as JSON")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    import mia
    from mia.data.reader import open_dataset
    from mia.retrieval.index import build_index

    retriever = mia.load(args.run, device=args.device, checkpoint=args.checkpoint)
    options = {"batch_size": args.batch_size, "dtype": args.dtype, "overwrite": args.overwrite,
               "skip_bad": args.skip_bad, "progress": not (args.no_progress or args.json)}
    if args.data:
        dataset = open_dataset(args.data, args.format, skip_bad=args.skip_bad)
        records = dataset.split(args.split)
        index = build_index(args.out, retriever, [r.file_path for r in records],
                            [r.person_id for r in records], dataset.image_root,
                            source={"data": str(Path(args.data).resolve()), "split": args.split,
                                    "format": dataset.format}, **options)
    else:
        index = retriever.build_index(args.images, args.out, **options)
    if args.json:
        print_json(index.manifest)
        return 0
    print(f"indexed {len(index)} images -> {args.out} "
          f"(D={index.manifest['dim']}, {index.manifest['parts']} parts, {args.dtype})")
    skipped = index.manifest.get("skipped", [])
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    return 0
