"""Backends the store contract suite runs against.

Adding a backend is one line in BACKENDS: a name and a factory, i.e. a context
manager that yields a *started* store which already leads (or forwards to the
leader) and accepts `submit`, and stops and cleans up everything on exit. The
suite may call `stop()` itself, so exit must tolerate a second stop.

    BACKENDS["raft-1"] = raft_single_node     # pysyncobj, one node
    BACKENDS["raft-3"] = raft_three_nodes     # yields the leader's store
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from vnfha.coordinator.store.base import Store
from vnfha.coordinator.store.memory import MemoryStore


@contextmanager
def memory_store() -> Iterator[Store]:
    s = MemoryStore()
    s.start()
    try:
        yield s
    finally:
        s.stop()


BACKENDS: dict[str, Callable[[], AbstractContextManager[Store]]] = {
    "memory": memory_store,
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    with BACKENDS[request.param]() as s:
        yield s
