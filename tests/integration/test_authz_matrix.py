"""Every RPC x every identity, over real gRPC with real certificates on loopback.

The rows come from the services' descriptors, so a new RPC without a rule in
coordinator/security/policy.py (and without a row in EXPECTED below) fails here.
EXPECTED is written out by hand from the issue's requirements, independent of the
policy code: it is the spec the table is checked against.

One coordinator (memory store, mTLS) and one state-sync receiver serve the whole
matrix. vm1 hosts the active member of group web, vm2 the standby.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2
from support import free_port, wait_for

from vnfha.agents.failsafe_peer import FailsafePeer
from vnfha.agents.session import AgentSession, HostedMember
from vnfha.agents.statesync.receiver import SyncReceiver
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.security.policy import RULES
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import (
    admin_pb2,
    agent_pb2,
    failsafe_pb2,
    peer_pb2,
    pool_pb2,
    role_pb2,
    state_pb2,
    statesync_pb2,
    types_pb2,
)
from vnfha_lab.testpki import LabPki, TestCA

TTL = 2.0
INTERVAL = 0.2
MODULES = (admin_pb2, agent_pb2, peer_pb2, pool_pb2, state_pb2, statesync_pb2, role_pb2,
           failsafe_pb2, health_pb2)

VALID = ("vm1", "vm2", "coordinator", "admin", "viewer", "lb")
#: callers that must never get through: no TLS at all, a CA we do not trust, an expired
#: certificate, a certificate naming no vnfha identity, one naming two.
INVALID = ("none", "wrong-ca", "expired", "no-identity", "two-identities")
READ_GROUP = {"vm1", "vm2", "admin", "viewer"}

EXPECTED: dict[str, set[str]] = {
    "AgentService/RegisterNode": {"vm1"},
    "AgentService/Keepalive": {"vm1"},
    "AgentService/WatchAssignments": {"vm1"},
    "AgentService/Drain": {"vm1"},
    "AgentService/OpenFastPath": {"vm1"},
    "AdminService/GetStatus": {"admin", "viewer"},
    "AdminService/ListEvents": {"admin", "viewer"},
    "AdminService/WatchEvents": {"admin", "viewer"},
    "AdminService/Switchover": {"admin"},
    "AdminService/SetMaintenance": {"admin"},
    "AdminService/ApplyGroups": {"admin"},
    "AdminService/SetPaused": {"admin"},
    "AdminService/SetFailsafe": {"admin"},
    "AdminService/Failover": {"admin"},
    "AdminService/ResetMember": {"admin"},
    "AdminService/RemoveNode": {"admin"},
    "AdminService/ReadmitNode": {"admin"},
    "AdminService/DeleteGroup": {"admin"},
    "PeerService/GetLeaseAges": {"coordinator"},
    "PoolService/WatchPool": {"lb", "admin", "viewer"},
    "PoolService/ReportPoolApplied": {"lb"},
    "StateService/Publish": {"vm1"},
    "StateService/PutCheckpoint": {"vm1"},
    "StateService/Read": READ_GROUP,
    "StateService/GetCheckpoint": READ_GROUP,
    "StateService/GetEpoch": READ_GROUP,
    "StateSyncService/ApplyUpdates": {"vm1", "vm2"},
    "StateSyncService/InstallSnapshot": {"vm1", "vm2"},
    "StateSyncService/GetPosition": {"vm1", "vm2"},
    # Served by every agent (agents/failsafe_peer.py); the granter itself then checks that
    # the caller hosts the group's active (agents/failsafe.py), so vm2 is let in and refused.
    "FailsafeService/RequestLease": {"vm1", "vm2"},
    "Health/Check": set(VALID),
    "Health/Watch": set(VALID),
    "Health/List": set(VALID),
}
#: served only on the agent's local unix socket (agents/roleapi.py), never over TCP
LOCAL_ONLY = {"RoleService/GetRole", "RoleService/WatchRole"}


def all_methods() -> dict[str, Any]:
    """'/pkg.Service/Method' -> method descriptor, for every service we ship or serve."""
    out = {}
    for mod in MODULES:
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                out[f"/{svc.full_name}/{m.name}"] = m
    return out


def short(path: str) -> str:
    service, _, name = path.lstrip("/").rpartition("/")
    return f"{service.rpartition('.')[2]}/{name}"


def test_every_rpc_has_exactly_one_rule_and_an_expectation() -> None:
    methods = set(all_methods())
    assert methods - set(RULES) == set(), "RPCs without an authorization rule"
    assert set(RULES) - methods == set(), "rules for RPCs that do not exist"
    assert {short(m) for m in methods} == set(EXPECTED) | LOCAL_ONLY
    assert {short(m) for m, r in RULES.items() if r.local_only} == LOCAL_ONLY


@dataclass
class Rig:
    coordinator: Coordinator
    api: str
    sync: str
    channels: dict[str, grpc.Channel]
    sessions: list[AgentSession]
    fs: str = ""


def _channel(target: str, ca: Path, files: Any | None) -> grpc.Channel:
    if files is None:
        return grpc.insecure_channel(target)
    creds = grpc.ssl_channel_credentials(ca.read_bytes(), files.key.read_bytes(),
                                         files.cert.read_bytes())
    return grpc.secure_channel(target, creds)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("authz")
    pki = LabPki(root / "pki")
    port = free_port()
    api = f"127.0.0.1:{port}"
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": api, "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.2},
        "groups": [{"name": "web", "vip": "198.18.0.100/24"}],
        "tls": pki.section("coordinator/c1"),
    })
    c = Coordinator(cfg)
    c.start()
    sessions = [
        AgentSession(node, [HostedMember("web", member, prio)], [api], ttl=TTL,
                     interval=INTERVAL, tls=pki.files(f"node/{node}"))
        for node, member, prio in (("vm1", "web-1", 200), ("vm2", "web-2", 100))]
    receiver = SyncReceiver("web", _Sink(), lambda group, at_least: 1, bind="127.0.0.1:0",
                            tls=pki.files("node/vm2"))
    failsafe = FailsafePeer(sessions[1], "127.0.0.1:0", pki.files("node/vm2"),
                            interval=INTERVAL, span=TTL / 2, drift=0.01, margin=0.05)
    try:
        sessions[0].start()
        wait_for(lambda: c.store.state().groups["web"].active == "web-1", 10,
                 what="web-1 active")
        sessions[1].start()
        wait_for(lambda: "web-2" in c.store.state().groups["web"].members, 10,
                 what="web-2 registered")
        sync = f"127.0.0.1:{receiver.start()}"
        fs = f"127.0.0.1:{failsafe.start()}"
        other = TestCA(root / "other", name="other-ca")
        certs: dict[str, Any] = {
            "vm1": pki.ca.issue_identity("node/vm1", file_name="m-vm1"),
            "vm2": pki.ca.issue_identity("node/vm2", file_name="m-vm2"),
            "coordinator": pki.ca.issue_identity("coordinator/c2", file_name="m-c2"),
            "admin": pki.ca.issue_identity("admin/alice", file_name="m-alice"),
            "viewer": pki.ca.issue_identity("viewer/noc", file_name="m-noc"),
            "lb": pki.ca.issue_identity("lb/lb1", file_name="m-lb1"),
            "wrong-ca": other.issue_identity("admin/alice", file_name="m-other"),
            "expired": pki.ca.issue_identity("admin/alice", file_name="m-old", expired=True),
            "no-identity": pki.ca.issue_client("m-noid"),
            "two-identities": pki.ca.issue_identity(
                "admin/alice", file_name="m-two", extra_uris=("vnfha://node/vm1",)),
        }
        channels: dict[str, grpc.Channel] = {}
        for who in (*VALID, *INVALID):
            for target in (api, sync, fs):
                channels[f"{who}@{target}"] = _channel(target, pki.ca.ca_file,
                                                       certs.get(who))
        yield Rig(c, api, sync, channels, sessions, fs)
    finally:
        failsafe.stop()
        for s in sessions:
            s.stop()
        receiver.stop()
        c.stop()


class _Sink:
    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        pass

    def install_snapshot(self, sequence: int, data: bytes) -> None:
        pass


def _request(path: str, rig: Rig) -> Any:
    """A harmless request for each method, made "for vm1" where it names a node."""
    state = rig.coordinator.store.state()
    epoch = state.groups["web"].epoch
    return {
        "AgentService/RegisterNode": agent_pb2.RegisterNodeRequest(
            node="vm1", members=[agent_pb2.MemberSpec(group="web", member="web-1",
                                                      priority=200)]),
        "AgentService/Keepalive": agent_pb2.KeepaliveRequest(node="vm1", seq=0, members=[
            agent_pb2.MemberReport(group="web", member="web-1", health=types_pb2.HEALTH_HEALTHY,
                                   seen_epoch=epoch, active_epoch=epoch)]),
        "AgentService/WatchAssignments": agent_pb2.WatchAssignmentsRequest(node="vm1"),
        # Authorized before it is validated: the bad request id keeps web-1 active.
        "AgentService/Drain": agent_pb2.DrainRequest(node="vm1", request_id="!harmless"),
        "AgentService/OpenFastPath": agent_pb2.OpenFastPathRequest(node="vm1"),
        "AdminService/GetStatus": admin_pb2.GetStatusRequest(),
        "AdminService/ListEvents": admin_pb2.ListEventsRequest(limit=1),
        "AdminService/WatchEvents": admin_pb2.WatchEventsRequest(),
        "AdminService/Switchover": admin_pb2.SwitchoverRequest(group="no-such-group"),
        "AdminService/SetMaintenance": admin_pb2.SetMaintenanceRequest(node="no-such-node"),
        "AdminService/ApplyGroups": admin_pb2.ApplyGroupsRequest(groups=[admin_pb2.GroupSpec(
            name="web", mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY, vip="198.18.0.100/24")]),
        # Harmless: already not paused; unknown names are refused after authorization.
        "AdminService/SetPaused": admin_pb2.SetPausedRequest(paused=False),
        "AdminService/SetFailsafe": admin_pb2.SetFailsafeRequest(lease_ms=0),  # already off
        "FailsafeService/RequestLease": failsafe_pb2.RequestLeaseRequest(
            group="web", member="web-1", epoch=epoch),
        "AdminService/Failover": admin_pb2.FailoverRequest(group="no-such-group", to_member="x"),
        "AdminService/ResetMember": admin_pb2.ResetMemberRequest(group="no-such-group",
                                                                 member="x"),
        "AdminService/RemoveNode": admin_pb2.RemoveNodeRequest(node="no-such-node"),
        "AdminService/ReadmitNode": admin_pb2.ReadmitNodeRequest(node="no-such-node"),
        "AdminService/DeleteGroup": admin_pb2.DeleteGroupRequest(group="no-such-group"),
        "PeerService/GetLeaseAges": peer_pb2.GetLeaseAgesRequest(nodes=["vm1"]),
        "PoolService/WatchPool": pool_pb2.WatchPoolRequest(group="web"),
        "PoolService/ReportPoolApplied": pool_pb2.ReportPoolAppliedRequest(group="web",
                                                                           node="lb1"),
        "StateService/Publish": state_pb2.PublishRequest(group="web", epoch=epoch, data=b"m"),
        "StateService/PutCheckpoint": state_pb2.PutCheckpointRequest(group="web", epoch=epoch,
                                                                     data=b"m"),
        "StateService/Read": state_pb2.ReadRequest(group="web"),
        "StateService/GetCheckpoint": state_pb2.GetCheckpointRequest(group="web"),
        "StateService/GetEpoch": state_pb2.GetEpochRequest(group="web"),
        "StateSyncService/ApplyUpdates": statesync_pb2.ApplyUpdatesRequest(
            group="web", epoch=1, first_sequence=1),
        "StateSyncService/InstallSnapshot": statesync_pb2.InstallSnapshotRequest(
            group="web", epoch=1, sequence=0, data=b""),
        "StateSyncService/GetPosition": statesync_pb2.GetPositionRequest(group="web"),
        "Health/Check": health_pb2.HealthCheckRequest(),
        "Health/Watch": health_pb2.HealthCheckRequest(),
        "Health/List": health_pb2.HealthListRequest(),
    }[short(path)]


def _call(channel: grpc.Channel, path: str, desc: Any, request: Any) -> grpc.StatusCode:
    """The call's status: OK once a first response arrived (streams are then cancelled)."""
    out = message_factory.GetMessageClass(desc.output_type)
    kw = {"request_serializer": type(request).SerializeToString,
          "response_deserializer": out.FromString}
    timeout = 3.0
    try:
        if desc.client_streaming:
            stream = channel.stream_stream(path, **kw)(iter([request]), timeout=timeout)
        elif desc.server_streaming:
            stream = channel.unary_stream(path, **kw)(request, timeout=timeout)
        else:
            channel.unary_unary(path, **kw)(request, timeout=timeout)
            return grpc.StatusCode.OK
        try:
            next(stream)
        except StopIteration:
            pass
        stream.cancel()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


