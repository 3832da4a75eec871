"""Speed of the synthetic pedestrian generator (render + captions + JPEG write).

Usage: python benchmarks/bench_synth.py [--images 300] [--workers 1]
Prints images/s at 384x128 and 192x64. The target is >= 200 images/s at 384x128
with one worker.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

try:
    from mia.synth.generate import generate_dataset
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mia.synth.generate import generate_dataset

SIZES = ((384, 128), (192, 64))
PER_ID = 3


def bench(height: int, width: int, images: int, workers: int, seed: int = 0) -> dict:
    """Generate about ``images`` images in a temporary directory; return the summary."""
    n_ids = max(3, images // PER_ID)
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        return generate_dataset(tmp, n_ids=n_ids, seed=seed, height=height, width=width,
                                images_per_id=(PER_ID, PER_ID), workers=workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images per size")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine_line

    print(machine_line())
    bench(96, 32, 30, 1)  # warm-up: imports, caches
    for height, width in SIZES:
        s = bench(height, width, args.images, args.workers)
        print(f"synth {height}x{width}: {s['images']} images in {s['seconds']:.2f} s = "
              f"{s['images_per_second']:.1f} images/s (workers={args.workers})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
