"""glibc keeps the memory PyTorch frees (mia.utils.memory): no page faults per batch."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

import mia.utils.memory as memory

# 64 MB blocks are above glibc's largest mmap threshold (32 MB): with its defaults each one
# is mapped from the kernel and faulted in page by page, every time
CHURN = """
import resource, torch
from mia.utils.memory import keep_freed_memory
kept = keep_freed_memory()
def churn():
    for _ in range(5):
        block = torch.ones(64 * 2**20 // 4)
        del block
for _ in range(3):  # the heap grows to its working size
    churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the setting exists in glibc only")


def churn_faults(setting: str) -> tuple[str, int]:
    env = {**os.environ, memory.ENV: setting}
    out = subprocess.run([sys.executable, "-c", CHURN], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], int(out[1])


@glibc
def test_freed_blocks_are_reused_without_page_faults():
    kept, faults_kept = churn_faults("")
    system, faults_system = churn_faults("system")
    assert (kept, system) == ("True", "False")
    # 5 blocks x 16,384 pages of 4 KB each time (fewer where the kernel maps huge pages)
    assert faults_system >= 100
    assert faults_kept * 10 < faults_system


def test_system_setting_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.setenv(memory.ENV, "system")

    def no_libc(*args):
        raise AssertionError("the C library must not be touched")

    monkeypatch.setattr(memory.ctypes, "CDLL", no_libc)
    assert memory.keep_freed_memory() is False
    assert memory.keep_freed_memory() is False  # decided once per process


def test_without_glibc_nothing_is_changed(monkeypatch):
    class NoMallopt:  # e.g. macOS or musl: the symbol is missing
        def __getattr__(self, name):
            raise AttributeError(name)

    monkeypatch.setattr(memory, "_applied", None)
    monkeypatch.delenv(memory.ENV, raising=False)
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda *args: NoMallopt())
    assert memory.keep_freed_memory() is False
