"""`vnfha agent --config FILE`: one per VM. Keeps its node alive, acts on roles.

Order of effects, the heart of "never two holders":

* becoming active (assignment says active at epoch e, lease runs):
  add the VIP, announce it (gratuitous ARP / unsolicited NA), then tell the
  VNFC (role API, notify hook);
* stopping (lease ran out, demoted, shutting down): tell the VNFC to stop,
  then remove the VIP; the next keepalive (sent at once) reports the release.
  A shutdown (SIGTERM/SIGINT) first drains: the coordinators demote the active
  members with a handover, and the agent releases when the demotion arrives.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Any

from vnfha.agents import core
from vnfha.agents.config import AgentConfig
from vnfha.agents.health import HealthMonitor
from vnfha.agents.hooks import HookRunner
from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.logs import setup_logging

log = logging.getLogger("vnfha.agent")

# How long a stopping agent keeps its roles while waiting for the coordinators to
# demote them (drain); after it, it releases anyway, as a plain stop.
DRAIN_TIMEOUT = 2.0


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.hooks = HookRunner(on_hung=lambda g, m, why: self.session.block(g, m, why))
        self._notify = {(m.group, m.member): m.notify for m in cfg.members}
        self._notify_timeout = {(m.group, m.member): m.notify_timeout for m in cfg.members}
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
        self.kernel_lease: Any = None  # agents.kernellease.KernelLease when enabled
        self._live: set[str] = set()  # VIPs whose kernel lease this agent wrote
        self._klock = threading.Lock()  # orders renewals against claims and releases
        self._renew_to = 0.0
        self._renew_kick = threading.Event()
        self._stopping = threading.Event()
        self.session = AgentSession(
            node=cfg.node, address=cfg.address,
            members=[HostedMember(m.group, m.member, m.priority) for m in cfg.members],
            endpoints=list(cfg.coordinators), ttl=cfg.lease.ttl,
            interval=cfg.lease.keepalive_interval, drift=cfg.lease.drift,
            margin=cfg.lease.margin, health=self.health.healthy, on_role=self._on_role,
            on_assignments=self._on_assignments, on_lease=self._on_lease, tls=cfg.tls,
            failsafe_endpoint=cfg.failsafe_endpoint, fastpath=cfg.fastpath)
        # Failsafe leases (agents/failsafe_peer.py): ask the other members to keep an
        # active role through a coordinator outage, and answer them on failsafe.port.
        from vnfha.agents.failsafe_peer import FailsafePeer

        lc = cfg.lease
        self._fs_deadline = 0.0  # the latest deadline failsafe allows (0: none)
        self.failsafe = FailsafePeer(
            self.session, cfg.failsafe_endpoint, cfg.tls,
            interval=lc.keepalive_interval, span=lc.ttl * (1 - lc.drift) - lc.margin,
            drift=lc.drift, margin=lc.margin, on_deadline=self._on_failsafe_deadline)
        self.session.failsafe = self.failsafe
        if self.vips is not None:
            self.vips.may_hold = self._may_hold
        self._vip_held: dict[tuple[str, str], str] = {}  # member -> VIP it holds now
        self.session.vip_held = lambda g, m: (g, m) in self._vip_held
        if cfg.role_api_socket:
            from vnfha.agents.roleapi import RoleApiServer

            self.role_api = RoleApiServer(cfg.role_api_socket, self)
        self.status_server: Any = None  # `vnfha agent status` (agents/status.py)
        if cfg.status_socket:
            from vnfha.agents.status import StatusServer

            self.status_server = StatusServer(cfg.status_socket, self.status_document)
        self._started = time.monotonic()
        self.lb: Any = None
        if cfg.lb is not None:  # a load-balancer host: HAProxy follows the pool
            from vnfha.agents.lb.agent import LbAgent

            self.lb = LbAgent(cfg.node, list(cfg.coordinators), cfg.lb,
                              tls=cfg.lb.tls or cfg.tls)
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
        """Called by the session, in order, under its lock. Carries out the steps of
        one role change in the core's order (agents/core.py: role_change_steps).

        A claim raises (bad VIP from the coordinators, unknown interface, kernel
        refusal): the session then undoes it and blocks the member, so it is never
        "active, healthy" without its VIP."""
        role = "active" if active else "standby"
        self._reasons[(group, member)] = why
        spec = self._vip_spec(group, member) if active else None
        deadline = self.session.lease.deadline() or 0.0
        claiming = 0.0
        for step in core.role_change_steps(active):
            if step == "notify_vnfc":
                self._tell_vnfc(group, member, role, epoch)
                if not active:  # a release looks the VIP up after telling the VNFC
                    self._vip_held.pop((group, member), None)
                    spec = self._vip_spec(group, member)
            elif spec is None:  # no VIP managed for this member
                continue
            elif step == "guardian_hold":
                if self.guardian is not None:
                    self.guardian.lease(deadline)
                    self.guardian.hold(group, spec.address, spec.interface)
            elif step == "kernel_hold":
                claiming = time.monotonic()  # the VIP claim metric starts here
                if self.kernel_lease is not None:  # live before the address answers
                    with self._klock:
                        self.kernel_lease.hold(spec.address, deadline, time.monotonic())
                        self._live.add(spec.address)
            elif step == "add_vip":
                self.vips.want(group, spec, held=True)
                self._vip_held[(group, member)] = spec.address
                if self.metrics is not None:
                    self.metrics.vip_claim.observe(time.monotonic() - claiming)
            elif step == "kernel_release":
                if self.kernel_lease is not None:  # quiet at once, even if removal fails
                    with self._klock:
                        self._live.discard(spec.address)
                        self.kernel_lease.release([spec.address])
            elif step == "remove_vip":
                self.vips.want(group, spec, held=False)  # if this raises, the guardian
            elif step == "guardian_release":             # still removes it at lease end
                if self.guardian is not None:
                    self.guardian.release(group)
        log.info("role change", extra={"event": {
            "kind": "role_change", "node": self.cfg.node, "group": group, "member": member,
            "role": role, "epoch": epoch, "reason": why,
            "vip": spec.address if spec is not None else ""}})

    def _may_hold(self) -> bool:
        """The VIP layer may (re)add or refresh a VIP: the quorum lease or failsafe runs.
        Reads no lock (the VIP layer calls it under its own, the session the other way)."""
        now = time.monotonic()
        return core.may_hold(self.session.lease.deadline(), now) or now < self._fs_deadline

    def _on_failsafe_deadline(self, deadline: float) -> None:
        """The failsafe loop's deadline for every held VIP (never later than a grant):
        the guardian and the kernel lease follow it as they follow the quorum lease."""
        quorum = self.session.lease.deadline() or 0.0
        extended = deadline if deadline > quorum else 0.0
        if extended == self._fs_deadline:
            return  # unchanged: no nft run, no guardian message
        self._fs_deadline = extended
        self._on_lease(quorum)  # the later of the two (_on_lease adds the failsafe one)

    def _on_lease(self, deadline: float) -> None:
        # A quorum deadline may be older than the failsafe grants still held (the first
        # round acknowledged after the coordinators return can be a queued, old one):
        # never tell the guardian less than what failsafe is entitled to.
        deadline = max(deadline, self._fs_deadline)
        if self.guardian is not None:
            self.guardian.lease(deadline)
        if self.kernel_lease is not None:  # off the session lock: nft takes milliseconds
            self._renew_to = deadline
            self._renew_kick.set()

    def _renew_loop(self) -> None:
        """Rewrite the kernel lease of held VIPs to each new deadline. The guardian does
        the same: either one keeps a live active answering if the other lags; neither
        can extend it past the lease (both write the agent's own deadline)."""
        said: set[str] = set()
        while not self._stopping.is_set():
            if not self._renew_kick.wait(0.5):
                continue
            self._renew_kick.clear()
            with self._klock:
                live = list(self._live)
                if not live:
                    continue
                try:
                    self.kernel_lease.renew(live, self._renew_to, time.monotonic())
                except RuntimeError as e:  # lapses by itself: the safe direction
                    if str(e) not in said:
                        said.add(str(e))
                        log.error("cannot renew the kernel lease", extra={"error": str(e)})

    def _tell_vnfc(self, group: str, member: str, role: str, epoch: int) -> None:
        if self.role_api is not None:
            self.role_api.notify()
        self.hooks.submit(self._notify[(group, member)], role, epoch, group, member,
                          timeout=self._notify_timeout[(group, member)])

    def _on_assignments(self) -> None:
        """Make sure no VIP we do not hold is configured (e.g. left from before a
        restart): VIPs are learnt from assignments, so check on every snapshot."""
        for m in self.cfg.members:
            try:
                spec = self._vip_spec(m.group, m.member)
                if spec is not None and not self.session.role(m.group, m.member).active_epoch:
                    self.vips.want(m.group, spec, held=False)
            except (ValueError, RuntimeError) as e:  # bad VIP; VipError (a RuntimeError)
                self.session.block(m.group, m.member, f"its VIP cannot be managed: {e}")
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
                healthy=(self.health.healthy(m.group, m.member)
                         and self.session.fault(m.group, m.member) is None),
                reason=(self.session.fault(m.group, m.member)
                        or self._reasons.get((m.group, m.member), "starting"))))
        return out

    def status_document(self) -> dict[str, Any]:
        """What `vnfha agent status` shows: lease, coordinators' answers, members, VIPs,
        the last assignment and the fail-safe state (agents/status.py)."""
        import os

        from vnfha.agents.status import (
            CoordinatorLink,
            FailsafeGroup,
            FailsafeState,
            MemberState,
            build_status,
        )
        from vnfha.v1 import types_pb2

        s = self.session
        now = time.monotonic()
        deadline, quorum, size, announced, acks = s.lease_view()
        results = {1: "ack", 2: "unknown-node", 3: "invalid"}
        links = []
        for endpoint, answer in zip(s.endpoints, list(s.answers), strict=True):
            if answer is None:
                links.append(CoordinatorLink(endpoint=endpoint))
                continue
            at, cid, result = answer
            links.append(CoordinatorLink(endpoint=endpoint, coordinator_id=cid,
                                         last_answer_age=now - at,
                                         last_result=results.get(result, str(result)),
                                         acks=acks.get(cid, 0)))
        members, blocked = [], {}
        for m in self.cfg.members:
            r = s.role(m.group, m.member)
            a = s.assignment(m.group, m.member)
            fault = s.fault(m.group, m.member)
            if fault is not None and fault != s.failed:
                blocked[f"{m.group}/{m.member}"] = fault
            members.append(MemberState(
                group=m.group, member=m.member, active_epoch=r.active_epoch,
                seen_epoch=r.seen_epoch,
                healthy=fault is None and self.health.healthy(m.group, m.member),
                reason=fault or self._reasons.get((m.group, m.member), ""),
                vip=a.vip if a is not None else "",
                vip_held=(m.group, m.member) in self._vip_held,
                assigned_role=(None if a is None else
                               types_pb2.Role.Name(a.role).removeprefix("ROLE_").lower()),
                assigned_epoch=a.epoch if a is not None else 0))
        guardian = ("off" if self.guardian is None
                    else "running" if self.guardian.alive else "exited")
        fs, engaged, grants = self.failsafe, self.failsafe.engaged(), self.failsafe.grantors(now)
        left = self._fs_deadline - now if self._fs_deadline > now else None
        fs_groups = tuple(FailsafeGroup(
            group=g, lease=fs.setting(g), engaged=g in engaged, epoch=engaged.get(g, 0),
            grantors=grants.get(g, ()), remaining=left)
            for g in sorted({m.group for m in self.cfg.members}))
        return build_status(
            node=self.cfg.node, pid=os.getpid(), uptime=now - self._started,
            lease_remaining=None if deadline is None else deadline - now, quorum=quorum,
            cluster_size=size, announced=sorted(announced), links=links, members=members,
            assignment_revision=s.assignment_revision, failed=s.failed, blocked=blocked,
            guardian=guardian, kernel_lease="on" if self.kernel_lease is not None else "off",
            vip_managed=self.vips is not None,
            failsafe=FailsafeState(listener=self.cfg.failsafe_endpoint,
                                   off_reason=self.cfg.failsafe_off_reason, groups=fs_groups,
                                   granted=fs.answered["granted"],
                                   refused=fs.answered["refused"]))

    # -- lifecycle -------------------------------------------------------------------------

    def _on_fail(self, why: str) -> None:
        """Fail-stop fast path, without the session lock (it may be what is stuck): the
        guardian drops every held VIP now; the session then releases roles in order."""
        if self.guardian is not None:
            self.guardian.lease(0.0)
        if self.kernel_lease is not None and self._live:
            try:
                self.kernel_lease.release(list(self._live))
            except RuntimeError as e:  # the elements still expire at the lease end
                log.error("cannot end the kernel lease", extra={"error": str(e)})
        if self.role_api is not None:
            self.role_api.notify()

    def _check_interfaces(self) -> None:
        """A member whose VIP interface is missing can never hold its VIP: say so once
        and report it unhealthy, rather than be elected and serve nothing."""
        for m in self.cfg.members:
            ifname = self._vif[(m.group, m.member)]
            try:
                socket.if_nametoindex(ifname)
            except OSError:
                self.session.block(m.group, m.member,
                                   f"no interface {ifname!r} in this network namespace "
                                   "(vip.interface / vip_interface)")

    def _start_kernel_lease(self) -> None:
        """Resolve vip.kernel_lease (auto: on where nft is installed) and set the rules
        up; `on` without nft is a start-up error, not a silent downgrade."""
        from vnfha.agents.kernellease import KernelLease, nft_available

        mode = self.cfg.vip.kernel_lease
        if mode == "off":
            return
        if not nft_available():
            if mode == "on":
                raise RuntimeError("vip.kernel_lease is on but nft is not installed "
                                   "(apt install nftables), or set vip.kernel_lease: auto|off")
            log.warning("nft not installed: VIPs have no kernel-enforced lease "
                        "(vip.kernel_lease: auto)", extra={"node": self.cfg.node})
            return
        lease = KernelLease()
        lease.setup()
        self.kernel_lease = lease
        threading.Thread(target=self.session.supervised("kernel-lease", self._renew_loop,
                                                                forever=False),
                         name="kernel-lease", daemon=True).start()

    def start(self) -> None:
        self.session.on_fail = self._on_fail
        if self.vips is not None:
            from vnfha.agents.guardian import GuardianLink

            self._check_interfaces()
            self._start_kernel_lease()
            # Before anything can be claimed: the guardian must know of every VIP.
            self.guardian = GuardianLink(on_exit=lambda rc: self.session.fail(
                f"the VIP guardian exited (status {rc})"),
                kernel_lease=self.kernel_lease is not None,
                realtime_priority=(None if self.cfg.realtime == "off"
                                   else self.cfg.realtime_priority))
            self.vips.start()
        self.health.start()
        if self.role_api is not None:
            self.role_api.start()
        if self.status_server is not None:
            self.status_server.start()
        self.session.start()
        self.failsafe.start()
        if self.lb is not None:  # after registering: its reports name this node
            self.lb.start()
        if self.metrics is not None:
            from vnfha.agents.metrics import serve_agent

            self.metrics_http = serve_agent(self)

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """A stop is a handover (keepalived's priority-0 advert): hand active roles to
        a standby first, so it is promoted at once instead of after the lease runs out,
        and this node is shown stopped, not failed. Also with nothing active: a role
        released a moment ago (a switchover in flight) must still be reported, and a
        standby's lease running out is no failure either."""
        if self.session.failed is not None:
            return
        started = time.monotonic()
        handovers = self.session.drain(timeout)
        log.info("drained", extra={"node": self.cfg.node, "handovers": len(handovers),
                                   "seconds": round(time.monotonic() - started, 3)})

    def stop(self) -> None:
        self._stopping.set()
        if self.metrics_http is not None:
            self.metrics_http.stop()
        if self.lb is not None:
            self.lb.stop()
        self.failsafe.stop()
        self.session.stop()  # releases every active role first (VNFC told, VIP removed)
        if self.role_api is not None:
            self.role_api.stop()
        if self.status_server is not None:
            self.status_server.stop()
        self.health.stop()
        if self.vips is not None:
            self.vips.stop(release=True)
        if self.guardian is not None:
            self.guardian.close()
        if self.kernel_lease is not None:
            try:
                self.kernel_lease.teardown()
            except RuntimeError as e:
                log.warning("cannot remove the kernel lease rules", extra={"error": str(e)})
        self.hooks.stop()


