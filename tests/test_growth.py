"""A growing index: add, remove, crash safety, the vector-database stage 1, live reload."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mia
from mia.cli.main import main
from mia.retrieval import growth
from mia.retrieval.index import GalleryIndex, build_index
from mia.retrieval.search import Searcher
from mia.retrieval.vectordb import VectorDB, VectorDBError


@pytest.fixture(autouse=True)
def stop_lite_servers():
    """Milvus Lite runs its server in threads of this process: stop them after each test,
    so none logs into a later test's captured output."""
    yield
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_all()
    from mia.retrieval import vectordb

    for handle in vectordb._LITE_LOCKS.values():
        handle.close()
    vectordb._LITE_LOCKS.clear()


@pytest.fixture
def grown(index_dir, tmp_path):
    """A copy of the test-split index (the session's index stays untouched)."""
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    return copy


def split_paths(synth_dir, split):
    from mia.data.reader import open_dataset

    return [r.file_path for r in open_dataset(synth_dir).split(split)]


def ranked(searcher, query, candidates=None):
    answer = searcher.search(query, top_k=1000, candidates=candidates)
    return [(r["image"], round(r["score"], 4)) for r in answer["results"]]


def test_added_split_ranks_exactly_like_one_build_of_both(grown, trained_run, synth_dir,
                                                          tmp_path, capsys):
    assert main(["index", "add", str(grown), "--data", str(synth_dir), "--split", "val",
                 "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    test, val = split_paths(synth_dir, "test"), split_paths(synth_dir, "val")
    assert report["added"] == len(val) and report["gallery"] == len(test) + len(val)
    index = GalleryIndex.open(grown)
    assert index.images == test + val and index.generation == 1
    assert len(index.segments) == 2

    retriever = mia.load(trained_run[0])
    from mia.data.reader import open_dataset

    ds = open_dataset(synth_dir)
    both = build_index(tmp_path / "both", retriever, test + val,
                       [r.person_id for r in ds.split("test") + ds.split("val")],
                       ds.image_root, source={}, progress=False)
    np.testing.assert_array_equal(index.rows("parts"), both.rows("parts"))
    query = ds.split("val")[0].captions[0]
    assert ranked(Searcher(index, retriever), query) == ranked(Searcher(both, retriever), query)

    # the same split again: nothing added, every image reported as already indexed
    assert main(["index", "add", str(grown), "--data", str(synth_dir), "--split", "val",
                 "--no-progress", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["added"] == 0 and sorted(again["already_indexed"]) == sorted(val)
    assert GalleryIndex.open(grown).generation == 1


def test_removed_images_never_come_back(grown, trained_run, synth_dir, capsys):
    test = split_paths(synth_dir, "test")
    index = GalleryIndex.open(grown)
    gone = [test[0], str(index.image_root.resolve() / test[3])]  # relative and absolute
    assert main(["index", "remove", str(grown), *gone, "no/such.jpg", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"removed": 2, "not_in_index": ["no/such.jpg"]}
    after = GalleryIndex.open(grown)
    assert len(after) == len(test) - 2 and test[0] not in after.images
    assert after.images == [p for p in test if p not in (test[0], test[3])]
    np.testing.assert_array_equal(after.rows("global", [0]), index.rows("global", [1]))
    searcher = Searcher(after, mia.load(trained_run[0]))
    for candidates in (None, 5):
        found = {r["image"] for r in searcher.search("a person", 1000, candidates)["results"]}
        assert test[0] not in found and test[3] not in found
    assert main(["index", "remove", str(grown), test[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 0


def test_crash_during_add_leaves_previous_index_and_next_add_works(grown, trained_run,
                                                                   synth_dir, monkeypatch):
    before = GalleryIndex.open(grown)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(growth, "_publish", crash)
    retriever = mia.load(trained_run[0])
    val = split_paths(synth_dir, "val")
    with pytest.raises(KeyboardInterrupt):
        growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    still = GalleryIndex.open(grown)
    assert still.images == before.images and still.generation == before.generation
    monkeypatch.undo()
    report = growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    assert report["added"] == len(val)
    assert GalleryIndex.open(grown).images == before.images + val


def test_add_refuses_images_outside_the_photo_folder(grown, tmp_path, capsys):
    assert main(["index", "add", str(grown), "--images", str(tmp_path)]) == 2
    assert "not inside the index's photo folder" in capsys.readouterr().err


@pytest.mark.vectordb
def test_vector_database_stage1_agrees_with_exact_stage1(grown, trained_run, synth_dir,
                                                         capsys):
    pytest.importorskip("pymilvus", reason="needs the vectordb extra")
    assert main(["index", "sync", str(grown), "--vector-index", "FLAT", "--no-progress",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    index = GalleryIndex.open(grown)
    assert report["rows"] == len(index) and index.manifest["stage1"]["uri"] == "stage1.db"
    retriever = mia.load(trained_run[0])
    query = "a man in a red shirt"
    db_search = Searcher(index, retriever)
    assert db_search.backend == "milvus"
    exact = Searcher(index, retriever, backend="torch")
    assert ranked(db_search, query, 7) == ranked(exact, query, 7)

    # grow and shrink with the database: it follows, and results never name removed ids
    val = split_paths(synth_dir, "val")
    growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    growth.remove_images(grown, [val[0]])
    assert db_search.refresh()
    assert db_search.stage1.count() == len(db_search.index) == len(index) + len(val) - 1
    assert ranked(db_search, query, 9) == ranked(Searcher(db_search.index, retriever,
                                                           backend="torch"), query, 9)
    found = {r["image"] for r in db_search.search(query, 100, len(db_search.index) - 1)
             ["results"]}
    assert val[0] not in found and val[1] in found


@pytest.mark.vectordb
def test_database_rows_of_an_unpublished_add_are_dropped_then_cleaned(grown, trained_run,
                                                                      synth_dir, monkeypatch):
    pytest.importorskip("pymilvus", reason="needs the vectordb extra")
    growth.sync(grown, progress=False)
    retriever = mia.load(trained_run[0])
    val = split_paths(synth_dir, "val")
    monkeypatch.setattr(growth, "_publish", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # inserted into the database, never published
        growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    monkeypatch.undo()
    index = GalleryIndex.open(grown)
    searcher = Searcher(index, retriever)  # tolerated: the extra ids are not the index's
    assert searcher.stage1.count() == len(index) + len(val)
    found = {r["image"] for r in searcher.search("a person", 100, len(index) - 1)["results"]}
    assert found and found <= set(index.images)
    growth.add_images(grown, retriever, val[:2], [None, None], progress=False)
    assert searcher.refresh() and searcher.stage1.count() == len(index) + 2


@pytest.mark.vectordb
def test_database_missing_rows_is_a_clear_error(grown, trained_run):
    pytest.importorskip("pymilvus", reason="needs the vectordb extra")
    growth.sync(grown, progress=False)
    index = GalleryIndex.open(grown)
    db = growth.stage1_db(index)
    db.delete([int(index.live[0]), int(index.live[1])])
    with pytest.raises(VectorDBError, match=rf"holds {len(index) - 2} of the images.*has "
                                            rf"{len(index)}.*mia index sync"):
        Searcher(index, mia.load(trained_run[0]))
    growth.sync(grown, progress=False)  # the repair
    assert growth.stage1_db(GalleryIndex.open(grown)).count() == len(index)


@pytest.mark.vectordb
def test_unreachable_database_and_busy_lite_file_are_clear_errors(tmp_path, trained_run,
                                                                  synth_dir, capsys):
    pytest.importorskip("pymilvus", reason="needs the vectordb extra")
    with pytest.raises(VectorDBError, match="cannot reach the vector database at "
                                            "http://127.0.0.1:9"):
        VectorDB("http://127.0.0.1:9", "c").exists()
    # index build --vector-db: the database is checked before any image is encoded
    out = tmp_path / "never"
    assert main(["index", "build", "--run", str(trained_run[0]), "--data", str(synth_dir),
                 "--split", "test", "--out", str(out), "--vector-db", "http://127.0.0.1:9",
                 "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "cannot reach the vector database at http://127.0.0.1:9" in err
    assert "Traceback" not in err and not out.exists() and not out.with_name("never.partial").exists()
    lite = str(tmp_path / "busy.db")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; h = open(sys.argv[1] + '.lock', 'a'); "
        "fcntl.flock(h, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"), lite],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(VectorDBError, match="in use by another process"):
            VectorDB(lite, "c")
    finally:
        holder.kill()


def test_serve_picks_up_additions_and_removals_without_restart(grown, trained_run, synth_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mia.serving.app import create_app

    client = TestClient(create_app(grown))
    test, val = split_paths(synth_dir, "test"), split_paths(synth_dir, "val")
    assert client.get("/api/health").json()["gallery"] == len(test)
    assert client.get(f"/gallery/{val[0]}").status_code == 404
    growth.add_images(grown, mia.load(trained_run[0]), val, [None] * len(val), progress=False)
    health = client.get("/api/health").json()
    assert health["gallery"] == len(test) + len(val) and health["generation"] == 1
    assert client.get(f"/gallery/{val[0]}").status_code == 200
    found = {r["image"] for r in client.get("/api/search", params={"q": "a person",
                                                                   "top": 100}).json()["results"]}
    assert set(val) <= found
    growth.remove_images(grown, [val[0], test[0]])
    assert client.get(f"/gallery/{val[0]}").status_code == 404
    found = {r["image"] for r in client.get("/api/search", params={"q": "a person",
                                                                   "top": 100}).json()["results"]}
    assert val[0] not in found and test[0] not in found and val[1] in found


def test_a_v2_index_opens_searches_and_grows_into_v4(grown, trained_run, synth_dir):
    """A v2 index (one segment, parts and keys in three files) reads, ranks and grows;
    its new segment has the v4 layout and both kinds read together."""
    retriever = mia.load(trained_run[0])
    query = "a man in a blue shirt"
    before = ranked(Searcher(GalleryIndex.open(grown), retriever), query)
    record = np.load(grown / "features.npy")  # [G, 1 + 3n, D]
    n = (record.shape[1] - 1) // 3
    for j, name in enumerate(("parts", "rga_keys", "bfm_keys")):
        np.save(grown / f"{name}.npy", record[:, 1 + j * n:1 + (j + 1) * n])
    (grown / "features.npy").unlink()
    manifest = json.loads((grown / "manifest.json").read_text())
    for key in ("segments", "next_id", "removed", "uid", "generation"):
        manifest.pop(key)
    (grown / "manifest.json").write_text(json.dumps({**manifest, "format": "mia-index-v2"}))
    old = GalleryIndex.open(grown)
    assert len(old) == manifest["count"] and old.generation == 0
    assert "features" not in old.segments[0].arrays
    assert ranked(Searcher(old, retriever), query) == before
    val = split_paths(synth_dir, "val")
    growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    new = GalleryIndex.open(grown)
    assert new.manifest["format"] == "mia-index-v4" and new.images == old.images + val
    assert "features" in new.segments[1].arrays
    mixed = new.embeddings(np.array([len(new) - 1, 0, 1]))  # one row of each layout
    np.testing.assert_array_equal(mixed.parts[1:].numpy(), record[:2, 1:1 + n].astype(np.float32))
    both = ranked(Searcher(new, retriever), query)  # scored over both layouts
    assert [r for r in both if r[0] not in set(val)] == before


def test_api_and_cli_add_a_new_photo_folder_once(grown, trained_run, synth_dir, capsys):
    index = GalleryIndex.open(grown)
    new = index.image_root / "new_camera"
    new.mkdir()
    shutil.copy(index.image_root / split_paths(synth_dir, "val")[0], new / "p1.jpg")
    report = mia.load(trained_run[0]).add_to_index(grown, new)
    assert report["added"] == 1 and GalleryIndex.open(grown).images[-1] == "new_camera/p1.jpg"
    assert main(["index", "add", str(grown), "--images", str(new), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "added 0 images" in out and "1 already in the index, first: new_camera/p1.jpg" in out
    shutil.rmtree(new)


@pytest.mark.vectordb
def test_unreachable_database_fails_search_at_start_and_health_while_serving(
        grown, monkeypatch, capsys):
    pytest.importorskip("pymilvus", reason="needs the vectordb extra")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mia.serving.app import create_app

    growth.sync(grown, progress=False)
    client = TestClient(create_app(grown))
    assert client.get("/api/health").json()["stage1"] == "milvus"

    def down(self, below=None):
        raise VectorDBError("cannot reach the vector database at http://db:19530: refused")

    monkeypatch.setattr(VectorDB, "count", down)
    health = client.get("/api/health")
    assert health.status_code == 503 and "cannot reach the vector database" in \
        health.json()["detail"]
    monkeypatch.undo()

    manifest = json.loads((grown / "manifest.json").read_text())
    manifest["stage1"]["uri"] = "http://127.0.0.1:9"
    (grown / "manifest.json").write_text(json.dumps(manifest))
    assert main(["search", str(grown), "a man in a red shirt"]) == 2
    # (earlier CLI calls in this process may leave log handlers on closed captures: only
    # the command's own output, its last line, is this test's business)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach the vector database at http://127.0.0.1:9")


def test_sparse_row_reads_from_disk_equal_the_arrays(tmp_path, monkeypatch):
    """Small gathers are read with pread per run of rows (no read-ahead around every
    row); they return what indexing the arrays would, across segments and removals."""
    from mia.retrieval import index as index_mod
    from mia.retrieval.index import IndexFileError, Segment, _gather, _load_mapped

    rng = np.random.default_rng(0)
    parts = rng.normal(size=(40, 3, 4)).astype(np.float16)
    np.save(tmp_path / "p.npy", parts)
    mapped = _load_mapped(tmp_path / "p.npy", mmap=True)
    rows = np.array([0, 1, 2, 9, 20, 21, 39])
    monkeypatch.setattr(index_mod, "SPARSE", 1.0)  # always the pread path
    np.testing.assert_array_equal(_gather(mapped, rows), parts[rows])
    assert _gather(mapped, rows[:0]).shape == (0, 3, 4)

    # two v4 segments (global [G, D], features [G, 1 + 3n, D]) over views of one file each
    record = rng.normal(size=(40, 1 + 3 * 3, 4)).astype(np.float16)  # n = 3 parts
    np.save(tmp_path / "f.npy", record)
    np.save(tmp_path / "g.npy", record[:, 0])
    fm, gm = _load_mapped(tmp_path / "f.npy", True), _load_mapped(tmp_path / "g.npy", True)
    halves = [Segment(".", 0, {"global": gm[:20], "features": fm[:20]},
                      [f"a{i}" for i in range(20)], [None] * 20),
              Segment("s1", 20, {"global": gm[20:], "features": fm[20:]},
                      [f"b{i}" for i in range(20)], [None] * 20)]
    for half in halves:
        half.arrays["parts"] = half.arrays["features"][:, 1:4]
    index = GalleryIndex(None, {}, tmp_path, halves, removed=[3, 25])
    live = np.delete(np.arange(40), [3, 25])
    positions = np.array([30, 0, 4, 24, 5])  # unordered, across both segments
    np.testing.assert_array_equal(index.rows("features", positions), record[live[positions]])
    np.testing.assert_array_equal(index.rows("bfm_keys", positions), record[live[positions], 7:])
    np.testing.assert_array_equal(index.rows("global", positions), record[live[positions], 0])
    emb = index.embeddings(positions)
    np.testing.assert_array_equal(emb.rga_keys.numpy(), record[live[positions], 4:7])

    with open(tmp_path / "p.npy", "r+b") as f:  # the file lost its tail after opening
        f.truncate(128 + 30 * parts[0].nbytes)
    with pytest.raises(IndexFileError, match="p.npy: truncated"):
        _gather(mapped, np.array([35]))
    monkeypatch.setattr(index_mod, "READ_THREADS", 1)  # many runs: the reader threads
    np.testing.assert_array_equal(_gather(mapped, np.arange(0, 30, 2)), parts[0:30:2])

    # a file replaced under an open index (rebuilt in place): reads stay on the old file
    np.save(tmp_path / "p2.npy", parts)
    old = _load_mapped(tmp_path / "p2.npy", True)
    np.save(tmp_path / "p3.npy", parts[::-1] + 1)
    os.replace(tmp_path / "p3.npy", tmp_path / "p2.npy")  # as a rebuild swaps folders in
    np.testing.assert_array_equal(_gather(old, rows), parts[rows])


def test_in_process_stage1_takes_only_the_added_rows_on_reload(grown, trained_run, synth_dir):
    retriever = mia.load(trained_run[0])
    test, val = split_paths(synth_dir, "test"), split_paths(synth_dir, "val")
    searcher = Searcher(GalleryIndex.open(grown), retriever, backend="torch")
    first = searcher.stage1
    growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    assert searcher.refresh()
    assert searcher.stage1 is first and len(first) == len(test) + len(val)  # grown in place
    fresh = Searcher(GalleryIndex.open(grown), retriever, backend="torch")
    query = "a woman in a red coat"
    assert ranked(searcher, query, 8) == ranked(fresh, query, 8)
    top = ranked(fresh, query, 8)
    growth.remove_images(grown, [top[0][0]])  # the best image goes: its row stays, unused
    assert searcher.refresh() and searcher.stage1 is first
    assert len(first) == len(test) + len(val)
    rebuilt = Searcher(GalleryIndex.open(grown), retriever, backend="torch")
    assert ranked(searcher, query, 8) == ranked(rebuilt, query, 8)
    assert top[0][0] not in {image for image, _ in ranked(searcher, query, 8)}
    gone = [p for p in test + val if p != top[0][0]][:len(test) // 3]  # over STALE: rebuilt
    growth.remove_images(grown, gone)
    assert searcher.refresh() and searcher.stage1 is not first
    assert len(searcher.stage1) == len(test) + len(val) - 1 - len(gone)
    assert ranked(searcher, query, 8) == ranked(Searcher(GalleryIndex.open(grown), retriever,
                                                         backend="torch"), query, 8)


def test_faiss_stage1_is_kept_beside_the_index_and_follows_its_changes(
        grown, trained_run, synth_dir, monkeypatch, caplog):
    pytest.importorskip("faiss")
    from mia.retrieval.candidates import CandidateIndex

    retriever = mia.load(trained_run[0])
    query = "a woman in a red coat"
    first = Searcher(GalleryIndex.open(grown), retriever, backend="faiss-ivf-sq8")
    expected = ranked(first, query, 8)
    uid = GalleryIndex.open(grown).manifest["uid"]
    cache = grown / ".stage1" / f"faiss-ivf-sq8-{uid}-g0.faiss"
    assert cache.is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("stage 1 built again instead of read from its cache")

    with monkeypatch.context() as m:  # a second server start reads it, so does the API
        m.setattr(CandidateIndex, "__init__", no_build)
        assert ranked(Searcher(GalleryIndex.open(grown), retriever,
                               backend="faiss-ivf-sq8"), query, 8) == expected
        answer = retriever.search(grown, query, k=1000, candidates=8, backend="faiss-ivf-sq8")
        assert [(r["image"], round(r["score"], 4)) for r in answer["results"]] == expected
    val = split_paths(synth_dir, "val")
    growth.add_images(grown, retriever, val, [None] * len(val), progress=False)
    assert first.refresh() and len(first.stage1) == len(first.index)  # grown in place
    growth.remove_images(grown, [val[0]])  # its row stays in the kept stage 1, unused
    assert first.refresh() and len(first.stage1) == len(first.index) + 1
    kept = sorted(p.name for p in (grown / ".stage1").iterdir())
    assert kept == [f"faiss-ivf-sq8-{uid}-g0.faiss", f"faiss-ivf-sq8-{uid}-g0.ids.npy"]
    with monkeypatch.context() as m:  # a restart reads generation 0's and catches up
        m.setattr(CandidateIndex, "__init__", no_build)
        restarted = Searcher(GalleryIndex.open(grown), retriever, backend="faiss-ivf-sq8")
        assert ranked(restarted, query, 8) == ranked(first, query, 8)
        assert val[0] not in {image for image, _ in ranked(restarted, query, len(val))}
        assert sorted(p.name for p in (grown / ".stage1").iterdir()) == kept  # not rewritten
    (grown / ".stage1" / kept[0]).write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="mia.retrieval.search"):
        again = Searcher(GalleryIndex.open(grown), retriever, backend="faiss-ivf-sq8")
        assert len(again.stage1) == len(again.index)  # a broken cache is built again
    assert "unreadable stage-1 cache" in caplog.text
    assert sorted(p.name for p in (grown / ".stage1").iterdir()) == \
        [f"faiss-ivf-sq8-{uid}-g2.faiss", f"faiss-ivf-sq8-{uid}-g2.ids.npy"]  # older dropped

    # the index rebuilt in place (a new uid, ids from 0 again): never the old stage 1
    old_stage1 = first.stage1
    shuffled = list(reversed(split_paths(synth_dir, "test") + val))  # as many rows, no dead
    build_index(grown, retriever, shuffled, [None] * len(shuffled), first.index.image_root,
                source={}, progress=False, overwrite=True)
    assert first.refresh() and first.stage1 is not old_stage1
    assert ranked(first, query, 8) == ranked(Searcher(GalleryIndex.open(grown), retriever,
                                                      backend="faiss-ivf-sq8"), query, 8)
