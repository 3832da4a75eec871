"""Galleries that outgrow memory: stage 1 on a vector database or in process, stage 2
from disk.

Writes a synthetic v4 index of G images (person-structured features as in
bench_search.py, float16, one segment: 41 KB per image at D = 1024, so 1,000,000 images
are 41 GB on disk) under --work. Stage 1 (top C by sG) is a Milvus collection filled by
`mia index sync` (by default a Milvus Lite server started as a separate process, as in
production; --embedded runs it inside this process) or, with --stage1, an in-process
backend (torch, faiss-ivf-sq8, ...: built once and, with --keep, reused). Queries go
through mia.retrieval.search.Searcher: stage 1, stage 2 (exact sF = sG + sR + 0.5 sL on
the C candidates, one record per candidate read from disk) and the explanations of the
top 10. Prints p50/p95 of stage 1, stage 2 and end to end per (nprobe, C), the share of
the exhaustive sF top-10 found (exhaustive scores streamed once over every image, in a
child process, for --recall-queries queries), resident memory of this process and of the
database server, and the time to add --add images (segment written to disk + database
insert + publication; encoding excluded) and for the searcher to take them.

    python benchmarks/bench_vectordb.py --images 100000 --clusters 1000 --drop-caches
    python benchmarks/bench_vectordb.py --images 1000000 --clusters 10000 --work /data/vdb \
        --stage1 faiss-ivf-sq8 --drop-caches --candidates 100 200 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import make_queries, rss_mb  # noqa: E402
from common import machine_line  # noqa: E402
from mia.retrieval import growth  # noqa: E402
from mia.retrieval.candidates import BACKENDS, CandidateIndex  # noqa: E402
from mia.retrieval.index import FORMAT, RECORD, GalleryIndex  # noqa: E402
from mia.retrieval.search import CACHED, Searcher  # noqa: E402
from mia.scoring.exact import score_all  # noqa: E402
from mia.utils.io import atomic_write_json  # noqa: E402

N_PARTS = 6


def write_segment(folder: Path, start: int, count: int, proto: torch.Tensor, seed: int,
                  chunk: int = 20000, progress: bool = True) -> None:
    """A complete one-segment index of synthetic features for ids start .. start+count-1:
    global = the person's prototype + noise; parts = global + noise drawn from a bank (so
    writing 38 GB costs the disk, not the random-number generator); unit keys."""
    gen = torch.Generator().manual_seed(seed)
    D = proto.shape[1]
    bank = torch.randn(8192, N_PARTS, D, generator=gen)
    keys = F.normalize(torch.randn(8192, N_PARTS, D, generator=gen), dim=-1).half()
    folder.mkdir(parents=True, exist_ok=True)
    n = N_PARTS
    shapes = {"global": (count, D), RECORD: (count, 1 + 3 * n, D)}
    files = {k: np.lib.format.open_memmap(folder / f"{k}.npy", "w+", np.float16, shape)
             for k, shape in shapes.items()}
    pids = torch.randint(0, len(proto), (count,), generator=gen)
    for s in tqdm(range(0, count, chunk), desc="writing features", disable=not progress):
        e = min(s + chunk, count)
        g = proto[pids[s:e]] + 0.8 * torch.randn(e - s, D, generator=gen)
        pick = torch.randint(0, len(bank), (e - s,), generator=gen)
        record = torch.cat([g.half()[:, None], (g[:, None] + bank[pick]).half(),  # I, parts
                            keys[(pick + 1) % len(keys)], keys[(pick + 2) % len(keys)]], 1)
        files["global"][s:e] = g.half().numpy()
        files[RECORD][s:e] = record.numpy()  # RGA and BFM keys last
    for f in files.values():
        f.flush()
    del files
    atomic_write_json(folder / "images.json", {
        "images": [f"cam/{start + i:08d}.jpg" for i in range(count)],
        "person_ids": pids.tolist()}, indent=None)
    atomic_write_json(folder / "manifest.json", {
        "format": FORMAT, "complete": True, "count": count, "dim": D, "parts": N_PARTS,
        "dtype": "float16", "image_root": "/nonexistent", "model": {}, "uid": f"bench{seed}",
        "generation": 0, "next_id": count, "removed": [],
        "segments": [{"folder": ".", "start": 0, "count": count}]})


def prototypes(people: int, dim: int, clusters: int, seed: int = 0) -> torch.Tensor:
    """One feature per person (3 images each). With ``clusters``, people share one of that
    many appearance groups (centre + 0.6 x noise per person), as real pedestrians share
    clothing; without, every person is an independent direction (no structure for an
    approximate index to use: its worst case)."""
    gen = torch.Generator().manual_seed(seed)
    people = max(people, 1)
    if not clusters:
        return torch.randn(people, dim, generator=gen)
    centres = torch.randn(clusters, dim, generator=gen)
    group = torch.randint(0, clusters, (people,), generator=gen)
    return centres[group] + 0.6 * torch.randn(people, dim, generator=gen)


def exhaustive_top10(index: GalleryIndex, txt, chunk: int = 16384) -> torch.Tensor:
    fused = []
    for s in tqdm(range(0, len(index), chunk), desc="exhaustive scores", leave=False):
        sc = score_all(index.embeddings(np.arange(s, min(s + chunk, len(index)))), txt,
                       keys=("sG", "sR", "sL"))
        fused.append(sc["sG"] + sc["sR"] + 0.5 * sc["sL"])
    return torch.topk(torch.cat(fused, 1), 10, dim=1).indices


def _exhaustive(index_dir: str, state: dict) -> torch.Tensor:
    from mia.model.embeddings import TextEmbeddings

    return exhaustive_top10(GalleryIndex.open(index_dir), TextEmbeddings(**state))


def exhaustive_in_child(index_dir: Path, txt) -> torch.Tensor:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_exhaustive, (str(index_dir), txt.state()))


def memory_of(pid: int | str = "self") -> str:
    """Resident memory: all, and its anonymous part (the file-backed rest is page cache of
    memory-mapped index files, which the kernel reclaims when memory is needed)."""
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return (f"{fields['VmRSS']:,.0f} MB resident ({fields['RssAnon']:,.0f} MB anonymous), "
            f"peak {fields['VmHWM']:,.0f} MB")


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir",
                               str(data_dir), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    raise RuntimeError("the Milvus Lite server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--work", help="a folder on the disk to measure (default: a temporary "
                        "folder, deleted afterwards)")
    parser.add_argument("--vector-index", default="IVF_FLAT", choices=("IVF_FLAT", "HNSW",
                                                                       "FLAT"))
    parser.add_argument("--nprobe", type=int, nargs="+",
                        help="IVF cells probed (HNSW: ef); several values: one table row each "
                        "(default: the backend's, 32 on Milvus, 128 for faiss-ivf-sq8)")
    parser.add_argument("--cells", type=int,
                        help="IVF cells of an in-process FAISS stage 1 (default 4 sqrt(G))")
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--clusters", type=int, default=0,
                        help="appearance groups of the synthetic people (0: none, the worst "
                        "case for an approximate index)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--recall-queries", type=int, default=50)
    parser.add_argument("--add", type=int, default=10_000, help="images added at the end")
    parser.add_argument("--stage1", default="milvus", choices=("milvus", *BACKENDS),
                        help="stage 1 on the database, or in this process (torch: exact; "
                        "faiss-ivf-sq8: inverted lists of 8-bit features)")
    parser.add_argument("--embedded", action="store_true",
                        help="Milvus Lite inside this process instead of a server process")
    parser.add_argument("--uri", help="an existing Milvus server instead of starting one")
    parser.add_argument("--port", type=int, default=19531, help="port of the started server")
    parser.add_argument("--keep", action="store_true",
                        help="reuse --work's index and collection if present")
    parser.add_argument("--drop-caches", action="store_true",
                        help="drop the kernel's page cache before each C (needs root): stage 2 "
                        "then reads the candidates' rows from the disk itself")
    parser.add_argument("--prepare-only", action="store_true",
                        help="write the index and fill the database, then stop (measure later "
                        "with --keep on a quiet machine)")
    args = parser.parse_args()
    print(machine_line())
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_vectordb-"))
    index_dir = work / "index"
    proto = prototypes(args.images // 3, args.dim, args.clusters)
    if not (args.keep and (index_dir / "manifest.json").is_file()):
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.perf_counter()
        write_segment(index_dir, 0, args.images, proto, seed=1)
        print(f"wrote {args.images:,} images x D={args.dim} ({disk_gb(index_dir):.1f} GB) "
              f"in {time.perf_counter() - t0:.0f} s")
    server = None
    if args.stage1 != "milvus":
        uri = None
    elif args.uri:
        uri = args.uri
    elif args.embedded:
        uri = "stage1.db"
    else:
        server, uri = start_server(work / "milvus", args.port)
    t0 = time.perf_counter()
    if uri is None:
        manifest = json.loads((index_dir / "manifest.json").read_text())
        if manifest.pop("stage1", None):  # this benchmark's own index: forget its database
            atomic_write_json(index_dir / "manifest.json", manifest)
        print(f"stage 1 in this process: {args.stage1}")
    elif args.keep and GalleryIndex.open(index_dir).manifest.get("stage1", {}).get("uri") \
            == uri:
        print("database collection reused")
    else:
        growth.sync(index_dir, uri, args.vector_index)
        print(f"database: {args.vector_index} collection of {args.images:,} images at {uri} "
              f"built in {time.perf_counter() - t0:.0f} s")
    if args.prepare_only:
        if server is not None:
            server.terminate()
        return

    index = GalleryIndex.open(index_dir)
    stub = SimpleNamespace(lambdas=(1.0, 0.5))  # a Retriever as far as search needs
    searcher = Searcher(index, stub, check=False, backend=args.stage1)
    queries = make_queries(proto, args.queries)
    del proto  # the benchmark's own data: not part of what the serving process holds
    base_rss = rss_mb()
    cache = work / f"{args.stage1}-{args.cells or 'default'}.faiss"
    if args.stage1 in CACHED and args.keep and cache.is_file():
        searcher._stage1 = CandidateIndex.load(cache, args.stage1, index.dim)
        searcher._stage1_ids = index.live.copy()
        print(f"stage 1 ({args.stage1}) read from {cache}, this process {memory_of()}")
    elif args.stage1 != "milvus":  # built before timing
        t0 = time.perf_counter()
        searcher._stage1 = CandidateIndex(index.rows("global"), args.stage1,
                                          cells=args.cells)
        searcher._stage1_ids = index.live.copy()
        print(f"stage 1 ({args.stage1}) built in {time.perf_counter() - t0:.1f} s, "
              f"this process {memory_of()}")
        if args.stage1 in CACHED:  # what a restart costs: reading the kept stage 1
            searcher._stage1.save(cache)
            t0 = time.perf_counter()
            CandidateIndex.load(cache, args.stage1, index.dim)
            print(f"a restart reads it from its cache ({cache.stat().st_size / 1e9:.2f} GB) "
                  f"in {time.perf_counter() - t0:.1f} s")
    phrases = [f"phrase {j}" for j in range(6)]
    R = min(args.recall_queries, args.queries)
    t0 = time.perf_counter()
    # the exhaustive pass reads every row: in another process, so the memory figures of
    # this one count only what search itself touches
    exact = exhaustive_in_child(index_dir, queries.select(slice(0, R))) if R else None
    if R:
        print(f"exhaustive sF top-10 of {R} queries: {time.perf_counter() - t0:.0f} s")
    print(f"\n{args.images:,} images, D={args.dim}, {args.clusters or 'no'} appearance groups, "
          f"stage 1 {args.vector_index if args.stage1 == 'milvus' else args.stage1}, "
          f"{args.queries} queries, page cache "
          f"{'dropped before each row (cold disk)' if args.drop_caches else 'as it comes'}")
    print("| nprobe / ef | C | stage 1 p50 / p95 ms | stage 2 p50 / p95 ms | "
          "end to end p50 / p95 ms | exhaustive top-10 found |")
    print("|---|---|---|---|---|---|")
    efforts = args.nprobe or [{"milvus": lambda: searcher.stage1.params,
                               "faiss-ivf": lambda: searcher.stage1.nprobe,
                               "faiss-ivf-sq8": lambda: searcher.stage1.nprobe,
                               "faiss-hnsw": lambda: searcher.stage1.ef_search}
                              .get(args.stage1, lambda: "-")()]
    for nprobe, C in [(p, c) for p in efforts for c in args.candidates]:
        if args.stage1 == "milvus":
            searcher.stage1.params = nprobe
        elif args.stage1.startswith("faiss") and args.stage1 != "faiss-flat":
            searcher.stage1.set_effort(nprobe)
        if args.drop_caches:
            drop_page_cache()
        s1, s2, total, found = [], [], [], []
        for q in range(args.queries):  # Searcher.search_embedding, timed stage by stage
            one = queries.select(slice(q, q + 1))
            t0 = time.perf_counter()
            ids = searcher._candidate_ids(one, C)
            t1 = time.perf_counter()
            scores = searcher.scores(one, ids)
            t2 = time.perf_counter()
            answer = searcher._rank(one, phrases, scores, ids, top_k=10)
            total.append(time.perf_counter() - t0)
            s1.append(t1 - t0)
            s2.append(t2 - t1)
            if q < R:
                got = {r["index"] for r in answer["results"]}
                found.append(len(got & set(exact[q].tolist())) / 10)
        cell = lambda v: "{:.1f} / {:.1f}".format(*np.percentile(np.array(v) * 1e3, [50, 95]))  # noqa: E731
        share = f"{100 * np.mean(found):.1f}%" if found else "-"
        print(f"| {nprobe} | {C} | {cell(s1)} | {cell(s2)} | {cell(total)} | {share} |",
              flush=True)
    print(f"\nmemory: this process {memory_of()} (after opening the index "
          f"{base_rss:,.0f} MB)" + (f"; database server {memory_of(server.pid)}"
                                     if server else ""))
    if args.add:
        start = index.manifest["next_id"]
        folder = f"segments/seg-{start:09d}"
        t0 = time.perf_counter()
        write_segment(index_dir / folder, start, args.add,
                      prototypes(args.images // 3, args.dim, args.clusters), seed=2,
                      progress=False)
        t1 = time.perf_counter()
        with growth.writer_lock(index_dir):
            growth.publish_segment(GalleryIndex.open(index_dir), folder)
        t2 = time.perf_counter()
        searcher.refresh()
        searcher.stage1  # noqa: B018 - what a search after the add waits for
        t3 = time.perf_counter()
        print(f"add {args.add:,} images: {t2 - t0:.1f} s (features to disk {t1 - t0:.1f} s, "
              f"database insert + publish {t2 - t1:.1f} s); the index now has "
              f"{len(searcher.index):,}; the searcher's reload took {t3 - t2:.1f} s")
        growth.remove_images(index_dir, [f"cam/{start + i:08d}.jpg" for i in range(args.add)])
        shutil.rmtree(index_dir / folder)  # a later --keep run starts from the same index
        manifest = json.loads((index_dir / "manifest.json").read_text())
        manifest.update(segments=manifest["segments"][:1], removed=[], next_id=start,
                        count=start)
        atomic_write_json(index_dir / "manifest.json", manifest)
    if server is not None:
        server.terminate()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def drop_page_cache() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


def disk_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9


if __name__ == "__main__":
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    main()
