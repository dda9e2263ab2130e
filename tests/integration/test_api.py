"""The coordinator's gRPC API over real sockets: one coordinator, real agent sessions.

Covers the bad-input contract (clear error, state unchanged) and the basic
election / failover / switchover flows end to end through gRPC.
"""

from __future__ import annotations

import io
import json
import re
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


# --------------------------------------------------------------------------- status: pool, data


@pytest.fixture
def pool_cluster() -> Iterator[tuple[Coordinator, str, dict[str, bool]]]:
    """A coordinator with an active/standby group `web` (for state-sync data) and an
    active-active group `api`, real agent sessions on vm1/vm2 and an LB host lb1, and a
    recovery hook that fails (so a recovery request stays open with its attempts)."""
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.5},
        "groups": [{"name": "web"}, {"name": "api", "mode": "active-active"}],
        "recovery": {"exec": ["/bin/sh", "-c", "echo vnfm busy >&2; exit 1"],
                     "max_attempts": 5, "backoff": 60, "backoff_max": 60},
    })
    c = Coordinator(cfg)
    c.start()
    endpoint = f"127.0.0.1:{port}"
    healthy = {"m1": True, "m2": True, "a1": True, "a2": True}
    sessions = []
    for node, hosted in (("vm1", [HostedMember("web", "m1", 200), HostedMember("api", "a1")]),
                         ("vm2", [HostedMember("web", "m2", 100), HostedMember("api", "a2")]),
                         ("lb1", [])):
        s = AgentSession(node, hosted, [endpoint], ttl=TTL, interval=INTERVAL,
                         health=lambda g, m: healthy[m])
        s.start()
        sessions.append(s)
    try:
        wait_for(lambda: c.store.state().groups["web"].active == "m1"
                 and c.store.state().groups["api"].pool == {"a1", "a2"}
                 and "lb1" in c.store.state().nodes, 10, what="web active, api pool full")
        yield c, endpoint, healthy
    finally:
        for s in sessions:
            s.stop()
        c.stop()


