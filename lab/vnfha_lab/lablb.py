"""An active-active deployment behind an HA pair of real HAProxy load balancers, in netns.

Built on LabCluster (lab/vnfha_lab/labcluster.py): 3 coordinators, 3 backend VMs
(vm1-vm3: the probe TCP service on 8080 and an agent, members web-1..web-3 of
the active-active group `web`), 2 load-balancer hosts (lb1, lb2: HAProxy with
one backend server per member, and an agent that is a member of the
active/standby group `lb`, which owns the front VIP, and that programs its
local HAProxy from the pool), and a client. The coordinators' recovery hook is
an exec script that appends one JSON line per call to `recovery.jsonl`.

Used by the e2e tests (tests/e2e/test_netns_lb.py) and bench/lb_failover.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import yaml

from vnfha.agents.lb.haproxy import HaproxyAdmin
from vnfha.v1 import admin_pb2, pool_pb2, pool_pb2_grpc
from vnfha_lab import labhaproxy
from vnfha_lab.labcluster import SERVICE_PORT, LabCluster
from vnfha_lab.netlab import Lab

FRONT_PORT = 80
BACKEND = "web_servers"

HOOK_SCRIPT = """\
import json, sys, time
body = json.load(sys.stdin)
body["called_at"] = time.time()
with open({out!r}, "a") as f:
    f.write(json.dumps(body) + "\\n")
