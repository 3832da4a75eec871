"""Gallery index (atomic, resumable, safe to load) and search (explanations, bad queries)."""

import json
import os

import numpy as np
import pytest

import mia
from mia.cli.main import main
from mia.retrieval.index import GalleryIndex, IndexFileError
from mia.retrieval.search import QueryError, Searcher


def test_index_holds_every_test_image_once(index_dir, synth_dir):
    from mia.data.reader import open_dataset

    index = GalleryIndex.open(index_dir)
    test = open_dataset(synth_dir).split("test")
    assert index.images == [r.file_path for r in test]
    assert index.person_ids == [r.person_id for r in test]
    assert index.arrays["parts"].shape == (len(test), 6, 32)
    assert index.manifest["complete"] and index.manifest["dtype"] == "float16"
    assert not index_dir.with_name("index.partial").exists()


def test_index_features_equal_encoding_the_images(index_dir, trained_run, synth_dir):
    from mia.data.loading import ImageStore
    from mia.data.reader import open_dataset
    from mia.scoring.encode import encode_gallery

    trained = mia.load(trained_run[0]).trained
    ds = open_dataset(synth_dir)
    emb = encode_gallery(trained.model, ds.split("test")[:5], ImageStore(ds.image_root, (96, 32)))
    index = GalleryIndex.open(index_dir)
    np.testing.assert_allclose(index.arrays["rga_keys"][:5], emb.rga_keys.numpy(), atol=2e-3,
                               rtol=1e-2)


def test_interrupted_build_resumes_and_half_index_never_loads(trained_run, synth_dir,
                                                              tmp_path, monkeypatch):
    from mia.retrieval import index as index_module

    calls = {"n": 0}
    real = index_module.np.savez

    def crash_on_second_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(index_module.np, "savez", crash_on_second_shard)
    out = tmp_path / "idx"
    retriever = mia.load(trained_run[0])
    from mia.data.reader import open_dataset

    ds = open_dataset(synth_dir)
    images = [r.file_path for r in ds.split("test")]
    args = dict(source={}, shard_size=8, progress=False)
    with pytest.raises(KeyboardInterrupt):
        index_module.build_index(out, retriever, images, [None] * len(images),
                                 ds.image_root, **args)
    with pytest.raises(IndexFileError, match="unfinished build .*resume"):
        GalleryIndex.open(out)
    shards = sorted(p.name for p in (tmp_path / "idx.partial").glob("shard-*.npz"))
    assert shards == ["shard-000000.npz"]
    (tmp_path / "idx.partial/.shard-000001.npz.x1y2.tmp").write_bytes(b"killed mid-write")
    monkeypatch.setattr(index_module.np, "savez", real)
    encoded = []
    original = retriever.encode_pixels

    def counting(pixels):
        encoded.append(len(pixels))
        return original(pixels)

    monkeypatch.setattr(retriever, "encode_pixels", counting)
    index = index_module.build_index(out, retriever, images, [None] * len(images),
                                     ds.image_root, **args)
    assert sum(encoded) == len(images) - 8  # the finished shard was not encoded again
    assert len(index) == len(images) and not list(out.glob(".*.tmp"))


def test_overwrite_replaces_an_index_only_and_an_interrupted_swap_is_undone(
        index_dir, trained_run, synth_dir, tmp_path, caplog):
    import shutil

    from mia.data.reader import open_dataset
    from mia.retrieval import index as index_module
    from mia.utils.errors import MiaError

    retriever = mia.load(trained_run[0])
    ds = open_dataset(synth_dir)
    images = [r.file_path for r in ds.split("test")][:4]

    def build(out, root=ds.image_root):
        return index_module.build_index(out, retriever, images, [None] * len(images), root,
                                        source={}, progress=False, overwrite=True)

    folder = tmp_path / "notes"  # not an index: --overwrite must not delete it
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(MiaError, match="not a gallery index .*nothing was deleted"):
        build(folder)
    assert (folder / "keep.txt").read_text() == "mine"
    inside = tmp_path / "photos"  # an index whose images lie inside it
    shutil.copytree(index_dir, inside)
    shutil.copytree(ds.image_root, inside / "imgs")
    with pytest.raises(MiaError, match="inside --out"):
        build(inside, inside / "imgs")
    assert (inside / "imgs").is_dir()
    # stopped between moving the old index aside and moving the new one in
    out = tmp_path / "idx"
    shutil.copytree(index_dir, out.with_name("idx.old"))
    with caplog.at_level("WARNING", logger="mia.retrieval.index"):
        assert len(build(out)) == 4
    assert "restored from" in caplog.text and not out.with_name("idx.old").exists()


