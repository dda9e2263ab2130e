"""The coordinator's gRPC API over real sockets: one coordinator, real agent sessions.

Covers the bad-input contract (clear error, state unchanged) and the basic
election / failover / switchover flows end to end through gRPC.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc, types_pb2

TTL = 0.6
INTERVAL = 0.1


class RoleLog:
    """Every role transition any agent made, in order, with the local time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[float, str, bool, int, str]] = []

    def callback(self, node: str):
        def on_role(group: str, member: str, active: bool, epoch: int, why: str) -> None:
            with self.lock:
                self.entries.append((time.monotonic(), member, active, epoch, why))
        return on_role

    def active_now(self) -> set[str]:
        holders: set[str] = set()
        with self.lock:
            for _, member, active, _, _ in self.entries:
                (holders.add if active else holders.discard)(member)
        return holders

    def max_concurrent_actives(self) -> int:
        holders: set[str] = set()
        worst = 0
        with self.lock:
            for _, member, active, _, _ in self.entries:
                (holders.add if active else holders.discard)(member)
                worst = max(worst, len(holders))
        return worst


@pytest.fixture
def coordinator() -> Iterator[tuple[Coordinator, str]]:
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.5},
        "groups": [{"name": "web", "vip": "198.18.0.100/24"}],
    })
    c = Coordinator(cfg)
    c.start()
    endpoint = f"127.0.0.1:{port}"
    wait_for(lambda: "web" in c.store.state().groups, 5, what="declared group")
    yield c, endpoint
    c.stop()


@pytest.fixture
def admin(coordinator) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    _, endpoint = coordinator
    with grpc.insecure_channel(endpoint) as ch:
        yield admin_pb2_grpc.AdminServiceStub(ch)


@pytest.fixture
def agents(coordinator) -> Iterator[tuple[dict[str, AgentSession], RoleLog, dict[str, bool]]]:
    _, endpoint = coordinator
    roles = RoleLog()
    healthy = {"m1": True, "m2": True}
    sessions = {}
    for node, member, prio in (("vm1", "m1", 200), ("vm2", "m2", 100)):
        s = AgentSession(node, [HostedMember("web", member, prio)], [endpoint], ttl=TTL,
                         interval=INTERVAL, on_role=roles.callback(node),
                         health=lambda g, m: healthy[m])
        s.start()
        sessions[node] = s
    c, _ = coordinator
    wait_for(lambda: {m.health.value for m in c.store.state().groups["web"].members.values()}
             == {"healthy"} and len(c.store.state().groups["web"].members) == 2,
             5, what="both members registered and healthy")
    yield sessions, roles, healthy
    for s in sessions.values():
        s.stop()


def group(c: Coordinator):
    return c.store.state().groups["web"]


def test_highest_priority_member_elected_and_told(coordinator, agents):
    c, _ = coordinator
    _, roles, _ = agents
    g = wait_for(lambda: group(c).active and group(c), 5, what="an active")
    assert g.active == "m1" and g.epoch == 1
    wait_for(lambda: roles.active_now() == {"m1"}, 3, what="m1's agent acting as active")


def test_silent_node_failed_over_after_ttl_not_before(coordinator, agents):
    c, _ = coordinator
    sessions, roles, _ = agents
    wait_for(lambda: roles.active_now() == {"m1"}, 5, what="m1 active")
    paused_at = time.monotonic()
    sessions["vm1"].paused = True
    g = wait_for(lambda: group(c).active == "m2" and group(c), 5, what="failover to m2")
    promoted = next(e for e in reversed(c.store.state().events) if e.kind == "promoted")
    assert promoted.member == "m2" and g.epoch == 2
    wait_for(lambda: roles.active_now() == {"m2"}, 3, what="m2 acting")
    with roles.lock:
        m1_off = next(t for t, m, a, _, _ in roles.entries if m == "m1" and not a)
        m2_on = next(t for t, m, a, _, _ in roles.entries if m == "m2" and a)
    # The last keepalive went out at most one interval before the pause, and the
    # coordinator counts a full TTL from its arrival.
    assert m2_on >= paused_at - INTERVAL + TTL
    # The old active's own lease ended first: never two actives.
    assert m1_off < m2_on
    assert roles.max_concurrent_actives() == 1


def test_unhealthy_active_releases_before_standby_promoted(coordinator, agents):
    c, _ = coordinator
    _, roles, healthy = agents
    wait_for(lambda: roles.active_now() == {"m1"}, 5, what="m1 active")
    healthy["m1"] = False
    wait_for(lambda: roles.active_now() == {"m2"}, 5, what="m2 acting after m1 unhealthy")
    kinds = [(e.kind, e.member) for e in c.store.state().events]
    i_demote = kinds.index(("demoted", "m1"))
    i_release = kinds.index(("released", "m1"))
    i_promote = kinds.index(("promoted", "m2"))
    assert i_demote < i_release < i_promote
    assert roles.max_concurrent_actives() == 1
    assert group(c).members["m1"].quarantined