CASES = [(m, who) for m in sorted(RULES) if not RULES[m].local_only
         for who in (*VALID, *INVALID)]


@pytest.mark.parametrize(("method", "who"), CASES,
                         ids=[f"{short(m)}-{w}" for m, w in CASES])
def test_matrix(rig: Rig, method: str, who: str) -> None:
    desc = all_methods()[method]
    target = (rig.sync if "StateSyncService" in method
              else rig.fs if "FailsafeService" in method else rig.api)
    code = _call(rig.channels[f"{who}@{target}"], method, desc, _request(method, rig))
    if who in INVALID:
        # No certificate we trust: the handshake fails (UNAVAILABLE) or, for a trusted
        # certificate naming no single identity, UNAUTHENTICATED. Never served.
        expected = ({grpc.StatusCode.UNAUTHENTICATED} if who.endswith("identity")
                    or who == "two-identities" else {grpc.StatusCode.UNAVAILABLE,
                                                     grpc.StatusCode.UNAUTHENTICATED})
        assert code in expected, f"{who} calling {short(method)} got {code}"
    elif who in EXPECTED[short(method)]:
        assert code not in (grpc.StatusCode.PERMISSION_DENIED,
                            grpc.StatusCode.UNAUTHENTICATED,
                            grpc.StatusCode.UNAVAILABLE), \
            f"{who} must be allowed {short(method)}, got {code}"
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, \
            f"{who} must be refused {short(method)}, got {code}"


