"""Failsafe on the etcd backend (issue 16): etcd down longer than `session_ttl` makes every
coordinator refuse keepalives, so every agent loses its quorum lease at once. With
failsafe on, the active keeps its role on its standby's failsafe lease (agents talk to
each other over mTLS on loopback); when etcd is back the same member carries on at the
same epoch. The same outage without failsafe stops the active
(test_etcd_cluster.py::test_etcd_outage_stops_acknowledgements_then_the_same_active_resumes).

Real `vnfha coordinator` processes, a real etcd, real AgentSession objects with their
real FailsafePeer listeners.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cluster import CoordinatorCluster
from support import wait_for
from test_cluster import INTERVAL, TTL, Roles, epoch_and_active
from test_etcd_cluster import SESSION_TTL, cluster, etcd  # noqa: F401 (fixtures)

from vnfha.agents.failsafe_peer import FailsafePeer
from vnfha.agents.session import AgentSession, HostedMember
from vnfha.v1 import admin_pb2
from vnfha_lab.etcdserver import EtcdServer
from vnfha_lab.ports import free_ports

pytestmark = pytest.mark.slow
LEASE = 1.0


@pytest.fixture
def pair(cluster: CoordinatorCluster  # noqa: F811
         ) -> Iterator[tuple[dict[str, AgentSession], dict[str, FailsafePeer], Roles]]:
    leader = wait_for(cluster.leader, 10, what="a leader")
    ch, admin = cluster.admin(leader)
    with ch:
        admin.SetFailsafe(admin_pb2.SetFailsafeRequest(lease_ms=int(LEASE * 1000)), timeout=5)
    roles = Roles()
    sessions: dict[str, AgentSession] = {}
    peers: dict[str, FailsafePeer] = {}
    ports = free_ports(2)
    span = TTL * (1 - 0.01) - 0.05
    for (node, member, prio), port in zip((("vm1", "m1", 200), ("vm2", "m2", 100)), ports,
                                          strict=True):
        tls = cluster.tls_for(f"node/{node}")
        s = AgentSession(node, [HostedMember("web", member, prio)], cluster.endpoints,
                         ttl=TTL, interval=INTERVAL, on_role=roles.cb, tls=tls,
                         failsafe_endpoint=f"127.0.0.1:{port}")
        p = FailsafePeer(s, f"127.0.0.1:{port}", tls, interval=INTERVAL, span=span,
                         drift=0.01, margin=0.05)
        s.failsafe = p
        s.start()
        p.start()
        sessions[node], peers[node] = s, p
    try:
        wait_for(lambda: (g := cluster.group(leader)) is not None and g.active == "m1"
                 and len(g.members) == 2 and all(m.health == 2 for m in g.members),
                 15, what="m1 active and both members healthy")
        wait_for(lambda: roles.holders() == {"m1"}, 10, what="m1's agent acting")
        # Both agents have the setting and each other's endpoint in their assignments.
        wait_for(lambda: all((a := s.assignment("web", m)) is not None
                             and a.failsafe_lease_ms and a.peers[0].endpoint
                             for s, m in ((sessions["vm1"], "m1"), (sessions["vm2"], "m2"))),
                 10, what="failsafe peers delivered")
        yield sessions, peers, roles
    finally:
        for p in peers.values():
            p.stop()
        for s in sessions.values():
            s.stop()


def test_etcd_outage_longer_than_session_ttl_the_active_keeps_serving(cluster, pair,  # noqa: F811
                                                                       etcd: EtcdServer):  # noqa: F811
    sessions, peers, roles = pair
    leader = cluster.leader()
    before = epoch_and_active(cluster, leader)
    down_at = time.monotonic()
    etcd.stop()
    # Past the session TTL every coordinator refuses keepalives: both quorum leases end.
    wait_for(lambda: not sessions["vm1"].lease.valid(time.monotonic())
             and not sessions["vm2"].lease.valid(time.monotonic()),
             SESSION_TTL + 10, what="both agents without a quorum lease")
    time.sleep(4.0)  # the outage goes on: failsafe must carry the role
    assert peers["vm1"].engaged() == {"web": before[0]}
    assert roles.since(down_at) == [], f"a role changed during the outage: {roles.since(down_at)}"
    assert roles.holders() == {"m1"}
    etcd.start()
    wait_for(lambda: sessions["vm1"].lease.valid(time.monotonic())
             and sessions["vm2"].lease.valid(time.monotonic()), 20,
             what="both agents acknowledged again")
    time.sleep(LEASE + 3 * TTL)  # the rejoin grace: a failover would show by now
    # The same active at the same epoch (issue 16): vm1's agent has a new lease
    # generation when the coordinators are back while it still holds the epoch on
    # failsafe leases, and the leader re-stamps m1 under it without a new epoch
    # (docs/design.md "Failsafe"); m1 never releases.
    for cid in cluster.ids:
        wait_for(lambda cid=cid: epoch_and_active(cluster, cid) == before, 10,
                 what=f"{cid} on the same active at the same epoch")
    vm1 = sessions["vm1"]
    wait_for(lambda: (a := vm1.assignment("web", "m1")) is not None
             and a.generation == vm1._generation, 10,
             what="m1's assignment stamped with vm1's new lease generation")
    changes = [(m, a, e) for _, m, a, e, _ in roles.since(down_at)]
    assert changes == [], f"the outage or the return caused a role change: {changes}"
    assert roles.max_holders() == 1
    assert peers["vm1"].engaged() == {}
    assert peers["vm2"].answered["granted"] > 0
