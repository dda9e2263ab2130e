"""A rogue on the management network holding a *valid* certificate for vm2.

Run inside a lab namespace: it tries what an attacker would (register vm1's member
for itself, register as vm1, switch the group over, keep vm1's lease alive) and
prints one JSON object: for every attempt, the gRPC status it got. `forge` keeps
sending forged keepalives for vm1 for `--seconds` (bounded), re-opening the stream
each time it is refused, and counts what it got.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import grpc

from vnfha.coordinator.security.tls import TlsFiles, channel_credentials
from vnfha.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc, types_pb2


def _code(fn) -> str:
    try:
        fn()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def _keepalive_for_vm1(stub: agent_pb2_grpc.AgentServiceStub, epoch: int) -> str:
    report = agent_pb2.MemberReport(group="web", member="web-1",
                                    health=types_pb2.HEALTH_HEALTHY, seen_epoch=epoch,
                                    active_epoch=epoch)
    req = agent_pb2.KeepaliveRequest(node="vm1", seq=1, members=[report])

    def call() -> None:
        for resp in stub.Keepalive(iter([req]), timeout=2):
            if resp.result != agent_pb2.KEEPALIVE_RESULT_ACK:
                raise RuntimeError(resp.message)
    return _code(call)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cacert", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("mode", choices=("attempts", "forge"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--ready-file", type=Path, help="touched once the first forgery was sent")
    args = ap.parse_args()
    files = TlsFiles(Path(args.cacert), Path(args.cert), Path(args.key))
    ch = grpc.secure_channel(args.endpoint, channel_credentials(files))
    agent = agent_pb2_grpc.AgentServiceStub(ch)
    admin = admin_pb2_grpc.AdminServiceStub(ch)
    if args.mode == "attempts":
        steal = agent_pb2.MemberSpec(group="web", member="web-1", priority=1000)
        own = agent_pb2.MemberSpec(group="web", member="web-2", priority=100)
        out = {
            "register_as_vm1": _code(lambda: agent.RegisterNode(agent_pb2.RegisterNodeRequest(
                node="vm1", members=[steal]), timeout=3)),
            "register_vm1_member": _code(lambda: agent.RegisterNode(
                agent_pb2.RegisterNodeRequest(node="vm2", members=[own, steal]), timeout=3)),
            "drop_vm1_members": _code(lambda: agent.RegisterNode(agent_pb2.RegisterNodeRequest(
                node="vm1", members=[]), timeout=3)),
            "switchover": _code(lambda: admin.Switchover(admin_pb2.SwitchoverRequest(
                group="web", to_member="web-2"), timeout=3)),
            "maintenance_vm1": _code(lambda: admin.SetMaintenance(
                admin_pb2.SetMaintenanceRequest(node="vm1", on=True), timeout=3)),
            "keepalive_for_vm1": _keepalive_for_vm1(agent, 1),
        }
    else:
        counts: Counter[str] = Counter()
        stop_at = time.monotonic() + min(args.seconds, 60.0)
        while time.monotonic() < stop_at:
            counts[_keepalive_for_vm1(agent, 1)] += 1
            if args.ready_file is not None and not args.ready_file.exists():
                args.ready_file.touch()
            time.sleep(0.02)
        out = dict(counts)
    ch.close()
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
