"""The keepalive handler's cache of unchanged keepalives (service/kacache.py) is exact.

Two AgentServicers over the same states, one with the cache and one that handles
every keepalive in full, are driven through the same random sequences of keepalives
(mostly repeats of a node's last one, as in real life) and state changes (members
moved, removed, added, groups deleted, nodes removed and readmitted, states that are
new objects with nothing changed); at every step their answers, their lease tables
and the change callbacks they made must be identical. Pure: the state machine's
`apply` and an in-memory table, no sockets, no threads.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from vnfha.coordinator import commands as C
from vnfha.coordinator.leases import LeaseTable
from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.service.agent import ACK_TIME_SAMPLE, AgentServicer
from vnfha.coordinator.service.kacache import KeepaliveCache, Validated
from vnfha.coordinator.state_machine import apply
from vnfha.v1 import agent_pb2, types_pb2

TTL = 0.25
NODES = ["n1", "n2", "n3", "n4"]
GROUPS = ["g1", "g2", "g3"]
MEMBERS = ["a", "b", "c"]
HEALTHS = [types_pb2.HEALTH_HEALTHY] * 10 + [types_pb2.HEALTH_UNHEALTHY] * 3 + [
    types_pb2.HEALTH_UNSPECIFIED]  # not reportable: the keepalive is invalid


class SharedStore:
    """The one state both servicers read (a store reduced to what the handler asks)."""

    def __init__(self) -> None:
        self.current = ClusterState()

    def state(self) -> ClusterState:
        return self.current

    def store_reachable(self) -> bool:
        return True

    def submit(self, cmd: C.Command) -> None:
        self.current, _ = apply(self.current, cmd)  # refusals leave the state as it is


class NoCache(KeepaliveCache):
    """The reference: every keepalive handled in full (the handler before the cache)."""

    def get(self, node: str, state: ClusterState, request: bytes) -> Validated | None:
        return None


class CountingCache(KeepaliveCache):
    """The cache, counting the keepalives it answered."""

    hits = 0

    def get(self, node: str, state: ClusterState, request: bytes) -> Validated | None:
        known = super().get(node, state, request)
        self.hits += known is not None
        return known


class Calls:
    """Counts the servicer's change callbacks: on_report_change and the feed's."""

    def __init__(self) -> None:
        self.on_change = 0
        self.reports_changed = 0

    def changed(self) -> None:
        self.on_change += 1

    def feed_changed(self) -> None:
        self.reports_changed += 1


def servicer(store: SharedStore, cached: bool) -> tuple[AgentServicer, LeaseTable, Calls]:
    calls = Calls()
    feed = type("Feed", (), {"reports_changed": staticmethod(calls.feed_changed)})()
    leases = LeaseTable(0.0, ttl=TTL)
    api = AgentServicer(store, leases, "c1", TTL, on_report_change=calls.changed,  # type: ignore[arg-type]
                        feed=feed, cluster_members=("c1", "c2", "c3"))
    api.validated = CountingCache() if cached else NoCache()
    return api, leases, calls


def random_request(rng: random.Random) -> agent_pb2.KeepaliveRequest:
    roll = rng.random()
    node = ("" if roll < 0.03 else "bad node" if roll < 0.06 else "n9" if roll < 0.09
            else rng.choice(NODES))
    req = agent_pb2.KeepaliveRequest(node=node, generation=rng.choice([0, 7, 8]),
                                     leased=rng.random() < 0.8)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        req.members.append(agent_pb2.MemberReport(
            group=rng.choice(GROUPS), member=rng.choice(MEMBERS),
            health=rng.choice(HEALTHS), seen_epoch=rng.randint(0, 2),
            active_epoch=rng.randint(0, 2), vip_held=rng.random() < 0.3))
    if rng.random() < 0.05:  # an invalid name after valid ones
        req.members.append(agent_pb2.MemberReport(group="g1", member="not valid",
                                                  health=types_pb2.HEALTH_HEALTHY))
    return req


def tweaked(old: agent_pb2.KeepaliveRequest,
            rng: random.Random) -> agent_pb2.KeepaliveRequest:
    """`old` with one field changed: what an agent's next round usually differs by."""
    req = agent_pb2.KeepaliveRequest()
    req.CopyFrom(old)
    kind = rng.randrange(4 if req.members else 2)
    if kind == 0:
        req.generation = rng.choice([0, 7, 8, 9])
    elif kind == 1:
        req.leased = not req.leased
    else:
        m = rng.choice(req.members)
        field = rng.choice(["health", "seen_epoch", "active_epoch", "vip_held"])
        if field == "health":
            m.health = rng.choice(HEALTHS)
        elif field == "vip_held":
            m.vip_held = not m.vip_held
        else:
            setattr(m, field, getattr(m, field) + 1)
    return req


def change_state(store: SharedStore, rng: random.Random) -> None:
    node, group, member = rng.choice(NODES), rng.choice(GROUPS), rng.choice(MEMBERS)
    hosted = [{"group": m.group, "member": m.name, "priority": m.priority}
              for m in store.current.members_on(node)] if node in store.current.nodes else []
    kind = rng.randrange(8)
    if kind == 0:  # a member added (or moved here, once its old node dropped it)
        store.submit(C.register_node(node, "198.18.0.1", [
            *hosted, {"group": group, "member": member, "priority": 100}],
            remove_undeclared=True))
    elif kind == 1 and hosted:  # a member removed from its node
        hosted.pop(rng.randrange(len(hosted)))
        store.submit(C.register_node(node, "198.18.0.1", hosted, remove_undeclared=True))
    elif kind == 2:  # node unregistered
        store.submit(C.remove_node(node, force=True))
    elif kind == 3:
        store.submit(C.readmit_node(node))
        store.submit(C.register_node(node, "198.18.0.1", hosted, remove_undeclared=True))
    elif kind == 4:
        store.submit(C.delete_group(group, force=True))
    elif kind == 5:
        store.submit(C.apply_groups([{"name": g} for g in GROUPS]))
    elif kind == 6:  # a change the answer does not show
        store.submit(C.set_maintenance(node, rng.random() < 0.5))
    else:  # a new state object, equal in every field, the revision too
        store.current = dataclasses.replace(store.current)


