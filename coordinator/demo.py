"""`vnfha demo`: a real cluster on this machine that fails over in front of you.

Starts 3 coordinators (embedded Raft, loopback) and 2 agents, each hosting one
member of the group `web`. Then it kills the active member's agent with
SIGKILL and prints the failover timeline, kills the Raft leader to show that
a coordinator loss fails nothing over, and removes everything it made.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import yaml

from vnfha.coordinator.ports import free_port
from vnfha.v1 import admin_pb2, admin_pb2_grpc

INTRO = """\
vnfha demo
==========
A VNF is made of components (VNFCs) on VMs. In an active/standby pair only the
active serves; if it dies the standby must take over, and the two must never
both be active ("split brain"). keepalived does this with VRRP adverts between
the two VMs; vnfha instead keeps the roles in a small replicated coordinator
(3 nodes, Raft), gives every role a fencing number (the epoch) and lets each VM's
agent hold the active role only while a majority of coordinators keep renewing
its lease.

This demo runs, on this machine only (127.0.0.1):
  * 3 coordinators    c1 c2 c3   (vnfha coordinator, embedded Raft)
  * 2 agents          vm1 (member web-1, priority 200)  vm2 (member web-2, priority 100)
"""


def _port() -> int:
    return free_port()


class Demo:
    def __init__(self, root: Path, ttl: float, interval: float) -> None:
        self.root = root
        self.ttl = ttl
        self.interval = interval
        self.ids = ["c1", "c2", "c3"]
        self.api = {c: f"127.0.0.1:{_port()}" for c in self.ids}
        self.raft = {c: f"127.0.0.1:{_port()}" for c in self.ids}
        self.procs: dict[str, subprocess.Popen] = {}
        (root / "cluster.secret").write_text(secrets.token_urlsafe(32))

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, kind: str, cfg: dict[str, Any]) -> None:
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        log = open(self.root / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "vnfha.coordinator.cli", kind, "--config", str(path)],
            stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

    def start_coordinator(self, cid: str) -> None:
        self._spawn(cid, "coordinator", {
            "node_id": cid,
            "cluster": {"members": [{"id": c, "api": self.api[c], "raft": self.raft[c]}
                                    for c in self.ids],
                        "secret_file": str(self.root / "cluster.secret")},
            "store": {"backend": "raft", "data_dir": str(self.root / "data")},
            "leases": {"ttl": self.ttl, "keepalive_interval": self.interval,
                       "stabilization": 5.0},
            "groups": [{"name": "web", "mode": "active-standby", "vip": "198.18.0.100/24"}],
            "logging": {"level": "info", "format": "json"},
        })

    def start_agent(self, node: str, member: str, priority: int) -> None:
        self._spawn(node, "agent", {
            "node": node,
            "coordinators": [self.api[c] for c in self.ids],
            "lease": {"ttl": self.ttl, "keepalive_interval": self.interval},
            "members": [{"group": "web", "member": member, "priority": priority}],
            "logging": {"level": "info", "format": "json"},
        })

    def kill(self, name: str) -> float:
        proc = self.procs.pop(name)
        at = time.time()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        return at

    def cleanup(self) -> None:
        for name in list(self.procs):
            try:
                self.kill(name)
            except Exception:  # best effort: nothing may be left behind
                pass

    # -- gRPC ------------------------------------------------------------------------------

    def status(self, cid: str | None = None) -> admin_pb2.GetStatusResponse | None:
        for c in [cid] if cid else [c for c in self.ids if c in self.procs]:
            try:
                with grpc.insecure_channel(self.api[c]) as ch:
                    return admin_pb2_grpc.AdminServiceStub(ch).GetStatus(
                        admin_pb2.GetStatusRequest(), timeout=1)
            except grpc.RpcError:
                continue
        return None

    def leader(self) -> str | None:
        for c in [c for c in self.ids if c in self.procs]:
            st = self.status(c)
            if st is not None and st.coordinator.is_leader:
                return c
        return None

    def wait(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise RuntimeError(f"demo: timed out waiting for {what}; logs are in {self.root}")

    def web(self) -> admin_pb2.GroupStatus | None:
        st = self.status()
        if st is None:
            return None
        return next((g for g in st.groups if g.name == "web"), None)

    def agent_role_changes(self, node: str) -> list[dict[str, Any]]:
        out = []
        path = self.root / f"{node}.log"
        for line in path.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("kind") == "role_change":
                out.append(doc)
        return out

    def events(self) -> list[admin_pb2.Event]:
        for c in [c for c in self.ids if c in self.procs]:
            try:
                with grpc.insecure_channel(self.api[c]) as ch:
                    return list(admin_pb2_grpc.AdminServiceStub(ch).ListEvents(
                        admin_pb2.ListEventsRequest(), timeout=1).events)
            except grpc.RpcError:
                continue
        return []


def _table(g: admin_pb2.GroupStatus) -> str:
    role = {1: "ACTIVE", 2: "standby"}
    health = {1: "unknown", 2: "healthy", 3: "unhealthy", 4: "LOST"}
    rows = [f"  group {g.name}  epoch {g.epoch}  active {g.active or '-'}"]
    for m in g.members:
        age = f"{m.lease_age_seconds:.2f}s" if m.HasField("lease_age_seconds") else "-"
        rows.append(f"    {m.name:8s} on {m.node:4s}  {role.get(m.role, '?'):8s} "
                    f"{health.get(m.health, '?'):9s} last heard {age}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="vnfha-demo-"))
    demo = Demo(root, ttl=args.ttl, interval=args.interval)
    print(INTRO)
    try:
        print("1. Starting 3 coordinators and electing a Raft leader ...")
        for c in demo.ids:
            demo.start_coordinator(c)
        leader = demo.wait(demo.leader, 20, "a raft leader")
        print(f"   leader: {leader}\n")
        print("2. Starting the agents; the coordinators elect the highest-priority member ...")
        demo.start_agent("vm1", "web-1", 200)
        demo.start_agent("vm2", "web-2", 100)
        g = demo.wait(lambda: (w := demo.web()) is not None and w.active == "web-1"
                      and len(w.members) == 2 and all(m.health == 2 for m in w.members)
                      and w, 20, "web-1 active")
        print(_table(g) + "\n")
        time.sleep(1.0)

        print("3. FAULT: kill -9 the agent of vm1 (the active's VM goes silent) ...")
        fault = demo.kill("vm1")
        g = demo.wait(lambda: (w := demo.web()) is not None and w.active == "web-2" and w,
                      10, "failover to web-2")
        vm2_active = demo.wait(lambda: next((r for r in demo.agent_role_changes("vm2")
                                             if r.get("role") == "active"), None),
                               5, "vm2's agent taking the role")
        promoted = next(e for e in reversed(demo.events()) if e.kind == "promoted")
        commit = promoted.time.ToNanoseconds() / 1e9
        took = vm2_active["ts"]
        print(f"   timeline (ms after the fault):\n"
              f"     {0:6.0f}  vm1's agent killed; its keepalives stop\n"
              f"     {(commit - fault) * 1000:6.0f}  lease expired on a majority of coordinators "
              f"(TTL {args.ttl}s): promote web-2 committed at epoch {promoted.epoch}\n"
              f"     {(took - fault) * 1000:6.0f}  vm2's agent acts as active (epoch "
              f"{vm2_active['epoch']})")
        print(f"   outage: {(took - fault) * 1000:.0f} ms (fault -> new active acting)")
        print(_table(g) + "\n")

        print("4. FAULT: kill -9 the Raft leader coordinator ...")
        leader = demo.leader()
        epoch_before = g.epoch
        demo.kill(leader)
        t0 = time.monotonic()
        new_leader = demo.wait(demo.leader, 10, "a new raft leader")
        print(f"   {leader} killed; {new_leader} leads after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms")
        time.sleep(2 * args.ttl)
        g = demo.web()
        assert g is not None
        verdict = ("no failover (same active, same epoch)" if g.active == "web-2"
                   and g.epoch == epoch_before else "UNEXPECTED CHANGE")
        print(f"   after {2 * args.ttl:.1f}s: active {g.active}, epoch {g.epoch}: {verdict}")
        print("   (the agents' leases are renewed by the 2 surviving coordinators)\n")

        print("5. The event history, as `vnfha events` shows it:")
        for e in demo.events():
            if e.kind in ("promoted", "demoted", "released", "health_changed"):
                who = f"{e.group}/{e.member}@{e.node}" if e.member else e.node
                print(f"   #{e.seq:<3d} {e.kind:15s} {who:20s} epoch {e.epoch:<3d} {e.reason}")
        print("\nDone. Cleaning up: stopping every process"
              + (f"; logs kept in {root}" if args.keep else f", removing {root}") + ".")
        return 0 if verdict.startswith("no failover") else 1
    except (RuntimeError, AssertionError) as e:
        print(f"error: {e}", file=sys.stderr)
        for name in sorted(p.stem for p in root.glob("*.log")):
            tail = (root / f"{name}.log").read_text(errors="replace").splitlines()[-5:]
            print(f"--- {name}.log (last lines)\n" + "\n".join(tail), file=sys.stderr)
        return 1
    finally:
        demo.cleanup()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="vnfha demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ttl", type=float, default=0.6, help="lease TTL in seconds (0.6)")
    ap.add_argument("--interval", type=float, default=0.1,
                    help="keepalive interval in seconds (0.1)")
    ap.add_argument("--keep", action="store_true", help="keep the logs and data folder")
    return run(ap.parse_args(argv))
