"""Operator mistakes the agent must survive (issue 12): a stale coordinator list, and a
coordinator cluster whose state was reset under running agents.

Real coordinator processes (embedded Raft) on loopback; agents are real AgentSession
objects speaking gRPC to them.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster import CoordinatorCluster
from support import wait_for

from vnfha.agents.session import AgentSession, HostedMember

TTL = 0.6
INTERVAL = 0.1

pytestmark = pytest.mark.slow


class Roles:
    """Every role change any agent made, in order; the most members active at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: set[str] = set()
        self.worst = 0

    def cb(self, group: str, member: str, active: bool, epoch: int, why: str) -> None:
        with self.lock:
            (self.held.add if active else self.held.discard)(member)
            self.worst = max(self.worst, len(self.held))


@pytest.fixture
def five(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CoordinatorCluster]:
    c = CoordinatorCluster(tmp_path, size=5, ttl=TTL, interval=INTERVAL)
    try:
        c.start_all()
        yield c
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.logs(), file=sys.stderr)
    finally:
        for cid in list(c.procs):
            try:
                c.signal(cid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        c.stop_all()


def test_stale_coordinator_list_after_growth_holds_no_unjustified_lease(five):
    """The cluster grew 3 -> 5; vm1's agent still lists the old three. With all three
    acknowledging it has 3 of 5 (a real majority); once only two of them answer (the old
    majority, not the new one) it must not hold the lease. On the old code it kept
    renewing with 2 acks while the coordinators' majority (3 of 5) could expire it."""
    roles = Roles()
    stale = AgentSession("vm1", [HostedMember("web", "web-1", 200)], five.endpoints[:3],
                         ttl=TTL, interval=INTERVAL, on_role=roles.cb,
                         tls=five.tls_for("node/vm1"))
    full = AgentSession("vm2", [HostedMember("web", "web-2", 100)], five.endpoints,
                        ttl=TTL, interval=INTERVAL, on_role=roles.cb,
                        tls=five.tls_for("node/vm2"))
    stale.start()
    full.start()
    try:
        wait_for(lambda: stale.lease.valid(time.monotonic()), 10,
                 what="vm1's lease with all three listed coordinators acknowledging")
        assert stale.lease.quorum == 3, "the agent counts against the announced five"
        five.signal("c3", signal.SIGSTOP)  # only c1 and c2 of the agent's list answer now
        wait_for(lambda: not stale.lease.valid(time.monotonic()), 5,
                 what="vm1's lease to lapse with two of five acknowledging")
        end = time.monotonic() + 4 * TTL
        while time.monotonic() < end:  # it stays lapsed: two acks never renew it
            assert not stale.lease.valid(time.monotonic()), "renewed with 2 of 5 acks"
            assert stale.role("web", "web-1").active_epoch == 0
            time.sleep(INTERVAL / 2)
        five.signal("c3", signal.SIGCONT)
        wait_for(lambda: stale.lease.valid(time.monotonic()), 10,
                 what="vm1's lease back with three of five")
        assert roles.worst <= 1, "two members acted as active at once"
    finally:
        stale.stop()
        full.stop()


def _members(c: CoordinatorCluster, ids: list[str]) -> None:
    """Rewrite every coordinator's config so the cluster consists of `ids`."""
    for cid in c.ids:
        cfg = yaml.safe_load(c.configs[cid].read_text())
        cfg["cluster"]["members"] = [{"id": i, "api": c.api[i]} for i in ids]
        c.configs[cid].write_text(yaml.safe_dump(cfg))


def test_cluster_grown_from_three_to_five_under_a_running_agent(tmp_path: Path, etcd_server,
                                                                request: pytest.FixtureRequest):
    """A real growth: three coordinators (etcd backend: a member list is config only),
    an agent listing those three; then c4 and c5 join and c1..c3 restart one by one with
    the five-member config. The agent keeps its old list. Once the new membership is
    announced, two acknowledgements (the old majority) must not hold the lease."""
    c = CoordinatorCluster(tmp_path, size=5, ttl=TTL, interval=INTERVAL, backend="etcd",
                           etcd_endpoint=etcd_server.endpoint)
    agent: AgentSession | None = None
    try:
        old, new = c.ids[:3], c.ids
        _members(c, old)
        for cid in old:
            c.start(cid)
        wait_for(c.leader, 20, what="a leader among three")
        agent = AgentSession("vm1", [HostedMember("web", "web-1", 200)], c.endpoints[:3],
                             ttl=TTL, interval=INTERVAL, tls=c.tls_for("node/vm1"))
        agent.start()
        wait_for(lambda: agent.lease.valid(time.monotonic()), 10, what="lease with three")
        assert agent.lease.quorum == 2
        _members(c, new)
        for cid in new[3:]:
            c.start(cid)
        for cid in old:  # rolling restart onto the five-member config
            c.kill(cid)
            c.start(cid)
            wait_for(lambda cid=cid: c.status(cid, timeout=0.5), 20, what=f"{cid} serving")
        wait_for(lambda: agent.lease.quorum == 3, 10, what="the five-member view announced")
        wait_for(lambda: agent.lease.valid(time.monotonic()), 10,
                 what="lease with all three listed acknowledging (3 of 5)")
        c.signal("c3", signal.SIGSTOP)  # the old majority (c1, c2) still answers
        wait_for(lambda: not agent.lease.valid(time.monotonic()), 5,
                 what="the lease to lapse on 2 of 5")
        end = time.monotonic() + 4 * TTL
        while time.monotonic() < end:
            assert not agent.lease.valid(time.monotonic()), "renewed with 2 of 5 acks"
            time.sleep(INTERVAL / 2)
    finally:
        if agent is not None:
            agent.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.logs(), file=sys.stderr)
        for cid in list(c.procs):
            try:
                c.signal(cid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        c.stop_all()


def test_agents_register_again_after_the_coordinators_state_was_reset(tmp_path: Path):
    """Kill every coordinator, wipe their data, start them again: the new cluster knows
    no node. The agents must register by themselves (the old code logged UNKNOWN_NODE
    forever and every lease stayed lapsed until the agents were restarted)."""
    roles = Roles()
    cluster = CoordinatorCluster(tmp_path, ttl=TTL, interval=INTERVAL)
    sessions: list[AgentSession] = []
    try:
        cluster.start_all()
        for node, member, prio in (("vm1", "web-1", 200), ("vm2", "web-2", 100)):
            s = AgentSession(node, [HostedMember("web", member, prio)], cluster.endpoints,
                             ttl=TTL, interval=INTERVAL, on_role=roles.cb,
                             tls=cluster.tls_for(f"node/{node}"))
            s.start()
            sessions.append(s)
        wait_for(lambda: roles.held == {"web-1"}, 15, what="web-1 acting as active")
        cluster.stop_all()
        shutil.rmtree(tmp_path / "data")
        wait_for(lambda: not roles.held, 5, what="web-1 released when its lease lapsed")
        cluster.start_all()

        def back() -> bool:
            leader = cluster.leader()
            g = cluster.group(leader) if leader else None
            return g is not None and {m.name for m in g.members} == {"web-1", "web-2"}

        wait_for(back, 20, what="both nodes registered again in the reset cluster")
        wait_for(lambda: all(s.lease.valid(time.monotonic()) for s in sessions), 10,
                 what="both agents' leases renewed")
        wait_for(lambda: len(roles.held) == 1, 15, what="a member acting as active again")
        assert roles.worst <= 1, "two members acted as active at once"
    finally:
        for s in sessions:
            s.stop()
        cluster.stop_all()