def table_view(leases: LeaseTable, now: float) -> tuple:
    """Everything the lease table tells anyone, at `now`."""
    reports = {(n, g, m): leases.report(n, g, m)
               for n in [*NODES, "n9"] for g in GROUPS for m in [*MEMBERS, "not valid"]}
    return (leases.observations(0.0, None, now), leases.ages([*NODES, "n9"], now),
            {n: leases.last_seen(n) for n in NODES}, reports, leases.tracked(),
            leases.next_expiry(TTL, now))


@pytest.mark.parametrize("seed", range(40))
def test_cached_handler_is_the_full_handler(seed: int) -> None:
    rng = random.Random(seed)
    store = SharedStore()
    store.submit(C.apply_groups([{"name": g} for g in GROUPS]))
    for i, node in enumerate(NODES):
        store.submit(C.register_node(node, "198.18.0.1", [
            {"group": GROUPS[i % 3], "member": MEMBERS[i % 3], "priority": 100}]))
    cached, cached_leases, cached_calls = servicer(store, cached=True)
    assert isinstance(cached.validated, CountingCache)
    full, full_leases, full_calls = servicer(store, cached=False)
    last: dict[str, agent_pb2.KeepaliveRequest] = {}
    now, seq = 1.0, 0
    for step in range(500):
        if rng.random() < 0.06:
            change_state(store, rng)
        node = rng.choice(NODES)
        roll = rng.random()
        if node in last and roll < 0.6:
            req = last[node]  # the node's last keepalive again: only seq moves
        elif node in last and roll < 0.8:
            req = tweaked(last[node], rng)  # one field of it changed
            last[node] = req
        else:
            req = random_request(rng)
            last[req.node] = req
        seq += 1
        req.seq = seq
        # Mostly one keepalive interval apart, sometimes a silence past the TTL, and
        # sometimes an arrival dated before the last one (kernel stamps of a batch).
        now += rng.choice([0.0, 0.01, 0.06, 0.06, 0.06, 0.3, -0.02])
        got = cached.handle_datagram(req, now)
        want = full.handle_datagram(req, now)
        where = f"seed {seed} step {step}: {req}"
        assert got.SerializeToString() == want.SerializeToString(), where
        assert got == want, where
        assert (cached_calls.on_change, cached_calls.reports_changed) == (
            full_calls.on_change, full_calls.reports_changed), where
        assert cached.keepalives == full.keepalives, where
        assert table_view(cached_leases, now) == table_view(full_leases, now), where
    assert cached.validated.hits > 30  # the cache was used, not only filled


def test_an_unchanged_keepalive_is_answered_from_the_cache() -> None:
    """The cheap path is taken (the point of the cache): the same request against the
    same state is not checked again, and a new state is."""
    store = SharedStore()
    store.submit(C.apply_groups([{"name": "g1"}]))
    store.submit(C.register_node("n1", "198.18.0.1", [{"group": "g1", "member": "a"}]))
    api, leases, _ = servicer(store, cached=True)
    req = agent_pb2.KeepaliveRequest(node="n1", seq=1, members=[agent_pb2.MemberReport(
        group="g1", member="a", health=types_pb2.HEALTH_HEALTHY)])
    api.handle_datagram(req, 1.0)
    known = api.validated.get("n1", store.current, first_key(req))
    assert known is not None and known.answer.seq == 0
    req.seq = 2
    second = api.handle_datagram(req, 1.06)
    assert second.seq == 2 and second.result == agent_pb2.KEEPALIVE_RESULT_ACK
    assert api.validated.get("n1", store.current, first_key(req)) is known  # reused
    assert leases.last_seen("n1") == 1.06
    store.current = dataclasses.replace(store.current)  # same content, new state
    api.handle_datagram(req, 1.12)
    again = api.validated.get("n1", store.current, first_key(req))
    assert again is not None and again is not known


def first_key(req: agent_pb2.KeepaliveRequest) -> bytes:
    copy = agent_pb2.KeepaliveRequest()
    copy.CopyFrom(req)
    copy.seq = 0
    return copy.SerializeToString()


def test_one_keepalive_in_eight_is_timed_the_first_included() -> None:
    """The ack-time histogram is fed a sample (ACK_TIME_SAMPLE), starting at once."""
    store = SharedStore()
    store.submit(C.apply_groups([{"name": "g1"}]))
    store.submit(C.register_node("n1", "198.18.0.1", [{"group": "g1", "member": "a"}]))
    api, _, _ = servicer(store, cached=True)
    timed: list[float] = []
    api.on_ack_time = timed.append
    req = agent_pb2.KeepaliveRequest(node="n1")
    for seq in range(1, 18):
        req.seq = seq
        assert api.handle_datagram(req, seq * 0.06).seq == seq
        assert len(timed) == 1 + (seq - 1) // ACK_TIME_SAMPLE
    assert len(timed) == 3 and all(t >= 0 for t in timed)
