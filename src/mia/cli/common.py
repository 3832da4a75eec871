"""Small helpers shared by the subcommands: output, common options."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


FORMAT_CHOICES = ("cuhk-pedes", "icfg-pedes", "rstpreid")


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
