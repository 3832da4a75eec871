"""Keep the memory PyTorch frees inside the process (glibc's malloc), for CNN work on CPU.

PyTorch allocates a CPU tensor with malloc. glibc maps a block above its threshold (128 KB,
raised as blocks are freed, to 32 MB at most) from the kernel and unmaps it when it is
freed, and it gives the top of its heap back when more than twice the threshold is free.
A CNN pass allocates and frees tens of blocks of several megabytes per batch, so each one
comes back from the kernel page by page, zeroed. Measured on a 2-core AMD EPYC
(benchmarks/bench_allocator.py; docs/BENCHMARKS.md): the frozen EfficientNet-Lite0 forward
of a batch of 32 at 256x96 took 74,000 minor page faults and 20% of its CPU time in the
kernel. Serving every block from the heap (``M_MMAP_MAX`` 0) and never trimming it
(``M_TRIM_THRESHOLD`` at its maximum) removes them (1.35x faster there, the same peak
memory); the process then keeps memory it freed instead of returning it to the system.

:func:`keep_freed_memory` does that for the process that calls it (``mia train``, ``mia
evaluate`` and index builds and additions do); ``MIA_MALLOC=system`` in the environment leaves the
allocator alone. Anything other than glibc (macOS, musl) is left alone too.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

ENV = "MIA_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse (once per process); returns whether the
    allocator runs so now."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "").strip().lower() == "system":
        log.info("allocator: %s=system, glibc's defaults kept", ENV)
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if _applied:
        log.info("allocator: glibc keeps freed memory for reuse (no page faults per batch; "
                 "%s=system turns it off)", ENV)
    return _applied
