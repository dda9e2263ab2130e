"""A 3-node coordinator cluster on loopback, driven only through gRPC and the CLI.

The faults are real: SIGKILL of coordinator processes (whole process group),
restarts from the on-disk journal. Agents are real AgentSession objects
talking gRPC to every coordinator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from cluster import CoordinatorCluster
from support import wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.v1 import admin_pb2

TTL = 0.6
INTERVAL = 0.1

pytestmark = pytest.mark.slow


class Roles:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[float, str, bool, int, str]] = []

    def cb(self, group: str, member: str, active: bool, epoch: int, why: str) -> None:
        with self.lock:
            self.log.append((time.monotonic(), member, active, epoch, why))

    def since(self, t: float) -> list[tuple[float, str, bool, int, str]]:
        with self.lock:
            return [e for e in self.log if e[0] >= t]

    def holders(self) -> set[str]:
        held: set[str] = set()
        with self.lock:
            for _, m, a, _, _ in self.log:
                (held.add if a else held.discard)(m)
        return held

    def max_holders(self) -> int:
        held: set[str] = set()
        worst = 0
        with self.lock:
            for _, m, a, _, _ in self.log:
                (held.add if a else held.discard)(m)
                worst = max(worst, len(held))
        return worst


@pytest.fixture(params=["raft", "etcd"])
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CoordinatorCluster]:
    """The same cluster on both backends: embedded Raft, and one shared real etcd."""
    endpoint = (request.getfixturevalue("etcd_server").endpoint
                if request.param == "etcd" else None)
    c = CoordinatorCluster(tmp_path, ttl=TTL, interval=INTERVAL, backend=request.param,
                           etcd_endpoint=endpoint)
    try:
        c.start_all()
        yield c
        reps = [getattr(request.node, f"rep_{w}", None) for w in ("setup", "call")]
        if any(r is not None and r.failed for r in reps):
            print(c.logs(), file=sys.stderr)
    finally:
        c.stop_all()


@pytest.fixture
def agents(cluster: CoordinatorCluster) -> Iterator[tuple[dict[str, AgentSession], Roles]]:
    roles = Roles()
    sessions = {}
    for node, member, prio in (("vm1", "m1", 200), ("vm2", "m2", 100)):
        s = AgentSession(node, [HostedMember("web", member, prio)], cluster.endpoints,
                         ttl=TTL, interval=INTERVAL, on_role=roles.cb,
                         tls=cluster.tls_for(f"node/{node}"))
        s.start()
        sessions[node] = s
    leader = cluster.leader()
    assert leader is not None
    wait_for(lambda: (g := cluster.group(leader)) is not None and g.active == "m1"
             and all(m.health == 2 for m in g.members) and len(g.members) == 2,
             10, what="m1 active and both members healthy")
    wait_for(lambda: roles.holders() == {"m1"}, 5, what="m1's agent acting")
    every_coordinator_acks(cluster, sessions.values())
    yield sessions, roles
    for s in sessions.values():
        s.stop()


def every_coordinator_acks(cluster: CoordinatorCluster, sessions: Iterable[AgentSession],
                           timeout: float = 20.0) -> None:
    """Wait until every coordinator has acknowledged a keepalive of every agent after
    this call: the tests below kill one of three coordinators and expect the other two
    (a majority) to carry the agents' leases. `start_all` returns once there is a
    leader; on a loaded host the last coordinator may start serving seconds later (and
    an agent reconnects to it only after gRPC's backoff): killing the leader before
    then leaves one acknowledging coordinator, and the agent rightly drops its role
    when its lease lapses (the `[etcd]` flake of the leader-kill test)."""
    sessions = list(sessions)
    before = [dict(s.lease.acks_by) for s in sessions]
    wait_for(lambda: all(
        all(dict(s.lease.acks_by).get(cid, 0) > seen.get(cid, 0) for cid in cluster.ids)
        for s, seen in zip(sessions, before, strict=True)), timeout,
        what="every coordinator acknowledging every agent")


def epoch_and_active(cluster: CoordinatorCluster, cid: str) -> tuple[int, str]:
    g = cluster.group(cid)
    assert g is not None
    return g.epoch, g.active


def test_leader_kill_does_not_fail_over_healthy_active(cluster, agents):
    _, roles = agents
    leader = cluster.leader()
    before = epoch_and_active(cluster, leader)
    killed_at = time.monotonic()
    cluster.kill(leader)
    survivors = [c for c in cluster.ids if c != leader]
    # A new leader is elected among the survivors...
    new_leader = wait_for(cluster.leader, 10, what="a new leader")
    assert new_leader in survivors
    # ...and the cluster serves writes again.
    ch, admin = cluster.admin(new_leader)
    with ch:
        wait_for(lambda: admin.SetMaintenance(admin_pb2.SetMaintenanceRequest(
            node="vm2", on=False), timeout=1) is not None, 10, what="a write to commit")
    # Keep watching for longer than a TTL after the new leader took over.
    time.sleep(2 * TTL)
    for cid in survivors:
        assert epoch_and_active(cluster, cid) == before
    # The healthy active's agent never lost its role (its lease never lapsed).
    assert [e for e in roles.since(killed_at) if not e[2]] == []
    assert roles.holders() == {"m1"}
    events = cluster.status(new_leader).groups[0]
    assert events.epoch == before[0]


def test_all_coordinators_killed_and_restarted_keep_roles_and_epochs(cluster, agents):
    _, roles = agents
    leader = cluster.leader()
    ch, admin = cluster.admin(leader)
    with ch:
        resp = admin.Switchover(admin_pb2.SwitchoverRequest(group="web", to_member="m2"),
                                timeout=10)
    assert resp.completed
    wait_for(lambda: roles.holders() == {"m2"}, 5, what="m2 acting after switchover")
    before = epoch_and_active(cluster, leader)
    assert before == (3, "m2")
    killed_at = time.monotonic()
    for cid in list(cluster.ids):
        cluster.kill(cid)
    for cid in cluster.ids:
        cluster.start(cid)
    new_leader = wait_for(cluster.leader, 20, what="a leader after full restart")
    wait_for(lambda: epoch_and_active(cluster, new_leader)[0] >= before[0], 10,
             what="restored state on the leader")
    # Agents come back; nothing fails over: the same active everywhere. If its lease
    # lapsed meanwhile (the agent released), the leader promoted it again under its
    # new lease generation: one epoch more (docs/design.md §3 "Lease generations").
    wait_for(lambda: roles.holders() == {"m2"}, 10, what="m2 acting again after restart")
    time.sleep(2 * TTL)
    lapsed = any(not active for _, _, active, _, _ in roles.since(killed_at))
    want = (before[0] + 1 if lapsed else before[0], "m2")
    for cid in cluster.ids:
        wait_for(lambda cid=cid: epoch_and_active(cluster, cid) == want, 5,
                 what=f"{cid} agrees on {want}")
    assert roles.holders() == {"m2"}
    assert roles.max_holders() == 1


def test_silent_member_failed_over_after_ttl_never_before(cluster, agents):
    sessions, roles = agents
    paused_at = time.monotonic()
    sessions["vm1"].paused = True
    wait_for(lambda: roles.holders() == {"m2"}, 10, what="m2 takes over")
    with roles.lock:
        m1_off = next(t for t, m, a, _, _ in roles.log if m == "m1" and not a)
        m2_on = next(t for t, m, a, _, _ in roles.log if m == "m2" and a)
    assert m2_on >= paused_at - INTERVAL + TTL  # not before the TTL
    assert m1_off < m2_on  # the old active stopped first
    assert roles.max_holders() == 1
    leader = cluster.leader()
    g = cluster.group(leader)
    assert g.active == "m2" and g.epoch == 2
    assert {m.name: m.health for m in g.members}["m1"] == 4  # HEALTH_LOST


def test_cli_status_switchover_and_events(cluster, agents):
    env_endpoints = ",".join(cluster.endpoints)

    def vnfha(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vnfha.coordinator.cli", "--endpoint",
                               env_endpoints, *cluster.tls_args(), *args],
                              capture_output=True, text=True, timeout=30, check=False)

    st = vnfha("status", "--json")
    assert st.returncode == 0, st.stderr
    doc = json.loads(st.stdout)
    assert json.dumps(doc).count('"m1"') >= 1
    out = vnfha("status")
    assert out.returncode == 0 and "m1" in out.stdout and "active" in out.stdout.lower()
    sw = vnfha("switchover", "web", "--to", "m2")
    assert sw.returncode == 0, sw.stderr
    assert "m2" in sw.stdout
    bad = vnfha("switchover", "nope")
    assert bad.returncode == 1 and "nope" in bad.stderr
    ev = vnfha("events", "--limit", "50")
    assert ev.returncode == 0 and "promoted" in ev.stdout and "demoted" in ev.stdout
