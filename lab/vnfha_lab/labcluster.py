"""A whole vnfha deployment inside a network-namespace lab (agents.netlab).

3 coordinators, N VMs (each an agent plus a small TCP service) and a client,
all on one bridge in 198.18.0.0/24 (IPv6 VIPs in 2001:2::/64). Used by
`vnfha demo`, the end-to-end tests and bench/failover.py, so what the demo
shows is what the tests check.

The harness talks to coordinators over their admin unix sockets, because the
process running it stays in the root namespace, which has no link to the lab.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml

from vnfha.v1 import admin_pb2, admin_pb2_grpc
from vnfha_lab.netlab import Host, Lab
from vnfha_lab.testpki import LabPki

API_PORT = 7401
RAFT_PORT = 7501
SERVICE_PORT = 8080
KV_PORT = 8090  # the sample key-value VNFC (agents/samples/kvstore.py): HTTP
SYNC_PORT = 7601  # its peer-sync receiver
FAILSAFE_PORT = 7701  # every agent's failsafe listener (agents/failsafe_peer.py)
VIP4 = "198.18.0.100/24"
VIP6 = "2001:2::100/64"


@dataclass
class HolderLog:
    """Which VMs had the VIP configured, polled on every VM throughout a test."""

    changes: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    polls: int = 0
    max_holders: int = 0  # VMs with the VIP configured, crashed ones included
    max_live_holders: int = 0  # the same, among VMs whose link is up (that can answer)

    def dual_windows(self) -> list[tuple[float, frozenset[str]]]:
        return [(t, h) for t, h in self.changes if len(h) > 1]


class VipChecker:
    """Polls every VM's addresses every `interval` (bounded by `max_seconds`)."""

    def __init__(self, cluster: LabCluster, interval: float = 0.005,
                 max_seconds: float = 120.0) -> None:
        self.cluster = cluster
        self.interval = interval
        self.max_seconds = max_seconds
        self.log = HolderLog()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vip-checker", daemon=True)

    def start(self) -> VipChecker:
        self._thread.start()
        return self

    def stop(self) -> HolderLog:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.log

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        last: frozenset[str] | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            holders = frozenset(self.cluster.vip_holders())
            if len(holders) > 1:
                holders = self._confirm(holders)
            self.log.polls += 1
            self.log.max_holders = max(self.log.max_holders, len(holders))
            live = holders - self.cluster.crashed
            self.log.max_live_holders = max(self.log.max_live_holders, len(live))
            if holders != last:
                self.log.changes.append((time.time(), holders))
                last = holders
            self._stop.wait(self.interval)

    def _confirm(self, seen: frozenset[str]) -> frozenset[str]:
        """The VMs of `seen` that provably held the VIP at one same moment.

        A pass reads the VMs one after another, each read a fork into its
        namespace (milliseconds apart, tens under load): a handover between two
        reads shows the old and the new holder in one pass though they never
        overlapped. So read again, in the same order. Let L be the last VM of the
        first pass that held. A VM read before L that holds in both passes held
        all along from its first read to its second, so also when L was read:
        those VMs and L held at once. (A VM that drops and re-adds the VIP
        between its two reads would escape this; agents never re-add that fast.
        With the kernel lease a live element can lapse and be renewed between two
        reads only if an acknowledgement of a round sent *before* the deadline came
        in late: the lease itself never had a gap, so "held all along" stays true of
        what the safety argument is about.)
        """
        again = frozenset(self.cluster.vip_holders())
        order = [vm for vm in self.cluster.vms if vm in seen]
        last = order[-1]
        return frozenset(vm for vm in order[:-1] if vm in again) | {last}


