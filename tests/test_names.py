"""One source per list of names: the command line's choices, the config's validation and the
code that acts on a name read the same list, and the command line reads them without
importing torch.

- precisions: mia.utils.choices.PRECISIONS (config, ``mia train --precision``, the autocast
  dtypes of mia.utils.device);
- candidate-search backends: mia.utils.choices (retrieval.candidates, ``--backend`` of
  ``mia search`` / ``mia serve``);
- dataset formats: mia.data.formats.FORMATS (the readers, every ``--format``);
- loss names: mia.config (LOSS_NAMES, validated there; training.objectives computes them).
"""

import argparse
import subprocess
import sys

import pytest
import torch

from mia.cli import common, train_cmd
from mia.config import (
    IDENTITY_LOSS,
    LOSS_NAMES,
    MATCHING_LOSSES,
    MATCHING_SIMILARITY,
    TrainConfig,
    load_config,
)
from mia.data.formats import FORMATS
from mia.model.similarity import GRANULARITIES
from mia.retrieval import candidates
from mia.training import objectives
from mia.utils import choices, device
from mia.utils.errors import ConfigError, MiaError


def train_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser().add_subparsers()
    train_cmd.register(sub)
    return sub.choices["train"]


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


# --- the values themselves: a refactor keeps them -------------------------------------------

def test_the_lists_keep_their_names_and_order():
    assert choices.PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    assert choices.CANDIDATE_BACKENDS == ("torch", "faiss-flat", "faiss-ivf", "faiss-ivf-sq8",
                                          "faiss-hnsw")
    assert choices.SEARCH_BACKENDS == ("auto", *choices.CANDIDATE_BACKENDS, "milvus")
    assert tuple(FORMATS) == ("cuhk-pedes", "icfg-pedes", "rstpreid")
    assert LOSS_NAMES == ("id", "gc", "rga_it", "rga_ti", "bfm_pn", "bfm_np")


# --- precision ----------------------------------------------------------------------------

def test_precision_readers_share_one_list():
    assert device.PRECISIONS is choices.PRECISIONS
    assert option(train_parser(), "--precision").choices is choices.PRECISIONS
    assert device.AUTOCAST_DTYPES == {"fp32": None, "bf16": torch.bfloat16,
                                      "fp16": torch.float16}
    assert ("auto", *device.AUTOCAST_DTYPES) == choices.PRECISIONS


@pytest.mark.parametrize("precision", choices.PRECISIONS)
def test_config_accepts_every_precision(precision):
    assert load_config("demo/mia", [f"train.precision={precision}"]).train.precision == precision


def test_config_and_device_refuse_another_precision():
    with pytest.raises(ConfigError, match="is not one of auto, fp32, bf16, fp16"):
        load_config("demo/mia", ["train.precision=fp8"])
    with pytest.raises(ConfigError, match=r"\(valid: auto, fp32, bf16, fp16\)"):
        device.check_precision("fp8", torch.device("cpu"))


# --- candidate-search backends ------------------------------------------------------------

def test_backend_readers_share_one_list():
    assert candidates.BACKENDS is choices.CANDIDATE_BACKENDS
    assert common.BACKENDS is choices.SEARCH_BACKENDS
    assert set(common.BACKENDS) - set(candidates.BACKENDS) == {"auto", "milvus"}  # Searcher's


def test_candidate_index_refuses_a_backend_outside_the_list():
    with pytest.raises(MiaError, match=r"valid: torch, faiss-flat, faiss-ivf, faiss-ivf-sq8, "
                                       r"faiss-hnsw\)"):
        candidates.CandidateIndex(torch.zeros(2, 4), backend="milvus")


# --- dataset formats ----------------------------------------------------------------------

def test_format_choices_are_the_registry():
    assert common.FORMAT_CHOICES == tuple(FORMATS)
    parser = argparse.ArgumentParser()
    common.add_data_options(parser)
    assert option(parser, "--format").choices == tuple(FORMATS)
    assert all(f.name == name for name, f in FORMATS.items())


# --- loss names ---------------------------------------------------------------------------

def test_losses_are_the_config_table():
    assert objectives.MATCHING is MATCHING_SIMILARITY
    assert LOSS_NAMES == (IDENTITY_LOSS, *MATCHING_SIMILARITY)
    assert {gran for gran, _ in MATCHING_SIMILARITY.values()} <= set(GRANULARITIES)


def test_every_matching_loss_is_its_own_branch():
    # config.MATCHING_LOSSES is what training.objectives.matching_pairs tells apart
    torch.manual_seed(0)
    scores, negatives = torch.randn(6, 6), ~torch.eye(6, dtype=torch.bool)
    out = [objectives.matching_pairs(scores, negatives, objectives.MatchingConfig(loss=name))
           for name in MATCHING_LOSSES]
    assert all(not torch.allclose(a, b) for i, a in enumerate(out) for b in out[i + 1:])
    assert objectives.MatchingConfig().loss == TrainConfig().matching_loss == MATCHING_LOSSES[0]


# --- mia train's convenience flags ----------------------------------------------------------

def test_config_flags_table_drives_overrides_and_error():
    parser = train_parser()
    for flag, key in train_cmd.CONFIG_FLAGS.items():
        assert key in option(parser, flag).help  # its help names the key it sets
    args = parser.parse_args(["--data", "d", "--out", "r", "--precision", "bf16",
                              "--pretrained", "w.pt", "--word-vectors", "v.txt"])
    assert train_cmd.config_flag_overrides(args) == [
        "model.pretrained=w.pt", "model.word_vectors=v.txt", "train.precision=bf16"]
    args = parser.parse_args(["--data", "d", "--out", "r", "--precision", "fp32", "--nproc", "1"])
    args.argv = []
    with pytest.raises(ConfigError) as caught:
        train_cmd.run(args)
    assert str(caught.value) == ("--set/--pretrained/--word-vectors/--precision need --config "
                                 "(a resumed run keeps its saved config)")


def test_device_is_a_keyword_not_a_config_flag():
    assert "--device" not in train_cmd.CONFIG_FLAGS
    args = train_parser().parse_args(["--data", "d", "--out", "r", "--device", "cpu"])
    assert train_cmd.config_flag_overrides(args) == []


# --- the command line reads the lists without torch ------------------------------------------

def test_the_command_line_and_the_sources_import_no_torch():
    code = ("import sys, mia.cli.main, mia.utils.choices, mia.data.formats; "
            "mia.cli.main.build_parser(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
