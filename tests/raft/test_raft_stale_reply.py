"""Hazard 5: a stale reply must not make a follower drop applied entries.

Three real pysyncobj SyncObj instances, ticked by hand (autoTick=False), talk
through an in-memory wire whose messages the test delivers explicitly, so
the interleaving is deterministic. The control test runs the same script on
stock pysyncobj and shows the loss is real.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.transport import Transport

from vnfha.coordinator.raft import internals
from vnfha.coordinator.raft.journal import DurableJournal
from vnfha.coordinator.raft.transport import (
    ECHO_KEY,
    HardeningMixin,
    LeaseTracker,
    clamp_commit_index,
)

ADDRS = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]


class Wire:
    """Messages in flight, delivered only when the test says so."""

    def __init__(self) -> None:
        self.inflight: list[tuple[str, str, Any]] = []
        self.endpoints: dict[str, Any] = {}

    def deliver_all(self, drop: Any = None) -> int:
        n = 0
        while self.inflight:
            src, dst, msg = self.inflight.pop(0)
            if drop is not None and drop(src, dst, msg):
                continue
            ep = self.endpoints[dst]
            ep._onMessageReceived(ep.others[src], msg)
            n += 1
        return n


WIRE = Wire()


class FakeWireTransport(Transport):
    """Stock-behaving transport over :data:`WIRE` (pickled, like TCP)."""

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        super().__init__(syncObj, selfNode, otherNodes)
        self.me = selfNode.address
        self.others = {n.address: n for n in otherNodes}
        self._ready = False
        WIRE.endpoints[self.me] = self

    def tryGetReady(self) -> None:
        self._ready = True
        for node in self.others.values():
            self._onNodeConnected(node)

    @property
    def ready(self) -> bool:
        return self._ready

    def send(self, node: Any, message: Any) -> bool:
        WIRE.inflight.append((self.me, node.address, pickle.loads(pickle.dumps(message))))
        return True


class HardenedWireTransport(HardeningMixin, FakeWireTransport):
    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        super().__init__(syncObj, selfNode, otherNodes)
        self._vnfha_setup(syncObj)


class Core(SyncObj):  # type: ignore[misc]
    def __init__(self, addr: str, hardened: bool, journal: DurableJournal | None) -> None:
        peers = [a for a in ADDRS if a != addr]
        self._vnfha_journal = journal
        self._vnfha_lease = LeaseTracker(set(peers))
        self.applied: list[int] = []

        def on_state(old: int, new: int) -> None:
            if new == internals.LEADER:
                self._vnfha_lease.start_term(time.monotonic())

        conf = SyncObjConf(autoTick=False, appendEntriesUseBatch=False, raftMinTimeout=100,
                           raftMaxTimeout=101, connectionTimeout=200, leaderFallbackTimeout=100,
                           onStateChanged=on_state)
        super().__init__(addr, peers, conf,
                         transportClass=HardenedWireTransport if hardened else FakeWireTransport)

    @replicated
    def put(self, value: int) -> int:
        self.applied.append(value)
        return value


def build(tmp_path: Path, hardened: bool) -> list[Core]:
    WIRE.inflight.clear()
    WIRE.endpoints.clear()
    cores = []
    for i, addr in enumerate(ADDRS):
        if hardened:
            journal = DurableJournal(tmp_path / f"n{i}")
            cores.append(internals.construct(lambda a=addr, j=journal: Core(a, True, j), journal))
        else:
            cores.append(Core(addr, False, None))
    for c in cores:
        internals.set_election_deadline(c, 1000)
    return cores


def pump(cores: list[Core], rounds: int = 30) -> None:
    for _ in range(rounds):
        for c in cores:
            c.doTick(0)
        WIRE.deliver_all()


def log_of(core: Core) -> list[tuple[bytes, int, int]]:
    return [tuple(e) for e in internals.journal(core)]  # type: ignore[misc]


def run_scenario(tmp_path: Path, hardened: bool) -> tuple[list[Core], list[Any], int]:
    cores = build(tmp_path, hardened)
    a, b, _c = cores
    internals.set_election_deadline(a, -1)
    pump(cores)
    assert internals.is_leader(a)
    for v in range(10):
        a.put(v)
        pump(cores, 3)
    pump(cores)
    last = internals.journal(a)[-1][1]
    assert b.raftLastApplied == last and b.applied == list(range(10))
    before = log_of(b)
    # The leader's re-send after a stale reset: an older prevLogIdx and a batch
    # shorter than what the follower already holds and has applied.
    entries = list(internals.journal(a))
    prev = entries[4]
    stale = {"type": "append_entries", "term": a.raftCurrentTerm,
             "commit_index": a.raftCommitIndex, "entries": entries[5:7],
             "prevLogIdx": prev[1], "prevLogTerm": prev[2]}
    WIRE.endpoints[ADDRS[1]]._onMessageReceived(WIRE.endpoints[ADDRS[1]].others[ADDRS[0]],
                                                 stale)
    return cores, before, last


def test_stale_append_entries_keeps_applied_entries(tmp_path: Path) -> None:
    cores, before, last = run_scenario(tmp_path, hardened=True)
    a, b, c = cores
    assert log_of(b) == before, "follower lost entries it had applied"
    WIRE.deliver_all()  # B's success reply reaches A: matchIndex must still be true
    node_b = next(n for n in internals.match_index(a) if n.address == ADDRS[1])
    assert internals.match_index(a)[node_b] <= log_of(b)[-1][1]
    # The leader dies: B and C elect a new leader, nothing committed is lost.
    internals.set_election_deadline(b, -1)
    pump([b, c])
    assert internals.is_leader(b)
    b.put(99)
    pump([b, c])
    assert b.applied == [*range(10), 99] and c.applied == [*range(10), 99]
    assert b.raftLastApplied > last


def test_stock_pysyncobj_loses_applied_entries(tmp_path: Path) -> None:
    """Control: the same script on stock pysyncobj truncates the follower's applied log."""
    cores, before, _last = run_scenario(tmp_path, hardened=False)
    b = cores[1]
    assert len(log_of(b)) < len(before)
    assert log_of(b)[-1][1] < b.raftLastApplied


