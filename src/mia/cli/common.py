"""Small helpers shared by the subcommands: output, common options."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mia.data.formats import FORMATS
from mia.utils.choices import SEARCH_BACKENDS


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


FORMAT_CHOICES = tuple(FORMATS)  # the formats registry (torch-free, like this module)


def _number(kind: type, low: float, high: float | None = None):
    """An argparse type: a ``kind`` number in [low, high]; anything else is a usage error
    naming the range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1)
nonneg_int = _number(int, 0)
nonneg_float = _number(float, 0.0)
positive_float = _number(float, 1e-9)
port_number = _number(int, 1, 65535)


def add_data_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", required=required, metavar="DIR",
                        help="dataset directory (CUHK-PEDES, ICFG-PEDES or RSTPReid layout)")
    parser.add_argument("--format", choices=FORMAT_CHOICES,
                        help="dataset format (default: detected from the annotation file name)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="drop invalid entries and missing images instead of failing; "
                        "the number dropped and why is reported")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the description's line breaks."""


BACKENDS = SEARCH_BACKENDS  # mia.utils.choices: importing retrieval would import torch
BACKEND_HELP = ("stage-1 candidate search: auto = the index's vector database when it has "
                "one (mia index sync), else exact torch in this process; faiss-ivf-sq8 = "
                "inverted lists of 8-bit features in this process (1 GB per million images at "
                "D = 1024; built at the first search or server start, about 3 min per million "
                "images on 2 cores, then kept in INDEX/.stage1)")
