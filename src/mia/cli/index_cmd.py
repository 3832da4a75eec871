"""``mia index build | add | remove | sync``: a persistent gallery index that can grow."""

from __future__ import annotations

import argparse

from mia.cli.common import FORMAT_CHOICES, HelpFormatter, positive_int, print_json
from mia.retrieval.vectordb import DEFAULT_INDEX, INDEX_TYPES

DESCRIPTION = """Encode a gallery with a trained run and store its features (global, parts
and the visual MLP outputs) as a persistent index for `mia search` and `mia serve`.
The gallery is a dataset split (--data DIR [--split test]) or every image under a folder
(--images DIR). Building is resumable: an interrupted build continues where it stopped,
and a half-built index is never loadable. The index records the model's fingerprint, so
searching it with another model is a clear error."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("index", help="build, grow and shrink a gallery index",
                            description="Gallery indexes for search: build one, add and "
                            "remove images (a running server picks changes up), and put its "
                            "stage 1 on a vector database (docs/SCALE.md).")
    index_sub = parser.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    _register_build(index_sub)
    _register_add(index_sub)
    _register_remove(index_sub)
    _register_sync(index_sub)


def _register_build(index_sub: argparse._SubParsersAction) -> None:
    build = index_sub.add_parser("build", help="encode a gallery into an index",
                                 description=DESCRIPTION, formatter_class=HelpFormatter)
    build.add_argument("--run", required=True, metavar="RUN",
                       help="trained run directory or exported model file (mia export)")
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
    build.add_argument("--vector-db", metavar="URI",
                       help="also put the global features into a Milvus collection for stage 1 "
                       "(a Milvus Lite file such as stage1.db, relative to the index, or a "
                       "server http://host:19530); same as mia index sync afterwards")
    build.add_argument("--json", action="store_true", help="print the manifest as JSON")
    build.set_defaults(func=run_build)


def _register_add(index_sub: argparse._SubParsersAction) -> None:
    add = index_sub.add_parser("add", help="encode new images into an index",
                               description=ADD_DESCRIPTION, formatter_class=HelpFormatter)
    add.add_argument("index", metavar="INDEX", help="index directory")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="DIR", help="dataset directory (its photo folder "
                        "must be the index's)")
    source.add_argument("--images", metavar="DIR", help="a folder of images inside the index's "
                        "photo folder (recursive)")
    add.add_argument("--split", default="test", help="dataset split to add (with --data)")
    add.add_argument("--format", choices=FORMAT_CHOICES)
    add.add_argument("--run", help="run directory or exported model file (default: the "
                     "one that built the index)")
    add.add_argument("--skip-bad", action="store_true",
                     help="leave out unreadable images instead of failing")
    add.add_argument("--batch-size", type=positive_int, default=128)
    add.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add.add_argument("--no-progress", action="store_true")
    add.add_argument("--json", action="store_true", help="print the report as JSON")
    add.set_defaults(func=run_add)


def _register_remove(index_sub: argparse._SubParsersAction) -> None:
    remove = index_sub.add_parser("remove", help="remove images from an index by path",
                                  description=REMOVE_DESCRIPTION,
                                  formatter_class=HelpFormatter)
    remove.add_argument("index", metavar="INDEX", help="index directory")
    remove.add_argument("paths", metavar="PATH", nargs="*",
                        help="image paths as results list them (or absolute paths)")
    remove.add_argument("--list", metavar="FILE", help="a file with one path per line")
    remove.add_argument("--json", action="store_true", help="print the report as JSON")
    remove.set_defaults(func=run_remove)


def _register_sync(index_sub: argparse._SubParsersAction) -> None:
    sync = index_sub.add_parser("sync", help="(re)build the index's vector-database collection",
                                description=SYNC_DESCRIPTION, formatter_class=HelpFormatter)
    sync.add_argument("index", metavar="INDEX", help="index directory")
    sync.add_argument("--vector-db", metavar="URI",
                      help="Milvus Lite file (relative to the index) or server URI (default: "
                      "the index's current one, else stage1.db)")
    sync.add_argument("--vector-index", default=DEFAULT_INDEX, choices=tuple(INDEX_TYPES),
                      help="Milvus index type of the collection")
    sync.add_argument("--no-progress", action="store_true")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.set_defaults(func=run_sync)


ADD_DESCRIPTION = """Encode images with the index's model and add them to the index (and to
its vector database, when it has one). Images the index already has are skipped and
reported. The change is published at once by an atomic manifest swap: a crash leaves the
previous index searchable, and a running `mia serve` picks the new images up without a
restart (with a Milvus Lite file, stop the server first or run the database as a service,
see docs/SCALE.md)."""

REMOVE_DESCRIPTION = """Remove images from an index by path. Published at once (atomic manifest
swap): no search mentions them afterwards, including a running `mia serve`. Paths the index
does not have are reported."""

SYNC_DESCRIPTION = """Put the index's global features into a Milvus collection and make it the
index's stage 1: to add a vector database to an index, move it to another (a Milvus server),
or rebuild a collection that disagrees with the disk. The old collection is dropped once
the new one is published."""


def run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    import mia.api
    from mia.data.reader import open_dataset
    from mia.retrieval.index import GalleryIndex, build_index

    if args.vector_db:  # an unreachable database fails now, not after encoding
        from mia.retrieval.vectordb import check_reachable

        check_reachable(args.vector_db)
    retriever = mia.api.load(args.run, device=args.device, checkpoint=args.checkpoint)
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
    if args.vector_db:
        from mia.retrieval.growth import sync

        sync(args.out, args.vector_db, progress=not (args.no_progress or args.json))
        index = GalleryIndex.open(args.out)
    if args.json:
        print_json(index.manifest)
        return 0
    print(f"indexed {len(index)} images -> {args.out} "
          f"(D={index.manifest['dim']}, {index.manifest['parts']} parts, {args.dtype})")
    skipped = index.manifest.get("skipped", [])
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mia.data.reader import open_dataset
    from mia.retrieval.growth import folder_images
    from mia.retrieval.index import GalleryIndex
    from mia.retrieval.retriever import index_retriever
    from mia.utils.errors import MiaError

    index = GalleryIndex.open(args.index)
    options = {"batch_size": args.batch_size, "skip_bad": args.skip_bad,
               "progress": not (args.no_progress or args.json)}
    if args.data:
        dataset = open_dataset(args.data, args.format, skip_bad=args.skip_bad)
        root = index.image_root.resolve()
        if Path(dataset.image_root).resolve() != root:
            raise MiaError(f"{args.data}: its photos are in {dataset.image_root}, the index's "
                           f"in {root}; add them with --images from inside {root}")
        records = dataset.split(args.split)
        images, options["person_ids"] = [r.file_path for r in records], \
            [r.person_id for r in records]
    else:
        images = folder_images(index, args.images)  # checked before the model loads
    retriever = index_retriever(index, args.run, args.device)
    report = retriever.add_to_index(args.index, images, **options)
    return _print_report(args, report, f"added {report['added']} images to {args.index} "
                         f"(now {report['gallery']})",
                         {"already_indexed": "skipped {} already in the index",
                          "skipped": "skipped {} unreadable"})


def _print_report(args: argparse.Namespace, report: dict, headline: str,
                  lists: dict[str, str]) -> int:
    """The report as JSON, or a headline and, per non-empty list, its count and first item."""
    if args.json:
        print_json(report)
        return 0
    print(headline)
    for key, label in lists.items():
        if report[key]:
            print(f"{label.format(len(report[key]))}, first: {report[key][0]}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mia.retrieval.growth import remove_images
    from mia.utils.errors import MiaError

    paths = list(args.paths)
    if args.list:
        try:
            paths += [line.strip() for line in Path(args.list).read_text("utf-8").splitlines()
                      if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise MiaError(f"{args.list}: cannot read the list of paths ({exc})") from exc
    if not paths:
        raise MiaError("nothing to remove: give image paths or --list FILE")
    report = remove_images(args.index, paths)
    return _print_report(args, report, f"removed {report['removed']} images from {args.index}",
                         {"not_in_index": "{} path(s) not in the index"})


def run_sync(args: argparse.Namespace) -> int:
    from mia.retrieval.growth import sync

    report = sync(args.index, args.vector_db, args.vector_index,
                  progress=not (args.no_progress or args.json))
    if args.json:
        print_json(report)
        return 0
    print(f"{report['rows']} images in collection {report['collection']} at {report['uri']} "
          f"({report['index_type']})")
    return 0