def test_status_shows_pool_recoveries_checkpoint_and_queue(pool_cluster, capsys):
    from vnfha.agents.statesync.store import StateClient
    from vnfha.coordinator import cli
    from vnfha.v1 import pool_pb2, pool_pb2_grpc

    c, endpoint, healthy = pool_cluster
    with grpc.insecure_channel(endpoint) as ch:
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        pool = pool_pb2_grpc.PoolServiceStub(ch)

        def report(version: int) -> None:
            pool.ReportPoolApplied(pool_pb2.ReportPoolAppliedRequest(
                group="api", node="lb1", pool_version=version))

        def api() -> admin_pb2.GroupStatus:
            return next(g for g in admin.GetStatus(admin_pb2.GetStatusRequest()).groups
                        if g.name == "api")

        version = c.store.state().groups["api"].pool_version
        report(version)
        healthy["a2"] = False  # excluded at version+1; recovery waits for lb1 to apply it
        g = wait_for(lambda: (g := api()).pool.pool_version == version + 1 and g, 5,
                     what="a2 excluded")
        assert list(g.pool.in_service) == ["a1"]
        [x] = g.pool.excluded
        assert (x.member, x.node, x.excluded_at_version) == ("a2", "vm2", version + 1)
        assert x.reason == "member a2 reported unhealthy (node vm2)"
        assert x.blocked_by == "member 'a2' is unhealthy"
        assert [(a.node, a.pool_version) for a in g.pool.lb_applied] == [("lb1", version)]
        [r] = g.recoveries
        assert (r.member, r.failure, r.state, r.attempts) == (
            "a2", version + 1, types_pb2.RECOVERY_STATE_AWAITING_LB, 0)

        report(version + 1)  # lb1 applied the exclusion: recovery requested, hook fails once
        g = wait_for(lambda: (g := api()).recoveries[0].attempts == 1
                     and "vnfm busy" in g.recoveries[0].message and g, 10,
                     what="first recovery attempt's failure recorded")
        [r] = g.recoveries
        assert (r.member, r.node, r.failure, r.state, r.attempts) == (
            "a2", "vm2", version + 1, types_pb2.RECOVERY_STATE_REQUESTED, 1)
        assert "vnfm busy" in r.message
        assert [(a.node, a.pool_version) for a in g.pool.lb_applied] == [("lb1", version + 1)]

        with StateClient([endpoint]) as store:
            store.put_checkpoint("web", 1, b"c" * 100, sync_sequence=7)
            assert store.put_checkpoint("web", 1, b"c" * 40, sync_sequence=9) == 2
            for i in range(3):
                store.publish("web", 1, f"msg-{i}".encode())
        st = admin.GetStatus(admin_pb2.GetStatusRequest())
        web = next(g for g in st.groups if g.name == "web")
        assert not web.HasField("pool") and not web.recoveries
        cp = web.checkpoint
        assert (cp.epoch, cp.version, cp.size_bytes, cp.sync_sequence) == (1, 2, 40, 9)
        assert cp.HasField("written_at") and cp.written_at.seconds > 1_600_000_000
        q = web.queue
        assert (q.first_offset, q.next_offset, q.message_count, q.size_bytes) == (0, 3, 3, 15)
        api_st = next(g for g in st.groups if g.name == "api")
        assert not api_st.HasField("checkpoint") and not api_st.HasField("queue")
        assert b"msg-0" not in st.SerializeToString()  # sizes only, never payloads

        # Bad input is refused as before and changes nothing the status shows.
        before = admin.GetStatus(admin_pb2.GetStatusRequest())
        with pytest.raises(grpc.RpcError) as err:
            report(version + 5)  # ahead of the pool: a lying LB agent
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            admin.Switchover(admin_pb2.SwitchoverRequest(group="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.value.details()
        after = admin.GetStatus(admin_pb2.GetStatusRequest())
        assert after.coordinator.revision == before.coordinator.revision
        for resp in (before, after):  # lease ages move on; everything else must not
            for gs in resp.groups:
                for m in gs.members:
                    m.ClearField("lease_age_seconds")
        assert list(after.groups) == list(before.groups)

    # The operator's tool over the same real socket: text and JSON.
    out = io.StringIO()
    assert cli.main(["--endpoint", endpoint, "status"], out=out) == 0
    rows = [re.split(r"\s{2,}", line) for line in out.getvalue().splitlines()]
    v = str(version + 1)
    assert ["api", v, "a1", "a2", f"lb1={v}"] in rows  # pools
    assert ["api", "a2", "vm2", v, "member a2 reported unhealthy (node vm2)",
            "member 'a2' is unhealthy"] in rows  # out of service
    [rec] = [r for r in rows if r[:6] == ["api", "a2", "vm2", v, "requested", "1"]]
    assert "vnfm busy" in rec[6]  # recoveries: the hook's own words
    assert ["web", "1", "2", "40", "9", "0", "3", "3", "15"] in rows  # state sync
    out = io.StringIO()
    assert cli.main(["--endpoint", endpoint, "status", "--json"], out=out) == 0
    doc = {g["name"]: g for g in json.loads(out.getvalue())["groups"]}
    assert doc["api"]["pool"]["in_service"] == ["a1"]
    assert doc["api"]["pool"]["lb_applied"] == {"lb1": version + 1}
    assert doc["api"]["pool"]["excluded"][0]["reason"] == "member a2 reported unhealthy (node vm2)"
    assert [(r["member"], r["status"], r["attempts"]) for r in doc["api"]["recoveries"]] == [
        ("a2", "requested", 1)]
    assert doc["web"]["checkpoint"]["size_bytes"] == 40 and doc["web"]["pool"] is None
    assert doc["web"]["queue"] == {"first_offset": 0, "next_offset": 3, "message_count": 3,
                                   "size_bytes": 15}
    # An unknown group through the CLI: refused, exit 1, as before.
    assert cli.main(["--endpoint", endpoint, "switchover", "nope"], out=io.StringIO()) == 1
    assert "(NOT_FOUND)" in capsys.readouterr().err


def test_restarted_agent_does_not_act_on_its_previous_process_assignment(coordinator, agents):
    """A new agent process gets, at subscribe time, the assignment its previous process
    held. Acting on it under the new lease is the gap of docs/design.md §3 (a failover
    may have been decided meanwhile): it waits for the leader's re-confirmation under
    its new lease generation (epoch+1), then acts."""
    c, endpoint = coordinator
    sessions, roles, healthy = agents
    g = wait_for(lambda: group(c).active == "m1" and group(c), 5, what="m1 active")
    wait_for(lambda: roles.active_now() == {"m1"}, 3, what="m1 acting")
    old_epoch = g.epoch
    sessions["vm1"].stop()  # back well within a TTL: no failover
    again = RoleLog()
    s = AgentSession("vm1", [HostedMember("web", "m1", 200)], [endpoint], ttl=TTL,
                     interval=INTERVAL, on_role=again.callback("vm1"),
                     health=lambda g, m: healthy[m])
    sessions["vm1"] = s  # the fixture stops it
    s.start()
    # A loaded machine may delay the new process past the TTL: then m2 is promoted
    # instead, and the property below (never the old epoch) must hold all the same.
    wait_for(lambda: again.active_now() == {"m1"} or group(c).active == "m2", 5,
             what="the new process acting as m1 (or a failover)")
    with again.lock:
        claims = [epoch for _, _, active, epoch, _ in again.entries if active]
    assert old_epoch not in claims, again.entries
    g = group(c)
    if g.active == "m1":
        assert (g.epoch, claims) == (old_epoch + 1, [old_epoch + 1]), again.entries
        promoted = next(e for e in reversed(c.store.state().events) if e.kind == "promoted")
        assert promoted.member == "m1" and "new lease" in promoted.reason
