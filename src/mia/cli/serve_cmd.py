"""``mia serve``: the search page and JSON API over a gallery index."""

from __future__ import annotations

import argparse

from mia.cli.common import BACKEND_HELP, BACKENDS, HelpFormatter, port_number, positive_int

DESCRIPTION = """Serve a gallery index over HTTP: a search page at / (type a description,
see the ranked images with their stripes shaded by the sentence's weights; hover a noun
phrase to see its best stripe in each image) and a JSON API at /api/search described by
OpenAPI at /docs. Binds to loopback by default; only gallery images are served. Changes
published by `mia index add/remove/sync` are picked up without a restart; stage 1 runs
on the index's vector database when it has one (docs/SCALE.md)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="serve a search page and JSON API for an index",
                            description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--index", required=True, metavar="INDEX", help="index directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=port_number, default=8000, help="port")
    parser.add_argument("--run", help="run directory or exported model file (default: the "
                        "one that built the index)")
    parser.add_argument("--image-root", metavar="DIR",
                        help="where the gallery's photos are now (default: the folder recorded "
                        "at build time, or the same place relative to the index)")
    parser.add_argument("--candidates", type=positive_int, help="stage-1 candidates (large galleries)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    parser.add_argument("--max-batch", type=positive_int, default=32,
                        help="concurrent requests answered by one pass over the gallery (1: "
                        "one request at a time)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from mia.serving.app import serve
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        from mia.utils.errors import MiaError

        raise MiaError("mia serve needs FastAPI and uvicorn: pip install fastapi uvicorn (or, "
                       "in a checkout of mia, pip install -e '.[serve]')") from exc
    print(f"serving {args.index} on http://{args.host}:{args.port} (Ctrl-C to stop)")
    serve(args.index, host=args.host, port=args.port, run=args.run,
          candidates=args.candidates, backend=args.backend, image_root=args.image_root,
          max_batch=args.max_batch)
    return 0