def test_switchover_and_its_refusals(coordinator, agents, admin):
    c, _ = coordinator
    _, roles, healthy = agents
    wait_for(lambda: roles.active_now() == {"m1"}, 5, what="m1 active")
    resp = admin.Switchover(admin_pb2.SwitchoverRequest(group="web", to_member="m2"))
    assert resp.completed and resp.from_member == "m1" and resp.to_member == "m2"
    assert resp.epoch == 3  # demote (2), promote (3)
    wait_for(lambda: roles.active_now() == {"m2"}, 3, what="m2 acting")
    assert roles.max_concurrent_actives() == 1

    before = c.store.state()
    for req, code in [
        (admin_pb2.SwitchoverRequest(group="nope"), grpc.StatusCode.NOT_FOUND),
        (admin_pb2.SwitchoverRequest(group="web", to_member="ghost"), grpc.StatusCode.NOT_FOUND),
        (admin_pb2.SwitchoverRequest(group="web", to_member="m2"),
         grpc.StatusCode.FAILED_PRECONDITION),  # already active
        (admin_pb2.SwitchoverRequest(group=""), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            admin.Switchover(req)
        assert err.value.code() == code, (req, err.value.details())
        assert err.value.details()
    assert c.store.state().groups == before.groups

    healthy["m1"] = False
    wait_for(lambda: group(c).members["m1"].health.value == "unhealthy", 3, what="m1 unhealthy")
    before = c.store.state()
    with pytest.raises(grpc.RpcError) as err:
        admin.Switchover(admin_pb2.SwitchoverRequest(group="web", to_member="m1"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "unhealthy" in err.value.details()
    assert c.store.state().groups == before.groups


def test_maintenance_moves_the_active_off_the_node(agents, admin):
    _, roles, _ = agents
    wait_for(lambda: roles.active_now() == {"m1"}, 5, what="m1 active")
    assert admin.SetMaintenance(admin_pb2.SetMaintenanceRequest(node="vm1", on=True)).changed
    wait_for(lambda: roles.active_now() == {"m2"}, 5, what="active moved off vm1")
    assert roles.max_concurrent_actives() == 1
    with pytest.raises(grpc.RpcError) as err:
        admin.SetMaintenance(admin_pb2.SetMaintenanceRequest(node="vm9", on=True))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_malformed_agent_requests_are_refused_and_change_nothing(coordinator):
    c, endpoint = coordinator
    before = c.store.state()
    with grpc.insecure_channel(endpoint) as ch:
        agent = agent_pb2_grpc.AgentServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            agent.RegisterNode(agent_pb2.RegisterNodeRequest(node=""))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            agent.RegisterNode(agent_pb2.RegisterNodeRequest(
                node="vm1", members=[agent_pb2.MemberSpec(group="nope", member="x")]))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in err.value.details()
        replies = list(agent.Keepalive(iter([
            agent_pb2.KeepaliveRequest(node="", seq=1),
            agent_pb2.KeepaliveRequest(node="ghost", seq=2),
        ]), timeout=5))
        assert [r.result for r in replies] == [agent_pb2.KEEPALIVE_RESULT_INVALID,
                                               agent_pb2.KEEPALIVE_RESULT_UNKNOWN_NODE]
        agent.RegisterNode(agent_pb2.RegisterNodeRequest(
            node="vm1", members=[agent_pb2.MemberSpec(group="web", member="m1")]))
        registered = c.store.state()
        replies = list(agent.Keepalive(iter([agent_pb2.KeepaliveRequest(
            node="vm1", seq=3, members=[agent_pb2.MemberReport(
                group="web", member="m1", health=types_pb2.HEALTH_LOST)])]), timeout=5))
        assert replies[0].result == agent_pb2.KEEPALIVE_RESULT_INVALID
        assert "HEALTHY or UNHEALTHY" in replies[0].message
        # Nothing recorded for the refused keepalive: the node was never heard.
        assert c.leases.last_seen("vm1") is None
    assert before.groups["web"].active is None
    assert registered.groups == c.store.state().groups


def test_status_and_events_over_grpc(coordinator, agents, admin):
    _, _, _ = agents
    wait_for(lambda: admin.GetStatus(admin_pb2.GetStatusRequest()).groups[0].active == "m1",
             5, what="status shows m1 active")
    st = admin.GetStatus(admin_pb2.GetStatusRequest())
    assert st.coordinator.is_leader and st.coordinator.node_id == "c1"
    web = st.groups[0]
    assert web.epoch == 1 and web.vip == "198.18.0.100/24"
    roles = {m.name: m.role for m in web.members}
    assert roles == {"m1": types_pb2.ROLE_ACTIVE, "m2": types_pb2.ROLE_STANDBY}
    assert all(m.HasField("lease_age_seconds") and m.lease_age_seconds < TTL
               for m in web.members)
    kinds = [e.kind for e in admin.ListEvents(admin_pb2.ListEventsRequest()).events]
    assert "promoted" in kinds and "group_created" in kinds
    last = admin.ListEvents(admin_pb2.ListEventsRequest(limit=1)).events
    assert len(last) == 1
