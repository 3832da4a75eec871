"""The ``mia`` command: one subcommand per task, each with ``--help``.

Every command is a plain function of parsed arguments; ``main(argv)`` can be called from
tests. User errors (bad data, bad config, bad checkpoint) print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mia._version import __version__
from mia.utils.errors import MiaError

COMMAND_MODULES = ("data", "train", "evaluate", "export", "index", "search", "report",
                   "serve", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mia",
        description="MIA: description-based person retrieval with multi-granularity "
        "image-text alignments (Niu et al., IEEE TIP 2020).",
    )
    parser.add_argument("--version", action="version", version=f"mia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"mia.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what this command was given (``mia train --nproc`` re-runs it)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)
    try:
        return int(args.func(args) or 0)
    except MiaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
