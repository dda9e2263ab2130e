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
from dataclasses import replace
from pathlib import Path

import pytest

from vnfha.coordinator.raft.settings import RaftSettings
from vnfha.coordinator.store.base import Store
from vnfha.coordinator.store.etcd import EtcdStore
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha.coordinator.store.memory import MemoryStore
from vnfha.coordinator.store.raft import RaftStore
from vnfha_lab.etcdserver import EtcdServer, EtcdTls
from vnfha_lab.ports import free_port


@contextmanager
def memory_store() -> Iterator[Store]:
    s = MemoryStore()
    s.start()
    try:
        yield s
    finally:
        s.stop()


SETTLED = 0.3  # s a raft leader must have led before a test gets it


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
                                    secret="contract-test-secret-of-32-bytes" if size > 1 else None,
                                    # The contract is about results, not failover speed: slower
                                    # elections keep one leader for the whole test even when
                                    # other work starves this process for a few hundred ms.
                                    election_timeout_min=0.6, election_timeout_max=1.2)
            st = RaftStore(ids[a], settings, ids)
            st.start()
            stack.callback(st.stop)
            stores.append(st)
        # A settled leader: the only one, leading for a while. Right after start two
        # candidates can split a term, and the first winner may be deposed at once.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            leaders = [st for st in stores if st.is_leader()]
            since = leaders[0].leader_since() if len(leaders) == 1 else None
            if since is not None and time.monotonic() - since >= SETTLED:
                yield leaders[0]
                return
            time.sleep(0.02)
        raise AssertionError("no settled raft leader within 15 s")


def raft_single_node() -> AbstractContextManager[Store]:
    return _raft_cluster(1)


def raft_three_nodes() -> AbstractContextManager[Store]:
    return _raft_cluster(3)


_ETCD: list[EtcdServer] = []
_prefixes = iter(range(1, 1_000_000))


@contextmanager
def _etcd_stores(size: int, settings: EtcdSettings | None = None) -> Iterator[Store]:
    """`size` EtcdStores (coordinators) on one fresh prefix of the session's etcd (or
    with `settings`); yields the leader's store."""
    if settings is None:
        assert _ETCD, "the etcd_server fixture did not start etcd"
        settings = EtcdSettings(endpoints=(_ETCD[0].endpoint,),
                                prefix=f"/contract/{next(_prefixes)}", session_ttl=2)
    with ExitStack() as stack:
        stores = []
        for i in range(size):
            st = EtcdStore(f"c{i + 1}", settings)
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
        raise AssertionError("no etcd-backed leader within 15 s")


def etcd_single() -> AbstractContextManager[Store]:
    return _etcd_stores(1)


#: (server, client settings): etcd with client TLS + --client-cert-auth and auth on
_ETCD_SECURE: list[tuple[EtcdServer, EtcdSettings]] = []


def etcd_tls_auth() -> AbstractContextManager[Store]:
    """One coordinator over TLS with a client certificate, logged in as an etcd user
    whose role may only touch /contract-secure/."""
    assert _ETCD_SECURE, "the etcd_secure_server fixture did not start etcd"
    _, base = _ETCD_SECURE[0]
    return _etcd_stores(1, replace(base, prefix=f"/contract-secure/{next(_prefixes)}"))


def etcd_three() -> AbstractContextManager[Store]:
    return _etcd_stores(3)


BACKENDS: dict[str, Callable[[], AbstractContextManager[Store]]] = {
    "memory": memory_store,
    "raft-1": raft_single_node,
    "raft-3": raft_three_nodes,
    "etcd": etcd_single,
    "etcd-3": etcd_three,
    "etcd-tls-auth": etcd_tls_auth,
}


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One real etcd for the whole contract run (each store gets its own prefix)."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    _ETCD.append(server)
    try:
        yield server
    finally:
        _ETCD.remove(server)
        server.stop()


@pytest.fixture(scope="session")
def etcd_secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A real etcd that only speaks TLS, wants client certificates and has auth on."""
    root = tmp_path_factory.mktemp("etcd-secure")
    tls, ca = EtcdTls.generate(root / "pki")
    client = ca.issue_client("vnfha-coordinator")
    server = EtcdServer(root / "data", tls=tls)
    server.start()
    try:
        server.add_user("vnfha", "contract-pw", readwrite=("/contract-secure/",))
        server.enable_auth("root-pw")
        settings = EtcdSettings(endpoints=(server.endpoint,), prefix="/contract-secure",
                                session_ttl=2, ca_file=tls.ca_file, cert_file=client.cert,
                                key_file=client.key, user="vnfha", password="contract-pw")
        _ETCD_SECURE.append((server, settings))
        yield server
    finally:
        _ETCD_SECURE.clear()
        server.stop()


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "etcd-tls-auth":
        request.getfixturevalue("etcd_secure_server")
    elif request.param.startswith("etcd"):
        request.getfixturevalue("etcd_server")
    with BACKENDS[request.param]() as s:
        yield s


# -- stores that can be stopped and opened again on the same data ---------------------------
# For the guarantees checks (test_store_guarantees.py): `make()` builds a new, unstarted
# store of the backend on the same data (files, port, etcd prefix) each time it is called.

def _memory_reopen(tmp: Path) -> Callable[[], Store]:
    del tmp  # nothing to reopen: a new process starts empty
    return MemoryStore


def _raft_reopen(tmp: Path) -> Callable[[], Store]:
    addr = f"127.0.0.1:{_port()}"
    settings = RaftSettings(self_address=addr, peers=(), data_dir=tmp / "c1",
                            election_timeout_min=0.6, election_timeout_max=1.2)
    return lambda: RaftStore("c1", settings, {addr: "c1"})


def _etcd_reopen(tmp: Path) -> Callable[[], Store]:
    del tmp
    assert _ETCD, "the etcd_server fixture did not start etcd"
    settings = EtcdSettings(endpoints=(_ETCD[0].endpoint,),
                            prefix=f"/contract/{next(_prefixes)}", session_ttl=2)
    return lambda: EtcdStore("c1", settings)


REOPENABLE: dict[str, Callable[[Path], Callable[[], Store]]] = {
    "memory": _memory_reopen,
    "raft-1": _raft_reopen,
    "etcd": _etcd_reopen,
}


@pytest.fixture(params=sorted(REOPENABLE))
def reopenable(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    if request.param.startswith("etcd"):
        request.getfixturevalue("etcd_server")
    return REOPENABLE[request.param](tmp_path)
