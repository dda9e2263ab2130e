"""Malformed input over real gRPC, every servicer method: a proper status (never UNKNOWN
with a Python exception name), a clear one-line message, and nothing changed.

One coordinator (memory store) on a loopback port, as in test_api.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from support import free_port, wait_for

from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    state_pb2,
    state_pb2_grpc,
    types_pb2,
)

EVIL = "web\x1b[2J\x1b[31mX\nforged log line"
AS = types_pb2.GROUP_MODE_ACTIVE_STANDBY
S = grpc.StatusCode


@pytest.fixture(scope="module")
def coordinator() -> Iterator[tuple[Coordinator, str]]:
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": 0.6, "keepalive_interval": 0.1, "stabilization": 0.5},
        "groups": [{"name": "web", "vip": "198.18.0.100/24"},
                   {"name": "pool", "mode": "active-active", "vip": "198.18.0.101/24"}],
    })
    c = Coordinator(cfg)
    c.start()
    wait_for(lambda: "pool" in c.store.state().groups, 5, what="declared groups")
    yield c, f"127.0.0.1:{port}"
    c.stop()


@pytest.fixture(scope="module")
def channel(coordinator) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(coordinator[1]) as ch:
        yield ch


def _agent(ch: grpc.Channel) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(ch)


def _admin(ch: grpc.Channel) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(ch)


def _pool(ch: grpc.Channel) -> pool_pb2_grpc.PoolServiceStub:
    return pool_pb2_grpc.PoolServiceStub(ch)


def _state(ch: grpc.Channel) -> state_pb2_grpc.StateServiceStub:
    return state_pb2_grpc.StateServiceStub(ch)


def _first(stream: Any) -> Any:
    """A server-streaming call's first answer (its error, for a refused request)."""
    try:
        return next(iter(stream))
    finally:
        stream.cancel()


