"""Backends the store contract suite runs against.

Adding a backend is one line in BACKENDS: a name and a factory, i.e. a context
manager that yields a *started* store which already leads (or forwards to the
leader) and accepts `submit`, and stops and cleans up everything on exit. The
suite may call `stop()` itself, so exit must tolerate a second stop.

    BACKENDS["raft-1"] = raft_single_node     # pysyncobj, one node
    BACKENDS["raft-3"] = raft_three_nodes     # yields the leader's store
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import pytest

from vnfha.coordinator.ports import free_port
from vnfha.coordinator.raft.settings import RaftSettings
from vnfha.coordinator.store.base import Store
from vnfha.coordinator.store.memory import MemoryStore
from vnfha.coordinator.store.raft import RaftStore


@contextmanager
def memory_store() -> Iterator[Store]:
    s = MemoryStore()
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _port() -> int:
    return free_port()


@contextmanager
def _raft_cluster(size: int) -> Iterator[Store]:
    """`size` RaftStores in this process on loopback; yields the leader's store."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        addrs = [f"127.0.0.1:{_port()}" for _ in range(size)]
        ids = {a: f"c{i + 1}" for i, a in enumerate(addrs)}
        stores = []
        for a in addrs:
            settings = RaftSettings(self_address=a, peers=tuple(p for p in addrs if p != a),
                                    data_dir=Path(tmp) / ids[a],
                                    secret="contract-test-secret" if size > 1 else None)
            st = RaftStore(ids[a], settings, ids)
            st.start()
            stack.callback(st.stop)
            stores.append(st)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            leaders = [st for st in stores if st.is_leader()]
            if leaders:
                yield leaders[0]
                return
            time.sleep(0.02)
        raise AssertionError("no raft leader elected within 15 s")


def raft_single_node() -> AbstractContextManager[Store]:
    return _raft_cluster(1)


def raft_three_nodes() -> AbstractContextManager[Store]:
    return _raft_cluster(3)


BACKENDS: dict[str, Callable[[], AbstractContextManager[Store]]] = {
    "memory": memory_store,
    "raft-1": raft_single_node,
    "raft-3": raft_three_nodes,
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    with BACKENDS[request.param]() as s:
        yield s
