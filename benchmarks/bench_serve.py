"""Load test of `mia serve` on loopback: 16 concurrent clients, 2,000 queries against a
10,000-image index. Bounded in count and time; reports errors, p50/p95 latency and
throughput.

The model is the demo architecture (D = 256) trained for one epoch of step 1 on a tiny
synthetic set (its quality is irrelevant here); the 10,000-image index holds synthetic
features with that model's fingerprint. Queries are synthetic pedestrian descriptions.

    python benchmarks/bench_serve.py [--clients 16 --queries 2000 --images 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_phrases import make_captions  # noqa: E402
from common import machine_line  # noqa: E402
from mia.artifacts.run import load_trained  # noqa: E402
from mia.config import load_config  # noqa: E402
from mia.retrieval.index import FORMAT, RECORD, model_fingerprint  # noqa: E402
from mia.synth.generate import generate_dataset  # noqa: E402
from mia.training.launch import train  # noqa: E402
from mia.utils.io import atomic_write_json  # noqa: E402


def make_index(root: Path, images: int) -> Path:
    data = root / "data"
    generate_dataset(data, n_ids=30, seed=0, height=96, width=32)
    train(load_config("demo/mia", ["steps.step1.epochs=1", "steps.step2=null",
                                   "steps.step3=null", "train.validate=false"]),
          data, root / "run", progress=False)
    trained = load_trained(root / "run")
    D, n = trained.model.config.embed_dim, trained.model.config.num_parts
    rng = np.random.default_rng(0)
    index = root / "index"
    index.mkdir()
    record = rng.standard_normal((images, 1 + 3 * n, D))  # I, parts, RGA keys, BFM keys
    record[:, 1 + n:] /= np.linalg.norm(record[:, 1 + n:], axis=-1, keepdims=True)  # unit keys
    np.save(index / "global.npy", record[:, 0].astype(np.float16))
    np.save(index / f"{RECORD}.npy", record.astype(np.float16))
    atomic_write_json(index / "images.json", {"images": [f"{i}.jpg" for i in range(images)],
                                              "person_ids": [i // 3 for i in range(images)]})
    atomic_write_json(index / "manifest.json", {
        "format": FORMAT, "complete": True, "count": images, "dim": D, "parts": n,
        "dtype": "float16", "image_root": str(root / "images"), "source": {"synthetic": True},
        "model": {**model_fingerprint(trained), "run": str(root / "run"),
                  "checkpoint": str(trained.checkpoint), "lambda1": 1.0, "lambda2": 0.5}})
    return index


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port: int, queries: list[str], latencies: list, errors: list, deadline: float):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for q in queries:
        if time.time() > deadline:
            errors.append("time budget exceeded")
            return
        start = time.perf_counter()
        try:
            conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": q, "top": 10}))
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or len(json.loads(body)["results"]) != 10:
                errors.append(f"status {response.status}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(repr(exc))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--time-limit", type=float, default=900, help="seconds, each setting")
    parser.add_argument("--max-batch", type=int, nargs="+", default=[32, 1],
                        help="server settings to measure (1: one request at a time)")
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.clients} clients, {args.queries} queries per setting, {args.images:,}-image "
          f"index (D=256, exhaustive exact scoring per query), loopback")
    with tempfile.TemporaryDirectory() as tmp:
        index = make_index(Path(tmp), args.images)
        for max_batch in args.max_batch:
            measure(args, index, max_batch)


def measure(args, index: Path, max_batch: int) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mia", "-q", "serve", "--index",
                               str(index), "--port", str(port), "--max-batch",
                               str(max_batch)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):  # wait for the server (bounded)
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request(
                    "GET", "/api/health")
                break
            except OSError:
                time.sleep(0.1)
        queries = make_captions(args.queries, seed=7)
        latencies, errors = [], []
        deadline = time.time() + args.time_limit
        share = [queries[i::args.clients] for i in range(args.clients)]
        threads = [threading.Thread(target=client, args=(port, s, latencies, errors,
                                                         deadline)) for s in share]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
    label = "requests batched" if max_batch > 1 else "one request at a time"
    print(f"--max-batch {max_batch} ({label}): {len(latencies)} queries, errors "
          f"{len(errors)}" + (f" (first: {errors[0]})" if errors else "")
          + f"; latency p50 {p50:.0f} ms, p95 {p95:.0f} ms; throughput "
          f"{len(latencies) / wall:.1f} queries/s over {wall:.0f} s")


if __name__ == "__main__":
    main()