def failsafe_notice(cfg: AgentConfig) -> str | None:
    """The one line an agent without a failsafe listener says at start (None: it has
    one). Failsafe is on by default cluster-wide, so an operator must learn here, not
    during a coordinator outage, that this VM's groups will not be kept by it."""
    if cfg.failsafe_endpoint:
        return None
    what, whose = (("grant or request failsafe leases", "here or on other VMs")
                   if cfg.tls is None else ("grant failsafe leases", "on other VMs"))
    return (f"no failsafe listener ({cfg.failsafe_off_reason}): this agent cannot {what}; "
            f"the actives of its groups {whose} drop their VIPs when the coordinators are "
            "unreachable, even with failsafe on (docs/agent.md, failsafe)")


def run(cfg: AgentConfig) -> int:
    setup_logging(cfg.log_level, cfg.log_format)
    from vnfha.agents import realtime

    try:  # before any thread exists: threads inherit the scheduler of their creator
        rt = realtime.apply(realtime.RealtimeSettings(cfg.realtime, cfg.realtime_priority),
                            threads_inherit=True)
    except RuntimeError as e:
        log.error("cannot start agent", extra={"node": cfg.node, "error": str(e)})
        return 1
    if rt.problems:
        log.warning("running without part of the real-time set-up (realtime: auto)",
                    extra={"node": cfg.node, "problems": list(rt.problems)})
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
    realtime.freeze_garbage()
    log.info("agent running", extra={"node": cfg.node, "coordinators": cfg.coordinators,
                                     "realtime": rt.scheduler, "memory_locked": rt.mlock})
    notice = failsafe_notice(cfg)
    if notice is not None:
        log.warning(notice, extra={"node": cfg.node, "reason": cfg.failsafe_off_reason})
    if cfg.tls is None:
        log.warning("talking to the coordinators without TLS: anyone on the path can read "
                    "and forge this node's keepalives", extra={"node": cfg.node,
                                                               "insecure": cfg.insecure})
    done.wait()
    agent.drain()
    agent.stop()
    return 0