M = agent_pb2.MemberSpec
# (name, call, expected status): each call is malformed in one way.
CASES: list[tuple[str, Callable[[grpc.Channel], Any], grpc.StatusCode]] = [
    ("register: evil node", lambda ch: _agent(ch).RegisterNode(
        agent_pb2.RegisterNodeRequest(node=EVIL)), S.INVALID_ARGUMENT),
    ("register: empty node", lambda ch: _agent(ch).RegisterNode(
        agent_pb2.RegisterNodeRequest(node="")), S.INVALID_ARGUMENT),
    ("register: evil member", lambda ch: _agent(ch).RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm7", members=[M(group="web", member=EVIL)])), S.INVALID_ARGUMENT),
    ("register: bad address", lambda ch: _agent(ch).RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm7", address="1.2.3.4; rm -rf /")), S.INVALID_ARGUMENT),
    ("register: priority out of range", lambda ch: _agent(ch).RegisterNode(
        agent_pb2.RegisterNodeRequest(node="vm7", members=[M(group="web", member="m7",
                                                              priority=100000)])),
     S.INVALID_ARGUMENT),
    ("register: member twice", lambda ch: _agent(ch).RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm7", members=[M(group="web", member="m7")] * 2)), S.INVALID_ARGUMENT),
    ("register: too many members", lambda ch: _agent(ch).RegisterNode(
        agent_pb2.RegisterNodeRequest(node="vm7", members=[
            M(group="web", member=f"m{i}") for i in range(1025)])), S.RESOURCE_EXHAUSTED),
    ("register: bad request id", lambda ch: _agent(ch).RegisterNode(
        agent_pb2.RegisterNodeRequest(node="vm7", request_id="a b\n")), S.INVALID_ARGUMENT),
    ("register: unknown group", lambda ch: _agent(ch).RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm7", members=[M(group="nope", member="m7")])), S.NOT_FOUND),
    ("watch assignments: evil node", lambda ch: _first(_agent(ch).WatchAssignments(
        agent_pb2.WatchAssignmentsRequest(node=EVIL))), S.INVALID_ARGUMENT),
    ("drain: evil node", lambda ch: _agent(ch).Drain(agent_pb2.DrainRequest(node=EVIL)),
     S.INVALID_ARGUMENT),
    ("drain: bad request id", lambda ch: _agent(ch).Drain(
        agent_pb2.DrainRequest(node="vm7", request_id="a b\n")), S.INVALID_ARGUMENT),
    ("drain: unknown node", lambda ch: _agent(ch).Drain(agent_pb2.DrainRequest(node="vm9")),
     S.NOT_FOUND),
    ("switchover: evil group", lambda ch: _admin(ch).Switchover(
        admin_pb2.SwitchoverRequest(group=EVIL)), S.INVALID_ARGUMENT),
    ("switchover: evil target", lambda ch: _admin(ch).Switchover(
        admin_pb2.SwitchoverRequest(group="web", to_member=EVIL)), S.INVALID_ARGUMENT),
    ("switchover: unknown group", lambda ch: _admin(ch).Switchover(
        admin_pb2.SwitchoverRequest(group="nope")), S.NOT_FOUND),
    ("switchover: no active", lambda ch: _admin(ch).Switchover(
        admin_pb2.SwitchoverRequest(group="web")), S.FAILED_PRECONDITION),
    ("maintenance: evil node", lambda ch: _admin(ch).SetMaintenance(
        admin_pb2.SetMaintenanceRequest(node=EVIL, on=True)), S.INVALID_ARGUMENT),
    ("maintenance: unknown node", lambda ch: _admin(ch).SetMaintenance(
        admin_pb2.SetMaintenanceRequest(node="vm9", on=True)), S.NOT_FOUND),
    ("apply groups: shell in vip", lambda ch: _admin(ch).ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name="g2", mode=AS, vip="not-an-ip; rm -rf /")])),
     S.INVALID_ARGUMENT),
    ("apply groups: vip without prefix", lambda ch: _admin(ch).ApplyGroups(
        admin_pb2.ApplyGroupsRequest(groups=[admin_pb2.GroupSpec(name="g2", mode=AS,
                                                                 vip="198.18.0.9")])),
     S.INVALID_ARGUMENT),
    ("apply groups: evil name", lambda ch: _admin(ch).ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name=EVIL, mode=AS)])), S.INVALID_ARGUMENT),
    ("apply groups: no mode", lambda ch: _admin(ch).ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name="g2")])), S.INVALID_ARGUMENT),
    ("apply groups: twice", lambda ch: _admin(ch).ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name="g2", mode=AS)] * 2)), S.INVALID_ARGUMENT),
    ("apply groups: too many", lambda ch: _admin(ch).ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name=f"g{i}", mode=AS) for i in range(1025)])),
     S.RESOURCE_EXHAUSTED),
    ("apply groups: none", lambda ch: _admin(ch).ApplyGroups(admin_pb2.ApplyGroupsRequest()),
     S.INVALID_ARGUMENT),
    ("lease ages: too many", lambda ch: peer_pb2_grpc.PeerServiceStub(ch).GetLeaseAges(
        peer_pb2.GetLeaseAgesRequest(nodes=[f"n{i}" for i in range(10_001)])),
     S.RESOURCE_EXHAUSTED),
    ("watch pool: evil group", lambda ch: _first(_pool(ch).WatchPool(
        pool_pb2.WatchPoolRequest(group=EVIL))), S.INVALID_ARGUMENT),
    ("watch pool: unknown group", lambda ch: _first(_pool(ch).WatchPool(
        pool_pb2.WatchPoolRequest(group="nope"))), S.NOT_FOUND),
    ("watch pool: not a pool", lambda ch: _first(_pool(ch).WatchPool(
        pool_pb2.WatchPoolRequest(group="web"))), S.FAILED_PRECONDITION),
    ("pool applied: evil node", lambda ch: _pool(ch).ReportPoolApplied(
        pool_pb2.ReportPoolAppliedRequest(group="pool", node=EVIL)), S.INVALID_ARGUMENT),
    ("pool applied: unknown node", lambda ch: _pool(ch).ReportPoolApplied(
        pool_pb2.ReportPoolAppliedRequest(group="pool", node="lb9")), S.NOT_FOUND),
    ("pool applied: too many servers", lambda ch: _pool(ch).ReportPoolApplied(
        pool_pb2.ReportPoolAppliedRequest(group="pool", node="lb9", servers=[
            pool_pb2.ServerHealth(member="x")] * 4097)), S.RESOURCE_EXHAUSTED),
    ("publish: evil group", lambda ch: _state(ch).Publish(
        state_pb2.PublishRequest(group=EVIL, epoch=1, data=b"x")), S.INVALID_ARGUMENT),
    ("publish: epoch 0", lambda ch: _state(ch).Publish(
        state_pb2.PublishRequest(group="web", epoch=0, data=b"x")), S.INVALID_ARGUMENT),
    ("publish: too large", lambda ch: _state(ch).Publish(
        state_pb2.PublishRequest(group="web", epoch=1, data=b"x" * (2 << 20))),
     S.RESOURCE_EXHAUSTED),
    ("publish: forged epoch", lambda ch: _state(ch).Publish(
        state_pb2.PublishRequest(group="web", epoch=7, data=b"x")), S.INVALID_ARGUMENT),
    ("publish: bad request id", lambda ch: _state(ch).Publish(
        state_pb2.PublishRequest(group="web", epoch=1, data=b"x", request_id="\x1b")),
     S.INVALID_ARGUMENT),
    ("checkpoint: evil group", lambda ch: _state(ch).PutCheckpoint(
        state_pb2.PutCheckpointRequest(group=EVIL, epoch=1, data=b"x")), S.INVALID_ARGUMENT),
    ("checkpoint: unknown group", lambda ch: _state(ch).PutCheckpoint(
        state_pb2.PutCheckpointRequest(group="nope", epoch=1, data=b"x")), S.NOT_FOUND),
    ("read: evil group", lambda ch: _state(ch).Read(state_pb2.ReadRequest(group=EVIL)),
     S.INVALID_ARGUMENT),
    ("read: unknown group", lambda ch: _state(ch).Read(state_pb2.ReadRequest(group="nope")),
     S.NOT_FOUND),
    ("get checkpoint: evil group", lambda ch: _state(ch).GetCheckpoint(
        state_pb2.GetCheckpointRequest(group=EVIL)), S.INVALID_ARGUMENT),
    ("get epoch: empty group", lambda ch: _state(ch).GetEpoch(
        state_pb2.GetEpochRequest(group="")), S.INVALID_ARGUMENT),
]


