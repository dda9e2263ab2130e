"""A site's worth of groups on the etcd store, against a real etcd (issue 14).

With the whole state in one etcd value, every command rewrote it: at ~4,300 groups
that value passed etcd's 1.5 MiB request limit and nothing could commit any more.
With one key per group and per node a command writes what it changed, so 5,000
groups commit, a lost host's 500 promotions go in one transaction (more operations
than etcd's default --max-txn-ops of 128: the harness sets the limit vnfha needs),
and a coordinator started afterwards reads the same state back. Bounded by the
submit timeouts; ~10 s on a quiet machine (77 s at load 57 on 2 cores).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health, state_to_dict
from vnfha.coordinator.store.etcd import EtcdStore
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha_lab.etcdserver import EtcdServer

GROUPS = 5_000
HOSTS = 10  # each hosts member a of 500 groups
STANDBYS = 10  # each hosts member b of 500 groups


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("scale") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _store(etcd: EtcdServer, prefix: str) -> EtcdStore:
    st = EtcdStore("c1", EtcdSettings(endpoints=(etcd.endpoint,), prefix=prefix,
                                      session_ttl=2))
    st.start()
    return st


def _ok(store: EtcdStore, cmd: dict) -> None:
    r = store.submit(cmd, timeout=20)
    assert r["ok"], (cmd["op"], r)


def test_five_thousand_groups_commit_and_a_lost_host_fails_over_in_one_transaction(etcd):
    names = [f"g{i:05d}" for i in range(GROUPS)]
    store = _store(etcd, "/scale/a")
    try:
        for i in range(0, GROUPS, 1000):
            _ok(store, C.apply_groups([{"name": n} for n in names[i:i + 1000]]))
        per = GROUPS // HOSTS
        for h in range(HOSTS):
            mine = names[h * per:(h + 1) * per]
            _ok(store, C.register_node(f"host{h}", f"198.18.2.{h + 1}",
                                       [{"group": g, "member": "a"} for g in mine]))
        for s in range(STANDBYS):
            mine = names[s::STANDBYS]
            _ok(store, C.register_node(f"stby{s}", f"198.18.3.{s + 1}",
                                       [{"group": g, "member": "b"} for g in mine]))
        host0 = names[:per]
        _ok(store, C.batch([C.set_health(g, "b", Health.HEALTHY) for g in host0]))
        # host0's 500 groups: one transaction promotes them all (the mass failover shape)
        _ok(store, C.batch([C.promote(g, "b", 0, reason="host0 lost") for g in host0]))
        st = store.state()
        assert len(st.groups) == GROUPS
        assert all(st.groups[g].active == "b" and st.groups[g].epoch == 1 for g in host0)
        assert st.groups[names[per]].active is None
        # A single role change at this size still commits.
        _ok(store, C.demote(names[0], 1, reason="switch back"))
        assert store.state().groups[names[0]].releasing == "b"
        want = state_to_dict(store.state())
    finally:
        store.stop()
    # A coordinator started now reads all of it back (one range read of the prefix).
    again = _store(etcd, "/scale/a")
    try:
        assert state_to_dict(again.state()) == want
    finally:
        again.stop()
