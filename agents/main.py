"""`vnfha agent --config FILE`: one per VM. Keeps its node alive, acts on roles.

Order of effects, the heart of "never two holders":

* becoming active (assignment says active at epoch e, lease runs):
  add the VIP, announce it (gratuitous ARP / unsolicited NA), then tell the
  VNFC (role API, notify hook);
* stopping (lease ran out, demoted, shutting down): tell the VNFC to stop,
  then remove the VIP; the next keepalive (sent at once) reports the release.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from vnfha.agents.config import AgentConfig
from vnfha.agents.health import HealthMonitor
from vnfha.agents.hooks import HookRunner
from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.logs import setup_logging

log = logging.getLogger("vnfha.agent")


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.hooks = HookRunner()
        self._notify = {(m.group, m.member): m.notify for m in cfg.members}
        self._vif = {(m.group, m.member): m.vip_interface or cfg.vip.interface
                     for m in cfg.members}
        self._reasons: dict[tuple[str, str], str] = {}
        self.vips: Any = None
        if cfg.vip.manage:
            from vnfha.agents.vip import VipManager

            self.vips = VipManager(garp_count=cfg.vip.announce_count,
                                   garp_interval=cfg.vip.announce_interval,
                                   refresh_interval=cfg.vip.refresh_interval,
                                   lifetime=cfg.vip.lifetime or None)
        self.health = HealthMonitor({(m.group, m.member): m.checks for m in cfg.members},
                                    on_change=self._on_health)
        self.role_api: Any = None
        self.guardian: Any = None
        self.session = AgentSession(
            node=cfg.node, address=cfg.address,
            members=[HostedMember(m.group, m.member, m.priority) for m in cfg.members],
            endpoints=list(cfg.coordinators), ttl=cfg.lease.ttl,
            interval=cfg.lease.keepalive_interval, drift=cfg.lease.drift,
            margin=cfg.lease.margin, health=self.health.healthy, on_role=self._on_role,
            on_assignments=self._on_assignments, on_lease=self._on_lease)
        if self.vips is not None:
            self.vips.may_hold = lambda: self.session.lease.valid(time.monotonic())
        if cfg.role_api_socket:
            from vnfha.agents.roleapi import RoleApiServer

            self.role_api = RoleApiServer(cfg.role_api_socket, self)
        self.lb: Any = None
        if cfg.lb is not None:  # a load-balancer host: HAProxy follows the pool
            from vnfha.agents.lb.agent import LbAgent

            self.lb = LbAgent(cfg.node, list(cfg.coordinators), cfg.lb)
        self.metrics: Any = None  # /metrics, /livez, /readyz (agents/metrics.py)
        self.metrics_http: Any = None
        if cfg.metrics.listen is not None:
            from vnfha.agents.metrics import AgentMetrics

            self.metrics = AgentMetrics(self)

    # -- effects ---------------------------------------------------------------------------

    def _vip_spec(self, group: str, member: str) -> Any:
        a = self.session.assignment(group, member)
        if self.vips is None or a is None or not a.vip:
            return None
        from vnfha.agents.vip import VipSpec

        return VipSpec(address=a.vip, interface=self._vif[(group, member)])

    def _on_role(self, group: str, member: str, active: bool, epoch: int, why: str) -> None:
        """Called by the session, in order, under its lock."""
        role = "active" if active else "standby"
        self._reasons[(group, member)] = why
        spec = self._vip_spec(group, member)
        if active:
            if spec is not None:
                if self.guardian is not None:
                    self.guardian.lease(self.session.lease.deadline() or 0.0)
                    self.guardian.hold(group, spec.address, spec.interface)
                claiming = time.monotonic()
                self.vips.want(group, spec, held=True)
                if self.metrics is not None:
                    self.metrics.vip_claim.observe(time.monotonic() - claiming)
            self._tell_vnfc(group, member, role, epoch)
        else:
            self._tell_vnfc(group, member, role, epoch)
            if spec is not None:
                self.vips.want(group, spec, held=False)
                if self.guardian is not None:
                    self.guardian.release(group)
        log.info("role change", extra={"event": {
            "kind": "role_change", "node": self.cfg.node, "group": group, "member": member,
            "role": role, "epoch": epoch, "reason": why,
            "vip": spec.address if spec is not None else ""}})

    def _on_lease(self, deadline: float) -> None:
        if self.guardian is not None:
            self.guardian.lease(deadline)

    def _tell_vnfc(self, group: str, member: str, role: str, epoch: int) -> None:
        if self.role_api is not None:
            self.role_api.notify()
        self.hooks.submit(self._notify[(group, member)], role, epoch, group, member)

    def _on_assignments(self) -> None:
        """Make sure no VIP we do not hold is configured (e.g. left from before a
        restart): VIPs are learnt from assignments, so check on every snapshot."""
        for m in self.cfg.members:
            spec = self._vip_spec(m.group, m.member)
            if spec is None:
                continue
            if not self.session.role(m.group, m.member).active_epoch:
                self.vips.want(m.group, spec, held=False)
        if self.role_api is not None:
            self.role_api.notify()

    def _on_health(self, group: str, member: str, healthy: bool, reason: str) -> None:
        log.info("health change", extra={"event": {
            "kind": "health_change", "node": self.cfg.node, "group": group, "member": member,
            "healthy": healthy, "reason": reason}})
        self.session.kick()  # tell the coordinators now, not at the next interval
        if self.role_api is not None:
            self.role_api.notify()

    # -- role API provider -----------------------------------------------------------------

    def roles(self) -> list[Any]:
        from vnfha.agents.roleapi import MemberRoleView

        deadline = self.session.lease.deadline()
        now = time.monotonic()
        out = []
        for m in self.cfg.members:
            r = self.session.role(m.group, m.member)
            a = self.session.assignment(m.group, m.member)
            out.append(MemberRoleView(
                group=m.group, member=m.member, active=bool(r.active_epoch),
                epoch=r.active_epoch, vip=a.vip if a is not None else "",
                lease_deadline_monotonic=deadline if deadline and deadline > now else None,
                healthy=self.health.healthy(m.group, m.member),
                reason=self._reasons.get((m.group, m.member), "starting")))
        return out

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.vips is not None:
            from vnfha.agents.guardian import GuardianLink

            # Before anything can be claimed: the guardian must know of every VIP.
            self.guardian = GuardianLink()
            self.vips.start()
        self.health.start()
        if self.role_api is not None:
            self.role_api.start()
        self.session.start()
        if self.lb is not None:  # after registering: its reports name this node
            self.lb.start()
        if self.metrics is not None:
            from vnfha.agents.metrics import serve_agent

            self.metrics_http = serve_agent(self)

    def stop(self) -> None:
        if self.metrics_http is not None:
            self.metrics_http.stop()
        if self.lb is not None:
            self.lb.stop()
        self.session.stop()  # releases every active role first (VNFC told, VIP removed)
        if self.role_api is not None:
            self.role_api.stop()
        self.health.stop()
        if self.vips is not None:
            self.vips.stop(release=True)
        if self.guardian is not None:
            self.guardian.close()
        self.hooks.stop()


def run(cfg: AgentConfig) -> int:
    setup_logging(cfg.log_level, cfg.log_format)
    agent = Agent(cfg)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.start()
    except (RuntimeError, OSError) as e:
        log.error("cannot start agent", extra={"node": cfg.node, "error": str(e)})
        agent.stop()
        return 1
    log.info("agent running", extra={"node": cfg.node, "coordinators": cfg.coordinators})
    done.wait()
    agent.stop()
    return 0