@pytest.mark.parametrize("call,code", [(c, s) for _, c, s in CASES], ids=[n for n, _, _ in CASES])
def test_malformed_request_gets_a_proper_status_and_changes_nothing(coordinator, channel,
                                                                    call, code):
    c, _ = coordinator
    before = c.store.state()
    with pytest.raises(grpc.RpcError) as err:
        call(channel)
    details = err.value.details() or ""
    assert err.value.code() == code, details
    assert details and "\n" not in details and "\x1b" not in details and len(details) < 600
    assert "Exception" not in details and "Error" not in details  # no Python class names
    assert c.store.state().revision == before.revision


def test_keepalive_with_evil_names_is_refused_in_band(channel, coordinator):
    c, _ = coordinator
    replies = list(_agent(channel).Keepalive(iter([
        agent_pb2.KeepaliveRequest(node=EVIL, seq=1),
        agent_pb2.KeepaliveRequest(node="vm1", seq=2, members=[agent_pb2.MemberReport(
            group=EVIL, member="m1", health=types_pb2.HEALTH_HEALTHY)]),
    ]), timeout=5))
    assert [r.result for r in replies] == [agent_pb2.KEEPALIVE_RESULT_INVALID] * 2
    assert all("\x1b" not in r.message and "\n" not in r.message for r in replies)
    assert c.leases.last_seen(EVIL) is None


def test_register_node_with_fewer_members_does_not_remove_a_standby(channel, coordinator):
    """Measured on main: `RegisterNode vm2 members=[]` silently removed a standby."""
    c, _ = coordinator
    agent = _agent(channel)
    agent.RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm2", address="198.18.1.2", members=[M(group="web", member="m2")]))
    with pytest.raises(grpc.RpcError) as err:
        agent.RegisterNode(agent_pb2.RegisterNodeRequest(node="vm2", address="198.18.1.2"))
    assert err.value.code() == S.FAILED_PRECONDITION
    assert "remove_undeclared" in err.value.details() and "web/m2" in err.value.details()
    assert "m2" in c.store.state().groups["web"].members
    # The agent's restart with a changed config says so explicitly, and still works.
    agent.RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm2", address="198.18.1.2", remove_undeclared=True))
    assert "m2" not in c.store.state().groups["web"].members
    kinds = [(e.kind, e.member) for e in c.store.state().events]
    assert ("member_removed", "m2") in kinds


