"""Large-gallery search: latency per query, memory, and agreement with exhaustive ranking.

Synthetic features (person-structured, see common.py) held as float16 arrays in memory:
100,000 images at D = 1024 and 1,000,000 images at D = 256 (1M x 1024 would not fit this
machine's 24 GB with parts and keys). Per query: stage 1 (top-C images by sG from the
global features), stage 2 (exact sF = sG + sR + 0.5 sL on the C candidates) and the
explanations of the top 10. At 100,000 images the two-stage top-10 is compared with the
exhaustive fused top-10 over all images.

    python benchmarks/bench_search.py [--sizes 100000 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, timeit  # noqa: E402
from mia.model.embeddings import TextEmbeddings  # noqa: E402
from mia.retrieval.index import GalleryIndex  # noqa: E402
from mia.retrieval.search import Searcher  # noqa: E402
from mia.scoring.exact import score_all  # noqa: E402


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_gallery(G: int, D: int, n: int = 6, seed: int = 0, chunk: int = 50000):
    """float16 arrays: global [G, D], parts / rga_keys / bfm_keys [G, n, D]; person ids."""
    gen = torch.Generator().manual_seed(seed)
    people = max(G // 3, 1)
    proto = torch.randn(people, D, generator=gen)
    pids = torch.randint(0, people, (G,), generator=gen)
    arrays = {"global": np.empty((G, D), np.float16)}
    for name in ("parts", "rga_keys", "bfm_keys"):
        arrays[name] = np.empty((G, n, D), np.float16)
    for s in range(0, G, chunk):
        e = min(s + chunk, G)
        g = proto[pids[s:e]] + 0.8 * torch.randn(e - s, D, generator=gen)
        arrays["global"][s:e] = g.half().numpy()
        arrays["parts"][s:e] = (g[:, None] + torch.randn(e - s, n, D, generator=gen)).half()
        for name in ("rga_keys", "bfm_keys"):
            keys = F.normalize(torch.randn(e - s, n, D, generator=gen), dim=-1)  # scale-1 keys
            arrays[name][s:e] = keys.half().numpy()
    return arrays, proto, pids


def make_queries(proto: torch.Tensor, count: int, m: int = 6, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    D = proto.shape[1]
    who = torch.randint(0, len(proto), (count,), generator=gen)
    T = proto[who] + 0.8 * torch.randn(count, D, generator=gen)
    N = T[:, None] + torch.randn(count, m, D, generator=gen)
    return TextEmbeddings(T, N, torch.ones(count, m, dtype=torch.bool),
                          F.normalize(torch.randn(count, m, D, generator=gen), dim=-1),
                          F.normalize(torch.randn(count, m, D, generator=gen), dim=-1))


def exhaustive_top10(index: GalleryIndex, txt: TextEmbeddings, chunk: int = 8192):
    fused = []
    for s in range(0, len(index), chunk):
        img = index.embeddings(np.arange(s, min(s + chunk, len(index))))
        sc = score_all(img, txt)
        fused.append(sc["sG"] + sc["sR"] + 0.5 * sc["sL"])
    return torch.topk(torch.cat(fused, 1), 10, dim=1).indices


def run_size(G: int, D: int, args) -> None:
    base = rss_mb()
    started = time.perf_counter()
    arrays, proto, pids = make_gallery(G, D)
    index = GalleryIndex.from_arrays(arrays, [f"{i}.jpg" for i in range(G)], pids.tolist())
    stub = SimpleNamespace(lambdas=(1.0, 0.5))  # a Retriever as far as search needs
    queries = make_queries(proto, args.queries)
    phrases = [f"phrase {j}" for j in range(6)]
    print(f"\n{G:,} images, D={D}, n=6, float16 features: {rss_mb() - base:,.0f} MB "
          f"(built in {time.perf_counter() - started:.0f} s)")
    exact = None
    if G <= args.agreement_up_to:
        t0 = time.perf_counter()
        exact = exhaustive_top10(index, queries.select(slice(0, args.agreement_queries)))
        print(f"exhaustive fused top-10 for {args.agreement_queries} queries: "
              f"{(time.perf_counter() - t0) / args.agreement_queries * 1000:.0f} ms per query")
    for backend in args.backends:
        searcher = Searcher(index, stub, candidates=None, backend=backend, check=False)
        t0 = time.perf_counter()
        searcher.stage1  # noqa: B018  (builds the candidate index)
        built = time.perf_counter() - t0
        print(f"stage 1 backend {backend} (built in {built:.1f} s, RSS now {rss_mb():,.0f} MB)")
        print(f"{'C':>6} {'p50 ms':>8} {'p95 ms':>8} {'top-10 recall':>14} "
              f"{'stage 1 alone p50 ms':>21}")
        for C in args.candidates:
            lat, recalls, stage1 = [], [], []
            for q in range(args.queries):
                one = queries.select(slice(q, q + 1))
                t0 = time.perf_counter()
                searcher.stage1.search(F.normalize(one.global_.float(), dim=-1), C)
                stage1.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                found = searcher.search_embedding(one, phrases, top_k=10, candidates=C)
                lat.append(time.perf_counter() - t0)
                if exact is not None and q < args.agreement_queries:
                    got = {r["index"] for r in found["results"]}
                    recalls.append(len(got & set(exact[q].tolist())) / 10)
            p50, p95 = np.percentile(np.array(lat) * 1000, [50, 95])
            recall = f"{100 * np.mean(recalls):.1f}%" if recalls else "-"
            print(f"{C:>6} {p50:>8.1f} {p95:>8.1f} {recall:>14} "
                  f"{np.percentile(np.array(stage1) * 1000, 50):>21.1f}")
    print(f"peak RSS of this process so far: {peak_rss_mb():,.0f} MB")


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def text_encoding_latency() -> float:
    from mia.model.text_encoder import TextEncoder

    enc = TextEncoder(vocab_size=5000, word_dim=300, hidden=1024, embed_dim=1024).eval()
    tokens = torch.randint(2, 5000, (1, 25))
    starts = torch.arange(0, 18, 3)[None]  # six 3-word phrases
    lengths = torch.full((1, 6), 3)
    with torch.no_grad():
        return timeit(lambda: enc(tokens, torch.tensor([25]), starts, lengths, lengths > 0),
                      repeat=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100000, 1000000])
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 256])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument("--backends", nargs="+", default=["torch", "faiss-ivf"])
    parser.add_argument("--agreement-up-to", type=int, default=100000)
    parser.add_argument("--agreement-queries", type=int, default=100)
    args = parser.parse_args()
    try:
        import faiss  # noqa: F401
    except ImportError:
        args.backends = [b for b in args.backends if not b.startswith("faiss")]
        print("faiss not installed: torch backend only (pip install faiss-cpu)")
    print(machine_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; text encoding of "
          f"one 25-word query (paper dims, H=1024): {1000 * text_encoding_latency():.1f} ms "
          "(not included below)")
    for G, D in zip(args.sizes, args.dims):
        run_size(G, D, args)


if __name__ == "__main__":
    main()
