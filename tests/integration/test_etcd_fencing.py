"""Two coordinators on one real etcd try to act as leader at once: only one can.

A leader frozen in the middle of its work (GC pause, SIGSTOP, overloaded host)
wakes up still believing it leads. Here that is made exact: store A's clock
stops and its session keepalives and watch deliveries are held back, while its
submit path talks to the real etcd. Its session lease is revoked (what etcd
does when the lease expires during the pause), B is elected, and A's decision
must be refused by etcd itself, not by A's own (stale) belief.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health
from vnfha.coordinator.store.base import StoreUnavailable
from vnfha.coordinator.store.etcd import EtcdStore
from vnfha.coordinator.store.etcd_client import EtcdClient, WatchStream
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha_lab.etcdserver import EtcdServer

GROUP = "g"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("fence") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


_n = iter(range(1, 1000))


def settings(etcd: EtcdServer) -> EtcdSettings:
    return EtcdSettings(endpoints=(etcd.endpoint,), prefix=f"/fence/{next(_n)}", session_ttl=2)


class Pausable:
    """A clock and an etcd client for one store that a test can freeze: time stops,
    lease keepalives and watch deliveries wait; submits still reach etcd."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.running.set()
        self._frozen_at: float | None = None

    def clock(self) -> float:
        return self._frozen_at if self._frozen_at is not None else time.monotonic()

    def freeze(self) -> None:
        self._frozen_at = time.monotonic()
        self.running.clear()

    def thaw(self) -> None:
        self._frozen_at = None
        self.running.set()

    def client(self, s: EtcdSettings) -> EtcdClient:
        pause = self

        class Client(EtcdClient):
            def keepalive(self, lease: int, timeout: float) -> int:
                pause.running.wait()
                return super().keepalive(lease, timeout)

            def watch(self, key: bytes, range_end: bytes, start_revision: int,
                      timeout: float) -> WatchStream:
                inner = super().watch(key, range_end, start_revision, timeout)

                class Held(WatchStream):
                    def __init__(self) -> None:  # wraps `inner`, holds each response
                        pass

                    def __iter__(self):  # type: ignore[override]
                        for resp in inner:
                            pause.running.wait()
                            yield resp

                    def cancel(self) -> None:
                        inner.cancel()

                return Held()

        return Client(s)


def seed(store: EtcdStore) -> None:
    cmds = [C.apply_groups([{"name": GROUP}])]
    for i, m in enumerate(("a", "b"), start=1):
        cmds.append(C.register_node(f"n{i}", f"198.18.1.{i}", [{"group": GROUP, "member": m}]))
        cmds.append(C.set_health(GROUP, m, Health.HEALTHY))
    for cmd in cmds:
        assert store.submit(cmd)["ok"]


def test_deposed_leader_that_does_not_know_it_is_refused_by_etcd(etcd):
    s = settings(etcd)
    pa = Pausable()
    a = EtcdStore("a", s, clock=pa.clock, client_factory=pa.client)
    b = EtcdStore("b", s)
    try:
        a.start()
        wait_for(a.is_leader, 10, what="a to lead")
        b.start()
        seed(a)
        wait_for(lambda: b.state().revision == a.state().revision, 5, what="b to follow")
        lease = int(a.describe()["session_lease"], 16)

        pa.freeze()
        outside = EtcdClient(s)
        outside.revoke(lease, timeout=2)  # a's lease expires while it is frozen
        outside.close()
        wait_for(b.is_leader, 10, what="b elected after a's lease is gone")
        assert a.is_leader(), "a is frozen: it still believes it leads"

        before = b.state()
        with pytest.raises(StoreUnavailable, match="no longer leads"):
            a.submit_as_leader(C.promote(GROUP, "a", 0, reason="deposed leader's decision"))
        assert not a.is_leader()  # etcd's refusal taught it
        # Nothing was applied: b (the real leader) still sees no active.
        time.sleep(0.2)
        assert b.state().revision == before.revision
        assert b.state().groups[GROUP].active is None
        r = b.submit_as_leader(C.promote(GROUP, "b", 0, reason="the leader's decision"))
        assert r["ok"] and r["epoch"] == 1
        pa.thaw()
        wait_for(lambda: a.state().groups[GROUP].active == "b", 5, what="a to catch up")
        assert not a.is_leader() and a.leader_id() == "b"
    finally:
        pa.thaw()
        a.stop()
        b.stop()


def test_leader_steps_down_before_anyone_else_can_be_elected(etcd):
    """Sampled continuously from outside: never two leaders, and the old one's last
    'I lead' comes before the new one's first."""
    s = settings(etcd)
    pa = Pausable()
    a = EtcdStore("a", s, client_factory=pa.client)  # real clock: only its session stalls
    b = EtcdStore("b", s)
    samples: list[tuple[float, bool, bool]] = []
    try:
        a.start()
        wait_for(a.is_leader, 10, what="a to lead")
        b.start()
        pa.running.clear()  # a's keepalives stop reaching etcd (a partition of a)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            samples.append((time.monotonic(), a.is_leader(), b.is_leader()))
            if samples[-1][2]:
                break
            time.sleep(0.002)
        assert samples[-1][2], "b was never elected"
        assert not any(x and y for _, x, y in samples)
        last_a = max(t for t, x, _ in samples if x)
        first_b = min(t for t, _, y in samples if y)
        assert last_a < first_b
        assert a.leader_since() is None and a.quorum_contact() is None
    finally:
        pa.thaw()
        a.stop()
        b.stop()


def test_graceful_stop_hands_over_at_once(etcd):
    s = settings(etcd)
    a, b = EtcdStore("a", s), EtcdStore("b", s)
    try:
        a.start()
        wait_for(a.is_leader, 10, what="a to lead")
        b.start()
        t0 = time.monotonic()
        a.stop()  # revokes its session: the leader key goes with it
        wait_for(b.is_leader, 5, what="b to lead")
        assert time.monotonic() - t0 < s.session_ttl  # sooner than a lease expiry
    finally:
        a.stop()
        b.stop()


def test_unreachable_etcd_turns_store_reachable_false_within_the_session_ttl(tmp_path: Path):
    server = EtcdServer(tmp_path / "data")
    server.start()
    st = EtcdStore("a", EtcdSettings(endpoints=(server.endpoint,), prefix="/r", session_ttl=2))
    try:
        st.start()
        wait_for(st.is_leader, 10, what="leading")
        assert st.store_reachable()
        server.stop()
        t0 = time.monotonic()
        wait_for(lambda: not st.is_leader(), 5, what="leadership to lapse")
        lapsed = time.monotonic() - t0
        assert st.store_reachable()  # leadership goes first...
        wait_for(lambda: not st.store_reachable(), 5, what="reachability to lapse")
        assert lapsed < time.monotonic() - t0  # ...then acknowledgements
        with pytest.raises(StoreUnavailable):
            st.submit_as_leader(C.apply_groups([{"name": GROUP}]), timeout=0.5)
        server.start()
        wait_for(st.is_leader, 10, what="leading again once etcd is back")
        assert st.store_reachable() and st.submit(C.apply_groups([{"name": GROUP}]))["ok"]
    finally:
        st.stop()
        server.stop()