"""


class LbLab(LabCluster):
    def __init__(self, lab: Lab, root: Path, ttl: float = 0.3, interval: float = 0.075,
                 stabilization: float = 1.0, reconcile_interval: float = 0.2,
                 backend_checks: bool = False) -> None:
        super().__init__(lab, root, ttl=ttl, interval=interval, vms=3,
                         stabilization=stabilization)
        self.lbs = ["lb1", "lb2"]
        for i, lb in enumerate(self.lbs):
            self.hosts[lb] = lab.add_host(lb, ipv4=lab.address(21 + i))
        self.reconcile_interval = reconcile_interval
        self.lb_log_level = "info"
        self.backend_checks = backend_checks
        self.groups = [{"name": "web", "mode": "active-active"},
                       {"name": "lb", "mode": "active-standby", "vip": self.vip}]
        self.hook_out = root / "recovery.jsonl"
        hook = root / "recovery_hook.py"
        hook.write_text(HOOK_SCRIPT.format(out=str(self.hook_out)))
        self.coordinator_extra = {"recovery": {"exec": [sys.executable, str(hook)],
                                               "timeout": 5, "max_attempts": 3,
                                               "backoff": 0.2}}

    # -- processes -------------------------------------------------------------------------

    def member_of(self, vm: str) -> str:
        return f"web-{vm[2:]}"

    def admin_sock(self, lb: str) -> Path:
        return self.root / f"{lb}-haproxy.sock"

    def start_haproxy(self, lb: str) -> None:
        servers = {self.member_of(vm): f"{self.hosts[vm].ip4}:{SERVICE_PORT}" for vm in self.vms}
        cfg = self.root / f"{lb}-haproxy.cfg"
        cfg.write_text(labhaproxy.render_cfg(self.admin_sock(lb), f"*:{FRONT_PORT}", BACKEND,
                                             servers, check=self.backend_checks))
        self.procs[f"{lb}-svc"] = labhaproxy.start(self.hosts[lb], cfg,
                                                   self.root / f"{lb}-svc.log")
        labhaproxy.wait_ready(HaproxyAdmin(str(self.admin_sock(lb))), BACKEND)

    def start_lb_agent(self, lb: str, priority: int) -> None:
        cfg = {
            "node": lb,
            "address": self.hosts[lb].ip4,
            "coordinators": [self.api[c] for c in self.cids],
            "lease": {"ttl": self.ttl, "keepalive_interval": self.interval},
            "vip": {"interface": "eth0"},
            "members": [{"group": "lb", "member": f"lb-{lb[2:]}", "priority": priority}],
            "lb": {"group": "web", "admin_socket": str(self.admin_sock(lb)), "backend": BACKEND,
                   "reconcile_interval": self.reconcile_interval,
                   **({"excluded_state": "drain", "health_source": "haproxy"}
                      if self.backend_checks else {}),
                   # the LB agent proves it is lb <name>; the agent itself, node <name>
                   **({"tls": self.pki.section(f"lb/{lb}")} if self.pki else {})},
            "logging": {"level": self.lb_log_level, "format": "json"},
            **self.tls_section(f"node/{lb}", self.hosts[lb].ip4),
        }
        path = self.root / f"{lb}-agent.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self._spawn(f"{lb}-agent", lb, [sys.executable, "-m", "vnfha.coordinator.cli", "agent",
                                        "--config", str(path)])

    def agent_config(self, vm: str, priority: int) -> dict[str, Any]:
        cfg = super().agent_config(vm, priority)
        cfg["vip"] = {"manage": False}  # active-active members hold no VIP
        return cfg

    def start_backend(self, vm: str) -> None:
        self.start_service(vm)
        self.start_agent(vm, 100)

    def start_all(self, timeout: float = 30.0) -> None:
        """Coordinators, HAProxy on both LB hosts, their agents (lb1 preferred), then the
        backends; returns once all three serve and both LBs applied the pool."""
        started = time.time()
        self.start_coordinators(timeout)
        for lb in self.lbs:
            self.start_haproxy(lb)
        self.start_lb_agent("lb1", 200)
        self.wait(lambda: (g := self.lb_group()) is not None and g.active == "lb-1", timeout,
                  "lb-1 active")
        self.start_lb_agent("lb2", 100)
        for vm in self.vms:
            self.start_backend(vm)
        self.wait(lambda: self.in_service() == {"web-1", "web-2", "web-3"}, timeout,
                  "every backend in service")
        # A fresh HAProxy starts with every server ready: wait for the agents, not it.
        self.wait(lambda: all(self.lb_in_step(lb, started) for lb in self.lbs), timeout,
                  "both LB agents in step with the pool")
        self.wait(lambda: self.haproxy_ready("lb1") == self.in_service()
                  and self.haproxy_ready("lb2") == self.in_service(), timeout,
                  "both HAProxys in step with the pool")
        self.wait(lambda: self.vip_on() == {"lb1"}, timeout, "the front VIP on lb1")

    def revive_vm(self, vm: str) -> None:
        """The crashed VM boots again: link up, service and agent restarted."""
        self.lab.link_up(self.hosts[vm])
        self.crashed.discard(vm)
        self.start_backend(vm)

    def start_front_probe(self, name: str = "probe", duration: float = 30.0,
                          interval: float = 0.01, timeout: float = 0.5) -> Path:
        out = self.root / f"{name}.jsonl"
        self._spawn(name, "client", [sys.executable, "-m", "vnfha_lab.probe", "probe",
                                     "--target", f"{self.vip_addr}:{FRONT_PORT}",
                                     "--interval", str(interval), "--timeout", str(timeout),
                                     "--duration", str(duration),
                                     "--max-attempts", str(int(duration / interval) + 10),
                                     "--out", str(out)])
        return out

    # -- observation -----------------------------------------------------------------------

    def lb_group(self) -> admin_pb2.GroupStatus | None:
        st = self.status()
        return None if st is None else next((g for g in st.groups if g.name == "lb"), None)

    def pool(self, timeout: float = 1.0) -> pool_pb2.WatchPoolResponse | None:
        for c in [c for c in self.cids if c in self.procs]:
            if not self.admin_socket(c).exists():
                continue
            ch = grpc.insecure_channel(f"unix://{self.admin_socket(c)}")
            try:
                call = pool_pb2_grpc.PoolServiceStub(ch).WatchPool(
                    pool_pb2.WatchPoolRequest(group="web"), timeout=timeout)
                return next(iter(call))
            except (grpc.RpcError, StopIteration):
                continue
            finally:
                ch.close()
        return None

    def in_service(self) -> set[str]:
        p = self.pool()
        return set() if p is None else {m.member for m in p.members if m.in_service}

    def haproxy_ready(self, lb: str) -> set[str]:
        """Servers HAProxy on `lb` would send new connections to (not maint/drain)."""
        try:
            st = HaproxyAdmin(str(self.admin_sock(lb))).servers_state(BACKEND)
        except Exception:
            return set()
        return {n for n, s in st.items() if not (s.forced_maint or s.forced_drain)}

    def vip_on(self) -> set[str]:
        out = set()
        for lb in self.lbs:
            try:
                if self.vip in self.hosts[lb].addresses():
                    out.add(lb)
            except Exception:
                continue
        return out

    def hook_calls(self) -> list[dict[str, Any]]:
        if not self.hook_out.exists():
            return []
        return [json.loads(ln) for ln in self.hook_out.read_text().splitlines() if ln.strip()]

    def lb_log(self, lb: str, kind: str = "lb_server_state") -> list[dict[str, Any]]:
        path = self.root / f"{lb}-agent.log"
        out = []
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if doc.get("kind") == kind:
                    out.append(doc)
        return out

    def lb_in_step(self, lb: str, after: float) -> bool:
        """The agent on `lb` (started after `after`) has brought HAProxy in step."""
        return any(d["ts"] >= after for d in self.lb_log(lb, "lb_in_step"))

    def excluded_at(self, lb: str, member: str, after: float) -> float | None:
        """Wall-clock time the agent on `lb` had set `member`'s server out of service."""
        return next((d["ts"] for d in self.lb_log(lb) if d["member"] == member
                     and d["state"] in ("maint", "drain") and d["ts"] >= after), None)
