"""Dataset readers: right counts for valid data, errors naming file/entry/field otherwise."""

import json

import pytest

from mia.data.reader import open_dataset
from mia.data.records import label_map
from mia.utils.errors import DatasetError
from tests.conftest import FORMAT_FILES, make_entries, write_dataset, write_image


@pytest.mark.parametrize("fmt", list(FORMAT_FILES))
def test_valid_dataset_in_every_format_is_detected_and_counted(dataset_factory, fmt):
    root = dataset_factory(fmt)
    ds = open_dataset(root)
    assert ds.format == fmt
    expected = {"train": 3, "val": 2, "test": 2} if fmt != "icfg-pedes" else {"train": 3, "test": 2}
    for split, n_ids in expected.items():
        records = ds.split(split)
        assert len(records) == 2 * n_ids
        assert len({r.person_id for r in records}) == n_ids
        assert all(len(r.captions) == 2 for r in records)
        assert all(ds.image_path(r).is_file() for r in records)


def test_format_can_be_forced_and_wrong_format_is_an_error(dataset_factory):
    root = dataset_factory("rstpreid")
    assert open_dataset(root, format="rstpreid").format == "rstpreid"
    with pytest.raises(DatasetError, match="reid_raw.json: annotation file not found"):
        open_dataset(root, format="cuhk-pedes")
    with pytest.raises(DatasetError, match="unknown dataset format 'coco'"):
        open_dataset(root, format="coco")


def test_missing_annotation_file_lists_expected_names(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="expected one of reid_raw.json.*ICFG-PEDES.json"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="dataset directory not found"):
        open_dataset(tmp_path / "nope")


def test_caption_all_json_gets_a_hint(tmp_path):
    (tmp_path / "caption_all.json").write_text("[]")
    with pytest.raises(DatasetError, match="caption_all.json is the raw CUHK-PEDES release"):
        open_dataset(tmp_path)


def test_several_annotation_files_ask_for_format(dataset_factory):
    root = dataset_factory("cuhk-pedes")
    (root / "data_captions.json").write_text("[]")
    with pytest.raises(DatasetError, match="choose with --format"):
        open_dataset(root)


def test_invalid_json_names_line_and_column(tmp_path):
    (tmp_path / "reid_raw.json").write_text('[{"id": 1,\n "split": }]')
    with pytest.raises(DatasetError, match=r"reid_raw.json: invalid JSON at line 2, column"):
        open_dataset(tmp_path)


def test_top_level_must_be_a_list(tmp_path):
    (tmp_path / "reid_raw.json").write_text('{"images": []}')
    with pytest.raises(DatasetError, match="expected a JSON list of entries, got dict"):
        open_dataset(tmp_path)


BROKEN = [
    (lambda e: e.pop("captions"), "entry 3 \\(id 2\\): missing field 'captions'"),
    (lambda e: e.update(id="2"), "entry 3 \\(id 2\\): field 'id': expected an integer"),
    (lambda e: e.update(captions="a man"), "entry 3 \\(id 2\\): field 'captions': expected a"),
    (lambda e: e.update(captions=["ok", ""]),
     "entry 3 \\(id 2\\): field 'captions'\\[1\\]: expected a non-empty"),
    (lambda e: e.update(file_path=7),
     "entry 3 \\(id 2\\): field 'file_path': expected a non-empty string"),
    (lambda e: e.update(split="testing"), "entry 3 \\(id 2\\): field 'split': unknown split "
                                          "'testing' \\(valid for cuhk-pedes: train, val, test, "
                                          "distractors\\)"),
]


@pytest.mark.parametrize("breaker, message", BROKEN)
def test_broken_entry_is_named_by_file_index_id_and_field(dataset_factory, breaker, message):
    entries = make_entries("cuhk-pedes", {"train": 3, "val": 2, "test": 2})
    breaker(entries[3])
    root = dataset_factory(entries=entries)
    with pytest.raises(DatasetError, match="reid_raw.json: " + message):
        open_dataset(root)
    ds = open_dataset(root, skip_bad=True)  # --skip-bad drops it and says why
    assert len(ds.records) == len(entries) - 1
    assert sum(ds.skipped.values()) == 1