class LabCluster:
    def __init__(self, lab: Lab, root: Path, ttl: float = 0.25, interval: float = 0.06,
                 vms: int = 2, ipv6: bool = False, stabilization: float = 5.0,
                 checks: bool = False, tls: bool = True) -> None:
        self.lab = lab
        self.root = root
        self.ttl = ttl
        self.interval = interval
        self.ipv6 = ipv6
        self.stabilization = stabilization
        self.checks = checks
        self.vip = VIP6 if ipv6 else VIP4
        self.vip_addr = self.vip.split("/")[0]
        self.cids = ["c1", "c2", "c3"]
        self.vms = [f"vm{i + 1}" for i in range(vms)]
        self.hosts: dict[str, Host] = {}
        for i, cid in enumerate(self.cids):
            self.hosts[cid] = lab.add_host(cid, ipv4=lab.address(1 + i))
        for i, vm in enumerate(self.vms):
            self.hosts[vm] = lab.add_host(vm, ipv4=lab.address(11 + i),
                                          ipv6=lab.address(11 + i, 6) if ipv6 else None)
        self.hosts["client"] = lab.add_host("client", ipv4=lab.address(50),
                                            ipv6=lab.address(50, 6) if ipv6 else None)
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.crashed: set[str] = set()
        # Agents run the kernel lease where nft exists (vip.kernel_lease: auto).
        self.kernel_lease = shutil.which("nft") is not None
        (root / "cluster.secret").write_text(secrets.token_urlsafe(32))
        self.api = {c: f"{self.hosts[c].ip4}:{API_PORT}" for c in self.cids}
        # What the coordinators declare, and extra top-level config sections (the
        # active-active lab, lab/vnfha_lab/lablb.py, sets both).
        self.groups: list[dict[str, Any]] = [{"name": "web", "mode": "active-standby",
                                               "vip": self.vip}]
        self.coordinator_extra: dict[str, Any] = {}
        # mTLS on by default, as in production: a throwaway CA for this lab.
        self.pki = LabPki(root / "pki") if tls else None
        # A command prefix per process name (tests/nemesis/disk.py: nsenter into a mount
        # namespace where that coordinator's data dir is a faulty filesystem).
        self.wrappers: dict[str, list[str]] = {}

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, host: str, argv: list[str]) -> subprocess.Popen[Any]:
        log = open(self.root / f"{name}.log", "ab")
        proc = self.hosts[host].popen(argv, prefix=self.wrappers.get(name, ()), stdout=log,
                                      stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        self.procs[name] = proc
        return proc

    def admin_socket(self, cid: str) -> Path:
        return self.root / f"{cid}.sock"

    def start_coordinator(self, cid: str) -> None:
        cfg = {
            "node_id": cid,
            "admin_socket": str(self.admin_socket(cid)),
            "cluster": {"members": [{"id": c, "api": self.api[c],
                                     "raft": f"{self.hosts[c].ip4}:{RAFT_PORT}"}
                                    for c in self.cids],
                        "secret_file": str(self.root / "cluster.secret")},
            "store": {"backend": "raft", "data_dir": str(self.root / "data")},
            "leases": {"ttl": self.ttl, "keepalive_interval": self.interval,
                       "stabilization": self.stabilization},
            "policy": {"decide_interval": min(0.05, self.ttl / 3)},
            "groups": self.groups,
            "logging": {"level": "info", "format": "json"},
            **self.tls_section(f"coordinator/{cid}", self.hosts[cid].ip4),
            **self.coordinator_extra,
        }
        path = self.root / f"{cid}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self._spawn(cid, cid, [sys.executable, "-m", "vnfha.coordinator.cli", "coordinator",
                               "--config", str(path)])

    def start_coordinators(self, timeout: float = 30.0) -> str:
        for cid in self.cids:
            self.start_coordinator(cid)
        return self.wait(lambda: self.leader() if self.group() is not None else None,
                         timeout, "a raft leader with the group applied")

    def start_pair(self, timeout: float = 20.0) -> None:
        """Coordinators, then vm1 (priority 200) until it is active, then vm2 (100),
        until both members are healthy: the starting point of the demo, the tests
        and the benchmarks."""
        self.start_coordinators(timeout)
        self.start_service("vm1")
        self.start_agent("vm1", 200)
        self.wait_active("web-1", timeout)
        self.start_service("vm2")
        self.start_agent("vm2", 100)
        self.wait(lambda: (g := self.group()) is not None and len(g.members) == 2
                  and all(m.health == 2 for m in g.members), timeout, "both members healthy")

    def start_service(self, vm: str) -> None:
        host = "::" if self.ipv6 else "0.0.0.0"
        self._spawn(f"{vm}-svc", vm, [sys.executable, "-m", "vnfha_lab.probe", "serve",
                                      "--port", str(SERVICE_PORT), "--name", vm,
                                      "--host", host])

    def start_kvstore(self, vm: str, mode: str = "sync",
                      checkpoint_interval: float = 0.5) -> None:
        """The sample stateful VNFC on `vm`, syncing to every other VM's copy."""
        peers = [f"--peer={self.hosts[o].ip4}:{SYNC_PORT}" for o in self.vms if o != vm]
        self._spawn(f"{vm}-kv", vm, [
            sys.executable, "-m", "vnfha.agents.samples.kvstore", "serve", "--group", "web",
            "--role-socket", str(self.root / f"{vm}-role.sock"),
            "--listen", f"0.0.0.0:{KV_PORT}", "--sync-listen", f"0.0.0.0:{SYNC_PORT}",
            *peers, "--coordinators", ",".join(self.api[c] for c in self.cids),
            "--mode", mode, "--checkpoint-interval", str(checkpoint_interval),
            *(self.tls_args(f"node/{vm}", self.hosts[vm].ip4) or ["--insecure"])])

    def agent_config(self, vm: str, priority: int) -> dict[str, Any]:
        member: dict[str, Any] = {"group": "web", "member": f"web-{vm[2:]}",
                                  "priority": priority}
        if self.checks:
            member["checks"] = [{"kind": "tcp", "port": SERVICE_PORT, "interval": 0.1,
                                 "timeout": 0.05, "rise": 1, "fall": 2}]
        return {
            "node": vm,
            "address": self.hosts[vm].ip4,
            "coordinators": [self.api[c] for c in self.cids],
            "lease": {"ttl": self.ttl, "keepalive_interval": self.interval},
            "vip": {"interface": "eth0"},
            "role_api": {"socket": str(self.root / f"{vm}-role.sock")},
            "members": [member],
            "logging": {"level": "info", "format": "json"},
            **self.tls_section(f"node/{vm}", self.hosts[vm].ip4),
            # The listener needs mTLS (the port is the agents' default, named here so the
            # lab says it); failsafe is on in a new cluster, `set_failsafe(0)` turns it off.
            **({"failsafe": {"port": FAILSAFE_PORT}} if self.pki is not None else {}),
        }

    def tls_section(self, identity: str, ip: str | None) -> dict[str, Any]:
        """The config `tls:` of a process of this lab (`insecure: true` without TLS)."""
        if self.pki is None:
            return {"insecure": True}
        return {"tls": self.pki.section(identity, (ip,) if ip else ())}

    def tls_args(self, identity: str, ip: str | None = None) -> list[str]:
        if self.pki is None:
            return []
        return self.pki.args(identity, (ip,) if ip else ())

    def start_agent(self, vm: str, priority: int) -> None:
        path = self.root / f"{vm}-agent.yaml"
        path.write_text(yaml.safe_dump(self.agent_config(vm, priority)))
        self._spawn(f"{vm}-agent", vm, [sys.executable, "-m", "vnfha.coordinator.cli",
                                        "agent", "--config", str(path)])

    def signal(self, name: str, sig: int) -> float:
        """Send `sig` to a process group; returns the wall-clock time it was sent."""
        at = time.time()
        os.killpg(self.procs[name].pid, sig)
        return at

    def kill(self, name: str) -> float:
        proc = self.procs.pop(name)
        at = time.time()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        return at

    def crash_vm(self, vm: str) -> float:
        """The VM dies: its NIC goes dark and every process in it is SIGKILLed."""
        at = time.time()
        self.crashed.add(vm)
        self.lab.link_down(self.hosts[vm])
        for name in (f"{vm}-agent", f"{vm}-svc"):
            if name in self.procs:
                self.kill(name)
        return at

    def start_probe(self, name: str = "probe", duration: float = 30.0,
                    interval: float = 0.01, timeout: float = 0.05) -> Path:
        out = self.root / f"{name}.jsonl"
        target = f"[{self.vip_addr}]:{SERVICE_PORT}" if self.ipv6 else \
            f"{self.vip_addr}:{SERVICE_PORT}"
        self._spawn(name, "client", [sys.executable, "-m", "vnfha_lab.probe", "probe",
                                     "--target", target, "--interval", str(interval),
                                     "--timeout", str(timeout), "--duration", str(duration),
                                     "--out", str(out)])
        return out

    def close(self) -> None:
        for name in list(self.procs):
            try:
                self.kill(name)
            except Exception:  # best effort; Lab.close kills whatever is left
                pass

    # -- observation -----------------------------------------------------------------------

    def _admin(self, cid: str) -> tuple[grpc.Channel, admin_pb2_grpc.AdminServiceStub]:
        ch = grpc.insecure_channel(f"unix://{self.admin_socket(cid)}")
        return ch, admin_pb2_grpc.AdminServiceStub(ch)

    def status(self, cid: str | None = None,
               timeout: float = 1.0) -> admin_pb2.GetStatusResponse | None:
        for c in [cid] if cid else [c for c in self.cids if c in self.procs]:
            if not self.admin_socket(c).exists():
                continue
            ch, stub = self._admin(c)
            try:
                return stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=timeout)
            except grpc.RpcError:
                continue
            finally:
                ch.close()
        return None

    def call(self, method: str, request: Any, timeout: float = 10.0) -> Any:
        """An admin call to any live coordinator (the store forwards writes)."""
        last: Exception | None = None
        for c in [c for c in self.cids if c in self.procs]:
            ch, stub = self._admin(c)
            try:
                return getattr(stub, method)(request, timeout=timeout)
            except grpc.RpcError as e:
                last = e
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            finally:
                ch.close()
        raise RuntimeError(f"no coordinator answered {method}: {last}")

    def set_failsafe(self, lease: float) -> None:
        """`vnfha failsafe on --lease LEASE` (0: off), then wait until the agents have the
        setting with their assignments (their watches re-read it within a poll)."""
        self.call("SetFailsafe", admin_pb2.SetFailsafeRequest(lease_ms=round(lease * 1000)))

        def seen(vm: str) -> bool:
            leases = [d.get("lease") for d in self.log_lines(f"{vm}-agent")
                      if d.get("msg") == "failsafe setting changed"]
            return (leases[-1] if leases else 0.0) == lease

        self.wait(lambda: all(seen(vm) for vm in self.vms if f"{vm}-agent" in self.procs),
                  10, f"every agent to have failsafe lease {lease}")

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        """A process's JSON log lines, oldest first (lines that are not JSON skipped)."""
        path = self.root / f"{name}.log"
        out = []
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict):
                    out.append(doc)
        return out

    def leader(self) -> str | None:
        for c in [c for c in self.cids if c in self.procs]:
            st = self.status(c, timeout=0.5)
            if st is not None and st.coordinator.is_leader:
                return c
        return None

    def group(self, cid: str | None = None) -> admin_pb2.GroupStatus | None:
        st = self.status(cid)
        if st is None:
            return None
        return next((g for g in st.groups if g.name == "web"), None)

    def events(self) -> list[admin_pb2.Event]:
        try:
            return list(self.call("ListEvents", admin_pb2.ListEventsRequest()).events)
        except RuntimeError:
            return []

    def vip_holders(self) -> set[str]:
        """VMs that would answer for the VIP now: the address is configured and, where
        agents run the kernel lease (agents/kernellease.py), its element is live. With
        the element expired the VM's own rules drop ARP/NA for the VIP and all traffic
        to and from it, so it cannot answer; the element never outlives the agent's
        lease deadline, so this is the holder the safety argument is about."""
        out = set()
        for vm in self.vms:
            try:
                if self.vip in self.hosts[vm].addresses() and self._lease_live(vm):
                    out.add(vm)
            except Exception:  # a namespace being torn down counts as not holding
                continue
        return out

    def _lease_live(self, vm: str) -> bool:
        if not self.kernel_lease:
            return True
        from vnfha.agents.kernellease import live_addresses

        host = self.hosts[vm]
        return self.vip_addr in live_addresses(lambda argv: host.run(argv).stdout)

    def role_changes(self, vm: str) -> list[dict[str, Any]]:
        """The agent's role-change log lines (JSON), oldest first."""
        path = self.root / f"{vm}-agent.log"
        out = []
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if doc.get("kind") == "role_change":
                    out.append(doc)
        return out

    @staticmethod
    def wait(check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def wait_active(self, member: str, timeout: float = 20.0) -> admin_pb2.GroupStatus:
        return self.wait(lambda: (g := self.group()) is not None and g.active == member
                         and g, timeout, f"{member} active")

    def logs_tail(self, lines: int = 15) -> str:
        out = []
        for p in sorted(self.root.glob("*.log")):
            tail = p.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {p.name}\n" + "\n".join(tail))
        return "\n".join(out)
