"""``mia search``: ranked gallery images for a description, with explanations."""

from __future__ import annotations

import argparse
import sys

from mia.cli.common import (
    BACKEND_HELP,
    BACKENDS,
    HelpFormatter,
    nonneg_float,
    nonneg_int,
    positive_int,
    print_json,
)

DESCRIPTION = """Search a gallery index with a description. Prints the ranked images with
the fused score sF and its parts sG, sR, sL, which stripes of each image the sentence
weighted most (RGA I->T) and, for each noun phrase, its best-matching stripe (BFM P->N).
Galleries whose prepared features fit in 1 GB (about 40,000 images at D=256, 10,000 at
D=1024) are scored exactly; larger ones in two stages (--candidates best images by sG,
then exact fusion); --candidates 0 forces exact scoring of every image."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("search", help="search a gallery index with a description",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("index", metavar="INDEX", help="index directory (mia index build)")
    parser.add_argument("query", metavar="DESCRIPTION", help="the description, quoted")
    parser.add_argument("--top", type=positive_int, default=10, help="number of results")
    parser.add_argument("--candidates", type=nonneg_int,
                        help="stage-1 candidates by sG (default: exact when the gallery fits "
                        "1 GB prepared, else 500; 0 = always exact)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    parser.add_argument("--run", help="run directory or exported model file (default: the "
                        "one that built the index)")
    parser.add_argument("--image-root", metavar="DIR",
                        help="where the gallery's photos are now (default: the folder recorded "
                        "at build time, or the same place relative to the index)")
    parser.add_argument("--lambda1", type=nonneg_float, help="weight of sR (default: the run's)")
    parser.add_argument("--lambda2", type=nonneg_float, help="weight of sL (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--figure", metavar="PNG",
                        help="also draw the top 5 results (fewer with a smaller --top) with "
                        "their stripes and phrase -> stripe assignments into this PNG")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mia.retrieval.index import GalleryIndex
    from mia.retrieval.retriever import index_retriever
    from mia.retrieval.search import Searcher

    index = GalleryIndex.open(args.index, image_root=args.image_root)
    candidates = args.candidates if args.candidates != 0 else len(index)
    searcher = Searcher(index, index_retriever(index, args.run), lambda1=args.lambda1,
                        lambda2=args.lambda2, candidates=candidates, backend=args.backend)
    answer = searcher.search(args.query, top_k=args.top)
    for warning in answer["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.figure:
        from mia.viz.search_figure import search_figure

        search_figure(answer, index.image_root, args.figure, k=min(args.top, 5))
        print(f"figure: {args.figure}", file=sys.stderr)
    if args.json:
        print_json(answer)
        return 0
    print(f"query: {answer['query']}")
    print(f"phrases: {' | '.join(answer['phrases'])}")
    for r in answer["results"]:
        top2 = sorted(range(len(r["stripes"])), key=lambda i: -r["stripes"][i])[:2]
        pid = f" id {r['person_id']}" if r["person_id"] is not None else ""
        print(f"{r['rank']:>3}. {r['score']:.4f} (sG {r['sG']:.3f} sR {r['sR']:.3f} "
              f"sL {r['sL']:.3f}) {r['image']}{pid}; stripes {top2[0] + 1},{top2[1] + 1}")
    if answer["results"]:
        mapping = answer["results"][0]["phrase_to_stripe"]
        print("top result, phrase -> stripe (1 = top): "
              + "; ".join(f"{p} -> {s + 1}" for p, s in mapping.items()))
    return 0
