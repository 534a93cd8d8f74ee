"""bench.preload's memory reading, on this process (Linux)."""

import os
from pathlib import Path

import pytest

from bench.preload import memory_mb

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/smaps_rollup").exists(), reason="needs /proc/<pid>/smaps_rollup"
)


def test_private_pages_are_within_the_proportional_share_within_the_resident_set():
    m = memory_mb(os.getpid())
    assert 0 < m["uss"] <= m["pss"] <= m["rss"]


def test_a_page_shared_with_a_child_counts_half_in_pss():
    block = bytearray(64 << 20)  # 64 MB, written: resident and private
    block[::4096] = b"x" * len(block[::4096])
    before = memory_mb(os.getpid())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child holds the same pages, copy-on-write, until told to go
        os.read(r, 1)
        os._exit(0)
    try:
        shared = memory_mb(os.getpid())
    finally:
        os.write(w, b"x")
        os.waitpid(pid, 0)
    assert shared["uss"] < before["uss"] - 48  # no longer private: shared with the child
    assert shared["pss"] < before["pss"] - 24  # counted about half