def test_refusal_names_identity_and_rule(rig: Rig) -> None:
    ch = rig.channels[f"vm2@{rig.api}"]
    path = "/vnfha.v1.AdminService/Switchover"
    call = ch.unary_unary(path, request_serializer=admin_pb2.SwitchoverRequest.SerializeToString,
                          response_deserializer=admin_pb2.SwitchoverResponse.FromString)
    with pytest.raises(grpc.RpcError) as info:
        call(admin_pb2.SwitchoverRequest(group="web", to_member="web-2"), timeout=3)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "vnfha://node/vm2" in info.value.details()
    assert "admin only" in info.value.details()
    assert rig.coordinator.store.state().groups["web"].active == "web-1"


def test_node_cannot_declare_another_nodes_member(rig: Rig) -> None:
    """vm2 registering itself with vm1's member web-1 would steal it."""
    ch = rig.channels[f"vm2@{rig.api}"]
    call = ch.unary_unary("/vnfha.v1.AgentService/RegisterNode",
                          request_serializer=agent_pb2.RegisterNodeRequest.SerializeToString,
                          response_deserializer=agent_pb2.RegisterNodeResponse.FromString)
    with pytest.raises(grpc.RpcError) as info:
        call(agent_pb2.RegisterNodeRequest(node="vm2", members=[
            agent_pb2.MemberSpec(group="web", member="web-2", priority=100),
            agent_pb2.MemberSpec(group="web", member="web-1", priority=1000)]), timeout=3)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "web/web-1 belongs to node vm1" in info.value.details()
    assert rig.coordinator.store.state().groups["web"].members["web-1"].node == "vm1"


def test_keepalive_stream_is_checked_message_by_message(rig: Rig) -> None:
    """A stream opened for itself cannot switch to keeping another node alive."""
    ch = rig.channels[f"vm2@{rig.api}"]
    call = ch.stream_stream("/vnfha.v1.AgentService/Keepalive",
                            request_serializer=agent_pb2.KeepaliveRequest.SerializeToString,
                            response_deserializer=agent_pb2.KeepaliveResponse.FromString)
    reqs = [agent_pb2.KeepaliveRequest(node="vm2", seq=1),
            agent_pb2.KeepaliveRequest(node="vm1", seq=2)]
    stream = call(iter(reqs), timeout=3)
    first = next(stream)
    assert first.seq == 1
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not for node 'vm1'" in info.value.details()

