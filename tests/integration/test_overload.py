"""Graceful overload (issue 14): twice the keepalives a coordinator cluster can take,
for a minute, lapses no lease en masse and fails over no healthy active.

Three real coordinator processes (embedded Raft) on loopback; a real pair of agents
(AgentSession, on the keepalive fast path as deployed) runs group `web`; a load
generator in its own process speaks the real agent protocol
(tests/integration/loadgen.py: RegisterNode, WatchAssignments streams to every
coordinator, a real QuorumLease per node, and keepalives either on the fast path
(`fast`: keys from OpenFastPath, AES-GCM datagrams, the agent's own fallback to the
gRPC stream) or on the gRPC Keepalive streams (`grpc`)). The
capacity is measured at run time (the machine is shared), by adding nodes while every
window stays clean; then the node count is doubled and held for 60 s.

On the old code the backlog of unread keepalives made live nodes look silent on every
coordinator at once: false expiries committed, every lease of the load generator
lapsed, and the healthy active was failed over. On the fast path each datagram is
dated by the kernel's receive stamp (coordinator/rxclock.py), so a backlog in the
socket is not silence.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc
import loadgen
import pytest
from support import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from cluster import CoordinatorCluster

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.v1 import admin_pb2

# A slower profile than the default (0.25 s / 0.06 s): on 2 cores shared with other
# test runs the machine's own scheduling stalls reach hundreds of milliseconds, and
# the test is about the coordinators' overload, not that noise. The mechanism is the
# same at any TTL: past capacity the backlog of unread keepalives grows without bound.
TTL = 1.0
INTERVAL = 0.1
SECONDS = 60.0
MAX_NODES = 800
MASS = 0.01  # more than this share of nodes without a lease at one moment: a mass lapse

pytestmark = pytest.mark.slow


class Roles:
    """Role changes of the real pair, as their agents made them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changes: list[tuple[float, str, bool, int, str]] = []

    def cb(self, group: str, member: str, active: bool, epoch: int, why: str) -> None:
        with self.lock:
            self.changes.append((time.monotonic(), member, active, epoch, why))


def group(c: CoordinatorCluster):
    """`web` as any running coordinator reports it."""
    for cid in c.ids:
        try:
            g = c.group(cid)
        except grpc.RpcError:
            continue
        if g is not None:
            return g
    return None


def declared_lost(c: CoordinatorCluster, since: float) -> list[str]:
    """Members the coordinators committed as lost since wall time `since`."""
    for cid in c.ids:
        try:
            ch, admin = c.admin(cid)
            with ch:
                events = admin.ListEvents(admin_pb2.ListEventsRequest(), timeout=10).events
        except grpc.RpcError:
            continue
        return [f"{e.group}/{e.member}" for e in events if e.kind == "health_changed"
                and "-> lost" in e.reason and e.time.ToNanoseconds() / 1e9 >= since]
    raise AssertionError("no coordinator answered ListEvents")


GRPC_XFAIL = pytest.mark.xfail(strict=False, reason=(
    "issue 14, graceful overload not reached on the gRPC stream: on a quiet machine "
    "(2026-12-07, merged main) the measured capacity was 120 nodes, and at 240 nodes for "
    "60 s every node's lease lapsed and 238 members were declared lost (0 promotions): "
    "arrivals are stamped when the event loop reads them, so a backlog waiting in the "
    "transport looks like silence (docs/design.md, Overload)"))


FAST_XFAIL = pytest.mark.xfail(strict=False, reason=(
    "issue 14, not passing yet on the fast path: 2026-12-07, busy machine (load 25-35): the "
    "generator ran at 7 % of a core and live nodes were really silent; quiet machine (load "
    "2-7, two runs): no coordinator reported overload, but nodes the generator had just "
    "registered were declared lost (unknown -> lost, 2.0 s after their registration: no "
    "keepalive of theirs acknowledged within 2 TTLs), 135-160 of them during the ramp, plus "
    "3 live nodes (healthy -> lost); not diagnosed (bench/README.md, scale.py)"))


@pytest.mark.parametrize("transport", [pytest.param("fast", marks=FAST_XFAIL),
                                       pytest.param("grpc", marks=GRPC_XFAIL)])
def test_twice_capacity_for_a_minute_lapses_no_lease_en_masse(tmp_path, transport):
    c = CoordinatorCluster(tmp_path, ttl=TTL, interval=INTERVAL, tls=False,
                           stabilization=1.0)
    roles = Roles()
    pair = [AgentSession(node, [HostedMember("web", member, prio)], c.endpoints, ttl=TTL,
                         interval=INTERVAL, on_role=roles.cb)
            for node, member, prio in (("vm-a", "a", 200), ("vm-b", "b", 100))]
    try:
        c.start_all()
        loadgen.create_groups(c.api[wait_for(c.leader, 20, what="a leader")], MAX_NODES)
        for s in pair:
            s.start()
        before = wait_for(lambda: (g := group(c)) is not None and g.active == "a" and g,
                          30, what="member a active")
        wait_for(lambda: pair[0].active_members() == [("web", "a")], 10,
                 what="vm-a's agent acting as active")
        loaded_from, loaded_wall = time.monotonic(), time.time()
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
            result = ex.submit(loadgen.ramp_then_overload, c.endpoints, INTERVAL, TTL,
                               step=8, step_seconds=4.0, factor=2.0, seconds=SECONDS,
                               max_nodes=MAX_NODES, transport=transport).result(timeout=900)
        over = result["overload"]
        report = f"capacity {result['capacity_nodes']} nodes; steps {result['steps']}; " \
                 f"at twice that: {over}"
        print(report)
        cap = result["capacity_nodes"]
        if cap == 0:
            pytest.skip(f"the shared machine is too busy to measure a capacity: {report}")
        assert over["nodes"] >= min(2 * cap, MAX_NODES), report
        # What the coordinators decided: nothing failed, so no node may be declared lost
        # and nothing may fail over.
        lost = declared_lost(c, loaded_wall)
        assert lost == [], f"{len(lost)} members declared lost, e.g. {lost[:5]}: {report}"
        assert over["promotions"] == 0, f"false failovers in the load's groups: {report}"
        # The healthy active was never failed over.
        after = group(c)
        assert after is not None and after.active == "a", report
        assert after.epoch == before.epoch, report
        # What the agents saw. Judged only if the load generator itself ran on time (its
        # event loop's p99 lateness under TTL/10): a generator, a test process or
        # coordinators starved by the other work of a shared machine see
        # acknowledgements late, and leases lapse that no coordinator let lapse.
        if over["generator_lag_p99_ms"] > TTL / 10 * 1000:
            pytest.skip(f"decisions checked, leases not: the load generator's own loop "
                        f"ran {over['generator_lag_p99_ms']} ms late (p99): {report}")
        # The pair's active agent never stopped acting (its lease never ran out) ...
        with roles.lock:
            dropped = [ch for ch in roles.changes if ch[0] >= loaded_from]
        assert dropped == [], f"role changes of the pair under load: {dropped}; {report}"
        # ... and no mass lapse: at no moment were more than 1 % of the nodes without one.
        assert over["min_nodes_with_lease"] >= (1 - MASS) * over["nodes"], report
    finally:
        for s in pair:
            s.stop()
        c.stop_all()
