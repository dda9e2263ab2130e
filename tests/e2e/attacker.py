"""What an attacker on the lab's bridge tries over gRPC (tests/e2e/test_attacker_probes.py).

Runs inside a lab namespace (the test process stays in the root namespace, and gRPC's
own threads do not follow a thread's setns), makes every call of one suite once, and
prints one JSON object: for every attempt, the gRPC status code it got ("OK" if it
went through). Every call has a deadline; nothing here loops.

Suites:
  coordinator  every state-changing RPC of the coordinator API, aimed at vm1's
               things (and the admin and peer services), with whatever credential
               is given (none, another CA's, node/vm2's)
  bad-input    names with ANSI escapes and newlines, a VIP that is a shell command
               (meant for an admin and a node certificate: it must be the input
               check that refuses, not the authorization)
  failsafe     RequestLease on an agent's failsafe listener, in the name of web-1
  sync         the state-sync receiver of a VNFC
  fastpath-forge  open vm2's keepalive fast path (with vm2's certificate) and seal
               datagrams with its key that name vm1
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from vnfha.coordinator.security.tls import TlsFiles, channel_credentials, server_name_option
from vnfha.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    failsafe_pb2,
    failsafe_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    state_pb2,
    state_pb2_grpc,
    statesync_pb2,
    statesync_pb2_grpc,
    types_pb2,
)

TIMEOUT = 3.0
EVIL = "web\x1b[2J\x1b[31mOWNED\nFAKE LOG LINE level=error"


def rid() -> str:
    return secrets.token_hex(16)


def code(fn: Callable[[], Any]) -> str:
    try:
        fn()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def detail(fn: Callable[[], Any]) -> list[str]:
    try:
        fn()
        return ["OK", ""]
    except grpc.RpcError as e:
        return [e.code().name, e.details() or ""]


def channel(endpoint: str, files: TlsFiles | None, kind: str) -> grpc.Channel:
    if files is None:
        return grpc.insecure_channel(endpoint)
    return grpc.secure_channel(endpoint, channel_credentials(files),
                               options=[server_name_option(kind)])


def keepalive_for(agent: agent_pb2_grpc.AgentServiceStub, node: str, member: str,
                  health: int = types_pb2.HEALTH_HEALTHY) -> str:
    report = agent_pb2.MemberReport(group="web", member=member, health=health,
                                    seen_epoch=1, active_epoch=1)

    def call() -> None:
        for resp in agent.Keepalive(iter([agent_pb2.KeepaliveRequest(
                node=node, seq=1, members=[report])]), timeout=TIMEOUT):
            if resp.result != agent_pb2.KEEPALIVE_RESULT_ACK:
                raise RuntimeError("not acknowledged")
    try:
        return code(call)
    except RuntimeError:
        return "NOT_ACKNOWLEDGED"


def suite_coordinator(ch: grpc.Channel) -> dict[str, Any]:
    agent = agent_pb2_grpc.AgentServiceStub(ch)
    admin = admin_pb2_grpc.AdminServiceStub(ch)
    state = state_pb2_grpc.StateServiceStub(ch)
    peer = peer_pb2_grpc.PeerServiceStub(ch)
    pool = pool_pb2_grpc.PoolServiceStub(ch)
    steal = agent_pb2.MemberSpec(group="web", member="web-1", priority=1000)
    invented = agent_pb2.MemberSpec(group="web", member="web-9", priority=1000)
    epoch = [0]

    def get_epoch() -> None:
        epoch[0] = state.GetEpoch(state_pb2.GetEpochRequest(group="web"),
                                  timeout=TIMEOUT).epoch

    out: dict[str, Any] = {}
    out["GetEpoch"] = code(get_epoch)  # allowed for a node of the group: the epoch is public
    out["RegisterNode vm1"] = code(lambda: agent.RegisterNode(agent_pb2.RegisterNodeRequest(
        node="vm1", members=[steal], request_id=rid()), timeout=TIMEOUT))
    out["RegisterNode vm1 members=[]"] = code(lambda: agent.RegisterNode(
        agent_pb2.RegisterNodeRequest(node="vm1", members=[], remove_undeclared=True,
                                      request_id=rid()), timeout=TIMEOUT))
    out["RegisterNode invented node"] = code(lambda: agent.RegisterNode(
        agent_pb2.RegisterNodeRequest(node="evil", members=[invented], request_id=rid()),
        timeout=TIMEOUT))
    out["Keepalive vm1"] = keepalive_for(agent, "vm1", "web-1")
    out["Keepalive vm1 UNHEALTHY"] = keepalive_for(agent, "vm1", "web-1",
                                                   types_pb2.HEALTH_UNHEALTHY)
    out["OpenFastPath vm1"] = code(lambda: agent.OpenFastPath(
        agent_pb2.OpenFastPathRequest(node="vm1"), timeout=TIMEOUT))
    out["Drain vm1"] = code(lambda: agent.Drain(agent_pb2.DrainRequest(
        node="vm1", request_id=rid()), timeout=TIMEOUT))
    out["WatchAssignments vm1"] = code(lambda: next(iter(agent.WatchAssignments(
        agent_pb2.WatchAssignmentsRequest(node="vm1"), timeout=TIMEOUT))))
    out["Switchover"] = code(lambda: admin.Switchover(admin_pb2.SwitchoverRequest(
        group="web", to_member="web-2", request_id=rid()), timeout=TIMEOUT))
    out["Failover"] = code(lambda: admin.Failover(admin_pb2.FailoverRequest(
        group="web", to_member="web-2", force=True, request_id=rid()), timeout=TIMEOUT))
    out["SetMaintenance vm1"] = code(lambda: admin.SetMaintenance(
        admin_pb2.SetMaintenanceRequest(node="vm1", on=True, request_id=rid()),
        timeout=TIMEOUT))
    out["SetPaused"] = code(lambda: admin.SetPaused(admin_pb2.SetPausedRequest(
        paused=True, request_id=rid()), timeout=TIMEOUT))
    out["SetFailsafe"] = code(lambda: admin.SetFailsafe(admin_pb2.SetFailsafeRequest(
        lease_ms=60_000, request_id=rid()), timeout=TIMEOUT))
    out["ApplyGroups bad VIP"] = code(lambda: admin.ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name="pwn", mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY,
                                    vip="not-an-ip; rm -rf /")], request_id=rid()),
        timeout=TIMEOUT))
    out["DeleteGroup"] = code(lambda: admin.DeleteGroup(admin_pb2.DeleteGroupRequest(
        group="web", force=True, request_id=rid()), timeout=TIMEOUT))
    out["RemoveNode vm1"] = code(lambda: admin.RemoveNode(admin_pb2.RemoveNodeRequest(
        node="vm1", force=True, request_id=rid()), timeout=TIMEOUT))
    out["ResetMember"] = code(lambda: admin.ResetMember(admin_pb2.ResetMemberRequest(
        group="web", member="web-1", request_id=rid()), timeout=TIMEOUT))
    out["PutCheckpoint epoch from GetEpoch"] = code(lambda: state.PutCheckpoint(
        state_pb2.PutCheckpointRequest(group="web", epoch=epoch[0], data=b"forged",
                                       request_id=rid()), timeout=TIMEOUT))
    out["Publish epoch from GetEpoch"] = code(lambda: state.Publish(state_pb2.PublishRequest(
        group="web", epoch=epoch[0], data=b"forged", request_id=rid()), timeout=TIMEOUT))
    out["GetLeaseAges"] = code(lambda: peer.GetLeaseAges(peer_pb2.GetLeaseAgesRequest(
        nodes=["vm1"]), timeout=TIMEOUT))
    out["ReportPoolApplied"] = code(lambda: pool.ReportPoolApplied(
        pool_pb2.ReportPoolAppliedRequest(group="web", node="vm2", pool_version=1),
        timeout=TIMEOUT))
    out["epoch_read"] = epoch[0]
    return out


def suite_bad_input(ch: grpc.Channel) -> dict[str, Any]:
    admin = admin_pb2_grpc.AdminServiceStub(ch)
    agent = agent_pb2_grpc.AgentServiceStub(ch)
    a_s = types_pb2.GROUP_MODE_ACTIVE_STANDBY
    out: dict[str, Any] = {}
    out["ApplyGroups bad VIP"] = detail(lambda: admin.ApplyGroups(admin_pb2.ApplyGroupsRequest(
        groups=[admin_pb2.GroupSpec(name="pwn", mode=a_s, vip="not-an-ip; rm -rf /")],
        request_id=rid()), timeout=TIMEOUT))
    out["ApplyGroups VIP without prefix"] = detail(lambda: admin.ApplyGroups(
        admin_pb2.ApplyGroupsRequest(groups=[admin_pb2.GroupSpec(
            name="pwn", mode=a_s, vip="198.18.0.200")], request_id=rid()), timeout=TIMEOUT))
    out["ApplyGroups ANSI name"] = detail(lambda: admin.ApplyGroups(
        admin_pb2.ApplyGroupsRequest(groups=[admin_pb2.GroupSpec(name=EVIL, mode=a_s)],
                                     request_id=rid()), timeout=TIMEOUT))
    out["Switchover ANSI group"] = detail(lambda: admin.Switchover(admin_pb2.SwitchoverRequest(
        group=EVIL, to_member=EVIL, request_id=rid()), timeout=TIMEOUT))
    out["SetMaintenance ANSI node"] = detail(lambda: admin.SetMaintenance(
        admin_pb2.SetMaintenanceRequest(node=EVIL, on=True, request_id=rid()),
        timeout=TIMEOUT))
    out["request id reused for another command"] = _reused_rid(admin)
    if "--node" in sys.argv:  # a node certificate: register itself with a hostile member
        out["RegisterNode ANSI member"] = detail(lambda: agent.RegisterNode(
            agent_pb2.RegisterNodeRequest(node="vm2", members=[
                agent_pb2.MemberSpec(group="web", member="web-2", priority=100),
                agent_pb2.MemberSpec(group="web", member=EVIL, priority=100)],
                request_id=rid()), timeout=TIMEOUT))
    return out


def _reused_rid(admin: admin_pb2_grpc.AdminServiceStub) -> list[str]:
    """The same request id, first for a harmless command, then for another one."""
    same = rid()
    first = code(lambda: admin.SetMaintenance(admin_pb2.SetMaintenanceRequest(
        node="vm2", on=False, request_id=same), timeout=TIMEOUT))
    if first != "OK":
        return [first, "first call failed"]
    return detail(lambda: admin.SetPaused(admin_pb2.SetPausedRequest(
        paused=True, request_id=same), timeout=TIMEOUT))


def suite_failsafe(ch: grpc.Channel) -> dict[str, Any]:
    stub = failsafe_pb2_grpc.FailsafeServiceStub(ch)
    out: dict[str, Any] = {}
    for member in ("web-1", "web-2"):
        def call(member: str = member) -> None:
            resp = stub.RequestLease(failsafe_pb2.RequestLeaseRequest(
                group="web", member=member, epoch=int(sys.argv[sys.argv.index("--epoch") + 1])),
                timeout=TIMEOUT)
            out[f"as {member}"] = ["GRANTED" if resp.granted else "REFUSED", resp.reason]
        try:
            call()
        except grpc.RpcError as e:
            out[f"as {member}"] = [e.code().name, ""]
    out["ANSI group"] = detail(lambda: stub.RequestLease(failsafe_pb2.RequestLeaseRequest(
        group=EVIL, member=EVIL, epoch=1), timeout=TIMEOUT))
    return out


def suite_sync(ch: grpc.Channel) -> dict[str, Any]:
    stub = statesync_pb2_grpc.StateSyncServiceStub(ch)
    epoch = int(sys.argv[sys.argv.index("--epoch") + 1])
    out: dict[str, Any] = {}
    out["GetPosition"] = code(lambda: stub.GetPosition(statesync_pb2.GetPositionRequest(
        group="web"), timeout=TIMEOUT))
    if "--future-only" in sys.argv:  # the active's own node: its writes are legitimate
        out["InstallSnapshot future epoch"] = code(lambda: stub.InstallSnapshot(
            statesync_pb2.InstallSnapshotRequest(group="web", epoch=epoch + 1000,
                                                 sequence=10**6, data=b"{}"), timeout=TIMEOUT))
        return out
    out["InstallSnapshot current epoch"] = code(lambda: stub.InstallSnapshot(
        statesync_pb2.InstallSnapshotRequest(group="web", epoch=epoch, sequence=10**6,
                                             data=b'{"forged": "by a rogue"}'),
        timeout=TIMEOUT))
    out["InstallSnapshot future epoch"] = code(lambda: stub.InstallSnapshot(
        statesync_pb2.InstallSnapshotRequest(group="web", epoch=epoch + 1000,
                                             sequence=10**6, data=b"{}"), timeout=TIMEOUT))
    return out


def suite_fastpath_forge(ch: grpc.Channel) -> dict[str, Any]:
    """Open the fast path of the node the certificate names (vm2) and seal two keepalives
    with that key, back to back: one naming vm1 (seq 101), then one naming vm2 (seq
    202, the control: it must be answered, or the probe proves nothing). One thread
    reads them in order, so if the control is answered the key was valid when the
    forgery arrived. vm2's own agent re-opens its session soon after ours replaced it,
    so this is tried a few times until the control is answered."""
    import socket
    import time

    from vnfha.coordinator import fastwire as W

    agent = agent_pb2_grpc.AgentServiceStub(ch)
    epoch = int(sys.argv[sys.argv.index("--epoch") + 1])
    host = sys.argv[sys.argv.index("--endpoint") + 1].rsplit(":", 1)[0]
    report = agent_pb2.MemberReport(group="web", member="web-1",
                                    health=types_pb2.HEALTH_HEALTHY, seen_epoch=epoch,
                                    active_epoch=epoch)
    forged = agent_pb2.KeepaliveRequest(node="vm1", seq=101, members=[report])
    control = agent_pb2.KeepaliveRequest(node="vm2", seq=202)
    seqs: list[int] = []
    for attempt in range(1, 6):
        try:
            resp = agent.OpenFastPath(agent_pb2.OpenFastPathRequest(node="vm2"),
                                      timeout=TIMEOUT)
        except grpc.RpcError as e:
            return {"open": e.code().name}
        key = W.SessionKey(resp.key_id, resp.key)
        seqs = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for counter, req in ((1, forged), (2, control)):
                s.sendto(key.seal(W.KIND_KEEPALIVE, counter, req.SerializeToString()),
                         (host, resp.port))
            deadline = time.monotonic() + 0.3
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, _ = s.recvfrom(8192)
                except TimeoutError:
                    break
                ack = agent_pb2.KeepaliveResponse()
                ack.ParseFromString(key.open(W.parse_header(data, W.KIND_ACK), data))
                seqs.append(ack.seq)
        if control.seq in seqs:
            return {"open": "OK", "answered": sorted(seqs), "attempts": attempt}
    return {"open": "OK", "answered": sorted(seqs), "attempts": attempt}


SUITES = {"coordinator": suite_coordinator, "bad-input": suite_bad_input,
          "failsafe": suite_failsafe, "sync": suite_sync,
          "fastpath-forge": suite_fastpath_forge}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", choices=sorted(SUITES))
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cacert")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--server-kind", default="coordinator")
    ap.add_argument("--epoch", default="0")
    ap.add_argument("--node", action="store_true", help="the credential is a node's")
    ap.add_argument("--future-only", action="store_true",
                    help="sync: only the forged-future-epoch write (the active's own node)")
    args = ap.parse_args()
    files = (TlsFiles(Path(args.cacert), Path(args.cert), Path(args.key))
             if args.cert else None)
    ch = channel(args.endpoint, files, args.server_kind)
    try:
        print(json.dumps(SUITES[args.suite](ch)))
    finally:
        ch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