def test_leader_ignores_stale_reset(tmp_path: Path) -> None:
    cores = build(tmp_path, hardened=True)
    a = cores[0]
    internals.set_election_deadline(a, -1)
    pump(cores)
    for v in range(5):
        a.put(v)
    pump(cores)
    node_b = next(n for n in internals.match_index(a) if n.address == ADDRS[1])
    matched = internals.match_index(a)[node_b]
    assert matched >= 6
    ep = WIRE.endpoints[ADDRS[0]]
    ep._onMessageReceived(node_b, {"type": "next_node_idx", "next_node_idx": 3,
                                   "reset": True, "success": False})
    assert internals.next_index(a)[node_b] > matched
    # a success reply that answers a message from before this leadership is dropped
    ep._onMessageReceived(node_b, {"type": "next_node_idx", "next_node_idx": 1000,
                                   "reset": True, "success": True, ECHO_KEY: 1.0})
    assert internals.match_index(a)[node_b] == matched
    assert internals.next_index(a)[node_b] > matched
    pump(cores)
    assert cores[1].applied == list(range(5))


def test_follower_does_not_commit_stale_tail(tmp_path: Path) -> None:
    cores = build(tmp_path, hardened=True)
    a, b, _c = cores
    internals.set_election_deadline(a, -1)
    pump(cores)
    a.put(1)
    pump(cores)
    held = log_of(b)[-1][1]
    commit_before = b.raftCommitIndex
    # A tail the leader never vouched for (as if left by a deposed leader).
    jb = internals.journal(b)
    for i in range(held + 1, held + 4):
        jb.add(b"\x00stale", i, a.raftCurrentTerm)
    hb = {"type": "append_entries", "term": a.raftCurrentTerm, "commit_index": held + 3,
          "entries": [], "prevLogIdx": held - 1,
          "prevLogTerm": log_of(a)[held - 2][2]}
    WIRE.endpoints[ADDRS[1]]._onMessageReceived(WIRE.endpoints[ADDRS[1]].others[ADDRS[0]], hb)
    assert b.raftCommitIndex <= held - 1 or b.raftCommitIndex == commit_before
    assert b.raftCommitIndex <= held


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"commit_index": 50, "prevLogIdx": 10, "entries": [(b"x", 11, 1), (b"y", 12, 1)]}, 12),
        ({"commit_index": 50, "prevLogIdx": 10, "entries": []}, 10),
        ({"commit_index": 5, "prevLogIdx": 10, "entries": [(b"x", 11, 1)]}, 5),
        ({"commit_index": 50, "prevLogIdx": 10, "transmission": "finish"}, 11),
        ({"commit_index": 50, "serialized": (b"..", True, False)}, 0),
        ({"commit_index": 50, "serialized": None}, 0),
        ({"commit_index": 50, "serialized": (b"..", False, True)}, 50),
    ],
)
def test_clamp_commit_index(message: dict[str, Any], expected: int) -> None:
    clamp_commit_index(message)
    assert message["commit_index"] == expected