def test_reused_request_id_with_another_command_is_refused(channel, coordinator):
    c, _ = coordinator
    agent, admin = _agent(channel), _admin(channel)
    for node in ("vm3", "vm4"):
        agent.RegisterNode(agent_pb2.RegisterNodeRequest(node=node, address="198.18.1.3"))
    req = admin_pb2.SetMaintenanceRequest(node="vm3", on=True, request_id="op-42")
    assert admin.SetMaintenance(req).changed is True
    assert admin.SetMaintenance(req).changed is True  # a retry: the recorded result
    with pytest.raises(grpc.RpcError) as err:
        admin.SetMaintenance(admin_pb2.SetMaintenanceRequest(node="vm4", on=True,
                                                             request_id="op-42"))
    assert err.value.code() == S.FAILED_PRECONDITION
    assert "already used for a different command" in err.value.details()
    assert c.store.state().nodes["vm4"].maintenance is False


def test_lease_age_queries_for_unknown_names_leave_the_table_unchanged(channel, coordinator):
    """Measured on main: 40 calls x 10,000 unknown names grew memory by 151 MB."""
    c, _ = coordinator
    peer = peer_pb2_grpc.PeerServiceStub(channel)
    before = c.leases.tracked()
    for call in range(4):
        resp = peer.GetLeaseAges(peer_pb2.GetLeaseAgesRequest(
            nodes=[f"ghost-{call}-{i}" for i in range(2_500)]), timeout=10)
        assert len(resp.age_seconds) == 2_500
    assert c.leases.tracked() == before


def test_unexpected_error_is_internal_with_a_generic_message(channel, coordinator, caplog,
                                                             monkeypatch):
    """A bug in a servicer (here: the store's describe() failing) is logged once with its
    traceback and answered INTERNAL, not UNKNOWN with the exception's name and text."""
    c, _ = coordinator

    def broken() -> dict:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(c.store, "describe", broken)
    with caplog.at_level(logging.ERROR, logger="vnfha.api"):
        with pytest.raises(grpc.RpcError) as err:
            _admin(channel).GetStatus(admin_pb2.GetStatusRequest())
    assert err.value.code() == S.INTERNAL
    assert "secret" not in err.value.details() and "RuntimeError" not in err.value.details()
    logged = [r for r in caplog.records if r.name == "vnfha.api"]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_a_removed_nodes_lease_records_are_dropped(channel, coordinator, monkeypatch):
    """`vnfha node remove` also empties the lease table of the node (memory under VM
    churn; a node registered again under the name gets a new node's grace) and drops
    its fast-path key."""
    import vnfha.coordinator.server as server

    c, _ = coordinator
    monkeypatch.setattr(server, "FORGET_EVERY", 2)  # a sweep every 0.2 s, not 10 s
    agent, admin = _agent(channel), _admin(channel)
    agent.RegisterNode(agent_pb2.RegisterNodeRequest(node="vm-gone", address="198.18.1.9"))
    peer = peer_pb2_grpc.PeerServiceStub(channel)
    peer.GetLeaseAges(peer_pb2.GetLeaseAgesRequest(nodes=["vm-gone"]), timeout=10)
    before = c.leases.tracked()
    assert before >= 1
    assert c.fastpath is not None  # on by default: its key must stop authenticating too
    agent.OpenFastPath(agent_pb2.OpenFastPathRequest(node="vm-gone"), timeout=10)
    keys = c.fastpath.sessions()
    assert admin.RemoveNode(admin_pb2.RemoveNodeRequest(node="vm-gone")).removed
    wait_for(lambda: c.leases.tracked() == before - 1, 5,
             what="the removed node's lease records dropped")
    assert "vm-gone" not in c.store.state().nodes
    wait_for(lambda: c.fastpath is not None and c.fastpath.sessions() == keys - 1, 5,
             what="the removed node's fast-path key dropped")
