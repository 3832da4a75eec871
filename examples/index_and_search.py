"""Build a persistent index of a photo folder once, then search it with descriptions.

    python examples/index_and_search.py --run runs/demo/mia --photos my_photos/ \
        --index my_photos.index "a woman in a red t-shirt and black trousers" "..."

The index is resumable and reused: run the script again and only the search runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mia


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--photos", required=True, help="a folder of images (recursive)")
    parser.add_argument("--index", required=True, help="where to keep the index")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("queries", nargs="+", help="descriptions to search for")
    args = parser.parse_args(argv)

    model = mia.load(args.run)
    if Path(args.index).is_dir():
        index = args.index
    else:
        index = model.build_index(args.photos, args.index, skip_bad=True, progress=True)
        print(f"indexed {len(index)} photos -> {args.index}")
    answers = []
    for query in args.queries:
        answer = model.search(index, query, k=args.top)
        answers.append(answer)
        print(f"\n{query}\n  phrases: {' | '.join(answer['phrases'])}")
        for r in answer["results"]:
            print(f"  {r['rank']:>2}. {r['score']:.4f}  {r['image']}")
    return answers


if __name__ == "__main__":
    main()
