"""`mia data` subcommands: check, phrases, synth; and --help everywhere."""

import json

import pytest

from mia.cli.main import build_parser, main


def test_data_check_json_has_per_split_counts(dataset_factory, capsys):
    root = dataset_factory("rstpreid")
    assert main(["data", "check", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "rstpreid"
    assert out["splits"]["train"]["images"] == 6 and out["splits"]["train"]["ids"] == 3
    assert out["splits"]["val"]["captions"] == 8
    s = out["splits"]["test"]
    assert {"vocabulary", "caption_length", "noun_phrases", "captions_without_noun_phrase",
            "missing_images"} <= set(s)
    assert s["noun_phrases"]["min"] >= 1 and out["valid"] is True


def test_data_check_reports_missing_and_fails_unless_skip_bad(dataset_factory, capsys):
    root = dataset_factory()
    entries = json.loads((root / "reid_raw.json").read_text())
    (root / "imgs" / entries[0]["file_path"]).unlink()
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    assert "1 listed images are missing (first: " + entries[0]["file_path"] in captured.err
    assert main(["data", "check", str(root), "--skip-bad", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"]["train"]["missing_images"] == 1
    assert out["skipped"] == {"image missing": 1}


def test_data_phrases_json(capsys):
    assert main(["data", "phrases", "A man in blue jeans and a red cap.", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"tokens": ["a", "man", "in", "blue", "jeans", "and", "a", "red", "cap"],
                   "phrases": [["a", "man"], ["blue", "jeans"], ["a", "red", "cap"]]}
    assert main(["data", "phrases", "   "]) == 2


def test_data_synth_then_check(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["data", "synth", "--out", str(out), "--ids", "6", "--seed", "1",
                 "--height", "48", "--width", "16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ids"] == 6
    assert main(["data", "check", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["ids"] >= 1
    assert main(["data", "synth", "--out", str(out), "--ids", "1"]) == 2
    capsys.readouterr()
    real = tmp_path / "real"  # a user's own dataset: never written over
    real.mkdir()
    (real / "reid_raw.json").write_text("[]")
    assert main(["data", "synth", "--out", str(real), "--ids", "6"]) == 2
    assert "did not make" in capsys.readouterr().err
    assert (real / "reid_raw.json").read_text() == "[]" and not (real / "imgs").exists()


def _subcommands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


@pytest.mark.parametrize("command", list(_subcommands(build_parser())))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: mia" in capsys.readouterr().out