def test_overwrite_swaps_under_the_writer_lock_and_a_waiting_writer_locks_the_new_index(
        index_dir, trained_run, synth_dir, tmp_path):
    import fcntl
    import shutil
    import threading
    import time

    from mia.data.reader import open_dataset
    from mia.retrieval.index import build_index, writer_lock

    retriever = mia.load(trained_run[0])
    ds = open_dataset(synth_dir)
    images = [r.file_path for r in ds.split("test")][:4]
    out = tmp_path / "idx"
    shutil.copytree(index_dir, out)
    uid = json.loads((out / "manifest.json").read_text())["uid"]
    held, seen = threading.Event(), {}

    def writer():  # an add/remove/sync holding the lock while the build reaches its swap
        with writer_lock(out):
            held.set()
            deadline = time.monotonic() + 120
            while (not (tmp_path / "idx.partial" / "manifest.json").is_file()
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            time.sleep(0.5)
            seen["uid"] = json.loads((out / "manifest.json").read_text())["uid"]

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert held.wait(30)
        build_index(out, retriever, images, [None] * 4, ds.image_root, source={},
                    progress=False, overwrite=True)
    finally:
        thread.join(150)
    assert seen["uid"] == uid  # the old index stayed in place while its writer ran
    assert json.loads((out / "manifest.json").read_text())["uid"] != uid
    assert len(GalleryIndex.open(out)) == 4

    # a writer waiting on the lock of an index that is swapped out locks the new one
    got, checked = threading.Event(), threading.Event()

    def waiting_writer():
        with writer_lock(out):
            got.set()
            checked.wait(30)

    thread = threading.Thread(target=waiting_writer, daemon=True)
    try:
        with writer_lock(out):
            thread.start()
            time.sleep(0.3)
            assert not got.is_set()
            os.replace(out, tmp_path / "idx.old")
            shutil.copytree(index_dir, out)
        assert got.wait(30)
        with open(out / ".lock", "a") as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        checked.set()
        thread.join(30)


def test_corrupt_or_foreign_index_is_a_clear_error(index_dir, trained_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    (copy / "global.npy").write_bytes(b"garbage")
    with pytest.raises(IndexFileError, match="unreadable or corrupt index"):
        GalleryIndex.open(copy)
    shutil.copytree(index_dir, tmp_path / "other")
    manifest = json.loads((tmp_path / "other/manifest.json").read_text())
    manifest["model"]["model_config"]["embed_dim"] = 64
    manifest["model"]["vocab_fingerprint"] = "0000"
    (tmp_path / "other/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFileError, match="built by another model: model.embed_dim: index "
                                             "64, model 32; vocabulary: index 0000"):
        Searcher(GalleryIndex.open(tmp_path / "other"), mia.load(trained_run[0]))


def test_index_is_loaded_without_pickle(index_dir, tmp_path):
    import shutil

    copy = tmp_path / "pickled"
    shutil.copytree(index_dir, copy)
    np.save(copy / "features.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(IndexFileError, match="corrupt"):
        GalleryIndex.open(copy)


@pytest.fixture(scope="module")
def searcher(index_dir, trained_run):
    return Searcher(GalleryIndex.open(index_dir), mia.load(trained_run[0]))


def test_search_ranks_by_fused_score_and_explains(searcher):
    answer = searcher.search("A woman in a red t-shirt with a black backpack.", top_k=5)
    assert answer["phrases"] == ["a woman", "a red t-shirt", "a black backpack"]
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    for r in answer["results"]:
        assert r["score"] == pytest.approx(r["sG"] + 1.0 * r["sR"] + 0.5 * r["sL"], abs=1e-4)
        assert len(r["stripes"]) == 6 and sum(r["stripes"]) == pytest.approx(1, abs=1e-3)
        assert set(r["phrase_to_stripe"]) == set(answer["phrases"])
        assert all(0 <= s < 6 for s in r["phrase_to_stripe"].values())


def test_two_stage_search_ranks_the_best_sg_candidates_by_exact_fusion(searcher):
    import torch

    q = "a man in a blue jacket and grey trousers"
    txt = searcher.encode(q)[0]
    exact = searcher.scores(txt, None)  # every image, exact sG, sR, sL, sF
    for C in (2, 4):
        staged = searcher.search(q, top_k=3, candidates=C)
        assert staged["candidates"] == C
        pool = torch.topk(exact["sG"][0], C).indices  # stage 1: the C best by sG
        want = pool[torch.argsort(exact["sF"][0, pool], descending=True)][:3].tolist()
        assert [r["index"] for r in staged["results"]] == want


@pytest.mark.parametrize("query, message", [
    ("", "the query is empty"),
    ("   \n", "the query is empty"),
    ("穿红色衣服的女人", "no words the model can read"),
])
def test_unusable_queries_are_clear_errors(searcher, query, message):
    with pytest.raises(QueryError, match=message):
        searcher.search(query)


def test_unknown_and_overlong_queries_return_results_with_warnings(searcher):
    answer = searcher.search("zyzzyva quuxbar")
    assert answer["results"] and "none of the query's words" in answer["warnings"][0]
    long = searcher.search("a man in a red shirt " * 2000)
    assert len(long["query"]) > 10000 and long["results"]
    assert any("only the first 120 are used" in w for w in long["warnings"])


def test_search_cli_json(index_dir, capsys):
    assert main(["search", str(index_dir), "a woman with a backpack", "--top", "3",
                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert set(answer) >= {"query", "phrases", "results"}
    assert {"rank", "image", "score", "sG", "sR", "sL", "stripes", "phrase_to_stripe"} <= set(
        answer["results"][0])
    assert main(["search", str(index_dir), "  "]) == 2


def test_search_many_equals_one_by_one_and_isolates_bad_queries(searcher):
    texts = ["a man in a blue jacket", "  ", "a woman with long brown hair and a red bag"]
    many = searcher.search_many(texts, top_k=4)
    assert isinstance(many[1], QueryError)
    for text, answer in zip(texts[::2], many[::2]):
        one = searcher.search(text, top_k=4)
        assert [r["index"] for r in answer["results"]] == [r["index"] for r in one["results"]]
        for a, b in zip(answer["results"], one["results"]):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
            assert a["phrase_to_stripe"] == b["phrase_to_stripe"]