def test_duplicate_image_entries(dataset_factory):
    entries = make_entries("cuhk-pedes", {"train": 3, "val": 2, "test": 2})
    entries.append(dict(entries[0]))
    root = dataset_factory(entries=entries)
    with pytest.raises(DatasetError, match=f"entry {len(entries) - 1} .*duplicate image entry "
                                           f"'{entries[0]['file_path']}' \\(first listed at entry 0\\)"):
        open_dataset(root)
    assert open_dataset(root, skip_bad=True).skipped == {"duplicate image entry": 1}


def test_missing_images_give_count_and_first_paths(dataset_factory):
    root = dataset_factory()
    entries = json.loads((root / "reid_raw.json").read_text())
    for e in entries[:3]:
        (root / "imgs" / e["file_path"]).unlink()
    with pytest.raises(DatasetError, match=f"3 of {len(entries)} listed images are missing .*"
                                           f"first: {entries[0]['file_path']}"):
        open_dataset(root)
    ds = open_dataset(root, skip_bad=True)
    assert ds.skipped == {"image missing": 3} and len(ds.records) == len(entries) - 3


def test_empty_split_is_a_clear_error(dataset_factory):
    ds = open_dataset(dataset_factory("icfg-pedes"))
    with pytest.raises(DatasetError, match="split 'val' is empty or absent .*train, test"):
        ds.split("val")


def test_label_map_is_contiguous_in_id_order(dataset_factory):
    ds = open_dataset(dataset_factory())
    labels = label_map(ds.split("train"))
    assert sorted(labels.values()) == list(range(3))
    assert list(labels) == sorted(labels)


def test_unreadable_image_is_reported_by_check(dataset_factory, capsys):
    from mia.cli.main import main

    root = dataset_factory()
    entries = json.loads((root / "reid_raw.json").read_text())
    (root / "imgs" / entries[2]["file_path"]).write_bytes(b"not an image")
    assert main(["data", "check", str(root)]) == 2
    assert (r"1 unreadable image file(s); first at entry 2 (id 2): "
            in capsys.readouterr().err)
    assert main(["data", "check", str(root), "--skip-bad", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unreadable_images"] == 1 and out["skipped"] == {"image unreadable": 1}
    assert out["splits"]["train"]["images"] == 5


def test_reading_writes_nothing_into_the_dataset(dataset_factory):
    root = dataset_factory()
    before = sorted(p for p in root.rglob("*"))
    open_dataset(root)
    assert sorted(p for p in root.rglob("*")) == before


def test_images_root_falls_back_to_the_dataset_dir(tmp_path):
    entries = make_entries("rstpreid", {"train": 1, "val": 1, "test": 1})
    write_dataset(tmp_path, "rstpreid", entries, images=False)
    for e in entries:
        write_image(tmp_path / e["img_path"])
    ds = open_dataset(tmp_path)
    assert ds.image_root == tmp_path and len(ds.records) == len(entries)


def test_a_person_in_two_splits_is_named_or_dropped_from_the_later_split(dataset_factory):
    entries = make_entries("cuhk-pedes", {"train": 3, "val": 2, "test": 2})
    leaked = next(e for e in entries if e["split"] == "val")
    first_train = next(i for i, e in enumerate(entries) if e["split"] == "train")
    leaked["id"] = entries[first_train]["id"]
    root = dataset_factory(entries=entries)
    index = entries.index(leaked)
    with pytest.raises(DatasetError, match=rf"entry {index} \(id {leaked['id']}\): field 'id': "
                       rf"person {leaked['id']} is in split 'val' and in 'train' "
                       rf"\(entry {first_train}\)"):
        open_dataset(root)
    ds = open_dataset(root, skip_bad=True)
    assert ds.skipped == {"person in more than one split": 1}
    assert {r.split for r in ds.records if r.person_id == leaked["id"]} == {"train"}
    assert len(ds.records) == len(entries) - 1


def test_weak_captions_are_read_and_checked(dataset_factory):
    entries = make_entries("cuhk-pedes", {"train": 3, "val": 2, "test": 2})
    entries[0]["weak"] = True
    root = dataset_factory(entries=entries, name="weak")
    records = open_dataset(root).records
    assert [r.weak for r in records[:2]] == [True, False]
    entries[1]["weak"] = "yes"
    root = dataset_factory(entries=entries, name="badweak")
    with pytest.raises(DatasetError, match=r"entry 1 \(id \d+\): field 'weak': expected true "
                                           r"or false, got 'yes'"):
        open_dataset(root)
