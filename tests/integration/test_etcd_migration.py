"""Upgrading an etcd-backed cluster: layout 1 (nodes and groups in one state key) is
read, converted once to one key per group and node, and nothing is lost; an etcd
whose --max-txn-ops is too small for vnfha's transactions is refused at start with
the setting to fix. Against a real etcd."""

from __future__ import annotations

import threading
from base64 import b64encode
from collections.abc import Iterator

import pytest
from support import wait_for

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health, state_to_dict
from vnfha.coordinator.state_machine import StateMachine
from vnfha.coordinator.store.etcd import EtcdStore
from vnfha.coordinator.store.etcd_access import EtcdAccessError
from vnfha.coordinator.store.etcd_client import EtcdClient, put_op
from vnfha.coordinator.store.etcd_config import EtcdSettings
from vnfha.coordinator.store.etcd_layout import (
    LEGACY_EVENTS_PER_BLOCK,
    STATE_MARKER,
    Keys,
    encode,
)
from vnfha_lab.etcdserver import EtcdServer


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("migrate") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(etcd: EtcdServer, prefix: str) -> EtcdSettings:
    return EtcdSettings(endpoints=(etcd.endpoint,), prefix=prefix, session_ttl=2)


def _history(groups: int) -> StateMachine:
    """A cluster as layout 1 would have held it: groups with two members, roles, a
    paused flag, a queue and a checkpoint, more events than one block holds."""
    sm = StateMachine()
    names = [f"g{i:04d}" for i in range(groups)]
    cmds = [C.apply_groups([{"name": n, "vip": "198.18.0.10/24"} for n in names]),
            C.register_node("n1", "198.18.1.1", [{"group": n, "member": "a"} for n in names]),
            C.register_node("n2", "198.18.1.2", [{"group": n, "member": "b"} for n in names]),
            C.batch([C.set_health(n, "a", Health.HEALTHY) for n in names]),
            C.batch([C.promote(n, "a", 0, reason="initial") for n in names]),
            C.publish(names[0], 1, b64encode(b"m0").decode(), 100, 10, 1000),
            C.put_checkpoint(names[0], 1, b64encode(b"cp").decode(), 1, 100),
            C.set_maintenance("n2", True)]
    for cmd in cmds:
        assert sm.apply(cmd)["ok"], cmd["op"]
    return sm


def _write_layout_1(etcd: EtcdServer, keys: Keys, sm: StateMachine) -> None:
    """Put `sm`'s state into etcd the way layout 1 did (state key + 50-event blocks +
    checkpoint, message and request-id keys), in transactions of ≤ 100 operations."""
    d = state_to_dict(sm.state)
    events = d.pop("events")
    d.pop("checkpoints")
    d["queues"] = {g: {"next_offset": q["next_offset"], "messages": []}
                   for g, q in d["queues"].items()}
    puts = {keys.state: encode(d)}
    blocks: dict[int, list] = {}
    for e in events:
        blocks.setdefault(e["seq"] // LEGACY_EVENTS_PER_BLOCK, []).append(e)
    puts.update((keys.legacy_event_block(b), encode(v)) for b, v in blocks.items())
    for g, c in d_checkpoints(sm).items():
        puts[keys.checkpoint(g)] = encode(c)
    for g, q in sm.state.queues.items():
        for m in q.messages:
            puts[keys.message(g, m.offset)] = encode(
                {"offset": m.offset, "epoch": m.epoch, "at": m.at,
                 "data": b64encode(m.data).decode()})
    for rid, result in sm.snapshot()["recent"]:
        puts[keys.rid(rid)] = encode(result)
    client = EtcdClient(_settings(etcd, keys.prefix))
    try:
        items = list(puts.items())
        # etcd just started on a loaded machine: retry until its first answer
        wait_for(lambda: client.range(keys.root, keys.root_end, timeout=2,
                                      count_only=True) is not None,
                 timeout=20, what="etcd answering")
        for i in range(0, len(items), 100):
            client.txn([], [put_op(k, v) for k, v in items[i:i + 100]], [], timeout=10)
    finally:
        client.close()


def d_checkpoints(sm: StateMachine) -> dict:
    return state_to_dict(sm.state)["checkpoints"]


def test_layout_1_is_converted_once_and_nothing_is_lost(etcd):
    keys = Keys("/migrate/a")
    sm = _history(300)  # 300 groups: the conversion takes several transactions
    _write_layout_1(etcd, keys, sm)
    before = etcd.keys(keys.prefix + "/")
    assert keys.state in before and keys.cluster not in before
    want = state_to_dict(sm.state)
    # Two coordinators start at once: both may convert; the result is one conversion.
    stores = [EtcdStore(f"c{i}", _settings(etcd, keys.prefix)) for i in (1, 2)]
    threads = [threading.Thread(target=s.start) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        for s in stores:
            assert state_to_dict(s.state()) == want
        after = etcd.keys(keys.prefix + "/")
        kinds = {keys.classify(k)[0] for k in after}
        assert {"cluster", "groups", "nodes", "history", "queue-offsets"} <= kinds
        assert "events" not in kinds  # layout 1's event blocks were rewritten as history
        assert sum(keys.classify(k)[0] == "groups" for k in after) == 300
        assert _value(etcd, keys.state) == STATE_MARKER
        # It works as a layout-2 cluster: a command commits and both coordinators see it.
        r = stores[0].submit(C.demote("g0007", 1, reason="after upgrade"), timeout=10)
        assert r["ok"], r
        # A retry of a command recorded before the upgrade is still answered once.
        rid, _ = sm.snapshot()["recent"][-1]
        cmd = C.set_maintenance("n2", True, rid=rid)
        assert stores[1].submit(cmd, timeout=10).get("duplicate") is True
    finally:
        for s in stores:
            s.stop()
    again = EtcdStore("c3", _settings(etcd, keys.prefix))
    again.start()
    try:
        st = again.state()
        assert st.groups["g0007"].releasing == "a" and st.groups["g0007"].active is None
        assert st.nodes["n2"].maintenance and st.checkpoints["g0000"].data == b"cp"
        assert st.queues["g0000"].next_offset == 1
    finally:
        again.stop()


def _value(etcd: EtcdServer, key: bytes) -> bytes:
    client = EtcdClient(EtcdSettings(endpoints=(etcd.endpoint,)))
    try:
        return client.range(key, None, timeout=5).kvs[0].value
    finally:
        client.close()


def test_an_etcd_that_refuses_large_transactions_is_named_at_start(tmp_path):
    server = EtcdServer(tmp_path / "data", max_txn_ops=128)  # etcd's default
    server.start()
    try:
        st = EtcdStore("c1", _settings(server, "/small"))
        with pytest.raises(EtcdAccessError, match="--max-txn-ops=2048"):
            st.start()
        st.stop()
    finally:
        server.stop()
