"""bench/soak.py's memory hog is bounded: it never takes so much that the host runs out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

GIB = 1 << 30


@pytest.fixture(scope="module")
def soak():
    path = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("bench_soak", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("avail_gib", [0.5, 2, 4, 4.2, 6, 22, 200])
def test_memory_target_leaves_the_floor_free_and_respects_share_and_cap(soak, avail_gib):
    avail = int(avail_gib * GIB)
    t = soak.mem_target(avail, 0.6, 4 * GIB, 16 * GIB)
    assert 0 <= t <= 16 * GIB
    assert t <= 0.6 * avail
    assert avail - t >= 4 * GIB or t == 0
    assert t % soak.CHUNK == 0


def test_memory_target_is_a_large_share_when_there_is_room(soak):
    assert soak.mem_target(22 * GIB, 0.6, 4 * GIB, 16 * GIB) >= 13 * GIB
