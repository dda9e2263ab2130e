"""Agent metrics and health (docs/metrics.md): what Prometheus sees of one VM's agent.

Everything but the VIP claim time is read when Prometheus scrapes: a snapshot of
the agent (`AgentView`: lease, acks, roles, health, VIPs as the kernel has them) is
taken, and pure functions turn it into metrics (`view_metrics`) and into the
/readyz answer (`ready`). Unit tests feed them fixed views.

/readyz on an agent: ready when its lease is held (or it hosts no member, so it
needs none) and every VIP is where the roles say: configured for an active
member, absent for the others. A VIP present without the active role is the
dangerous case (a second holder); a VIP missing for an active member is an outage.
Without a lease it is also ready when every member it hosts is an active kept on a
full set of failsafe grants (docs/design.md "Failsafe"): it serves, and says why
("failsafe: ..."); a standby without a lease could not take over, so it is not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Adding an address and the guardian round trip: milliseconds.
CLAIM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class MemberView:
    group: str
    member: str
    active: bool  # acting as active now (the agent's own decision, lease included)
    seen_epoch: int
    active_epoch: int
    healthy: bool
    vip: str = ""  # the group's VIP, "" if none or not managed here
    vip_present: bool = False  # the kernel has it now


@dataclass(frozen=True)
class AgentView:
    node: str
    now: float  # monotonic
    lease_deadline: float | None  # monotonic; None: never acknowledged by a majority
    acks_by: dict[str, int] = field(default_factory=dict)
    members: tuple[MemberView, ...] = ()
    # Failsafe (agents/failsafe_peer.py): groups whose active role is kept on failsafe
    # leases now; how often that began, per group; leases this agent granted/refused.
    failsafe_engaged: tuple[str, ...] = ()
    failsafe_engagements: dict[str, int] = field(default_factory=dict)
    failsafe_answers: dict[str, int] = field(default_factory=dict)
    # group -> the other members whose failsafe grant to this agent's active runs now;
    # and until when failsafe lets the held VIPs stay (monotonic; 0: it does not).
    failsafe_grants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    failsafe_deadline: float = 0.0


NO_LEASE = "no lease: a majority of coordinators has not acknowledged this node"


def on_failsafe(view: AgentView) -> list[str]:
    """"group/member (from grantor, ...)" for each member when every member this agent
    hosts is an active kept on failsafe grants now; [] otherwise (a standby or a
    member not kept means the agent needs its lease to be of use)."""
    if not view.members or view.now >= view.failsafe_deadline:
        return []
    kept = []
    for m in view.members:
        grantors = view.failsafe_grants.get(m.group, ())
        if not (m.active and m.group in view.failsafe_engaged and grantors):
            return []
        kept.append(f"{m.group}/{m.member} (from {', '.join(grantors)})")
    return kept


def ready(view: AgentView) -> tuple[bool, str]:
    """(ready, why): lease held or not needed, or every member an active kept on
    failsafe grants; VIPs consistent with the roles."""
    kept: list[str] = []
    if view.members and not (view.lease_deadline is not None
                             and view.now < view.lease_deadline):
        kept = on_failsafe(view)
        if not kept:
            return False, NO_LEASE
    for m in view.members:
        if not m.vip:
            continue
        if m.vip_present and not m.active:
            return False, f"{m.group}/{m.member}: VIP {m.vip} configured but not active"
        if m.active and not m.vip_present:
            return False, f"{m.group}/{m.member}: active but VIP {m.vip} not configured"
    if kept:
        return True, ("failsafe: no coordinator quorum; active on failsafe leases: "
                      + "; ".join(kept))
    active = [f"{m.group}/{m.member}" for m in view.members if m.active]
    return True, ("active: " + ", ".join(active)) if active else "lease held"


def view_metrics(view: AgentView) -> list[Metric]:
    """Every scrape-time agent metric from one snapshot. Pure."""
    left = 0.0 if view.lease_deadline is None else max(0.0, view.lease_deadline - view.now)
    lease = GaugeMetricFamily("vnfha_agent_lease_remaining_seconds", "Seconds until this "
                              "agent's own (conservative) lease runs out; 0 when it has none")
    lease.add_metric([], left)
    valid = GaugeMetricFamily("vnfha_agent_lease_valid", "1 while the lease runs")
    valid.add_metric([], 1 if left > 0 else 0)
    acks = CounterMetricFamily("vnfha_agent_keepalive_acks", "Keepalive acknowledgements "
                               "received, per coordinator id", labels=["coordinator"])
    for coordinator, n in sorted(view.acks_by.items()):
        acks.add_metric([coordinator], n)
    role = GaugeMetricFamily("vnfha_agent_member_role", "1 for the role the agent acts in "
                             "(active, standby), 0 for the other", labels=["group", "member",
                                                                          "role"])
    epoch = GaugeMetricFamily("vnfha_agent_seen_epoch", "Highest epoch of the member's group "
                              "this agent has processed", labels=["group", "member"])
    healthy = GaugeMetricFamily("vnfha_agent_member_healthy", "1 while the member's local "
                                "health checks pass", labels=["group", "member"])
    vip = GaugeMetricFamily("vnfha_agent_vip_held", "1 while the kernel has the group's VIP "
                            "configured on this VM", labels=["group", "vip"])
    for m in view.members:
        for r in ("active", "standby"):
            role.add_metric([m.group, m.member, r], 1 if (r == "active") == m.active else 0)
        epoch.add_metric([m.group, m.member], m.seen_epoch)
        healthy.add_metric([m.group, m.member], 1 if m.healthy else 0)
        if m.vip:
            vip.add_metric([m.group, m.vip], 1 if m.vip_present else 0)
    ok, _ = ready(view)
    rdy = GaugeMetricFamily("vnfha_agent_ready", "1 when /readyz answers ok")
    rdy.add_metric([], 1 if ok else 0)
    fs_on = GaugeMetricFamily("vnfha_agent_failsafe_engaged", "1 while the group's active "
                              "role is kept on failsafe leases (no coordinator quorum)",
                              labels=["group"])
    for g in sorted({m.group for m in view.members if m.active} | set(view.failsafe_engaged)):
        fs_on.add_metric([g], 1 if g in view.failsafe_engaged else 0)
    fs_n = CounterMetricFamily("vnfha_agent_failsafe_engagements", "Times an active role "
                               "began to be kept on failsafe leases", labels=["group"])
    for g, n in sorted(view.failsafe_engagements.items()):
        fs_n.add_metric([g], n)
    fs_a = CounterMetricFamily("vnfha_agent_failsafe_answers", "Failsafe lease requests "
                               "this agent answered, by result", labels=["result"])
    for r in ("granted", "refused"):
        fs_a.add_metric([r], view.failsafe_answers.get(r, 0))
    fs_g = GaugeMetricFamily("vnfha_agent_failsafe_grants_held", "Other members whose "
                             "failsafe grant to this agent's active runs now",
                             labels=["group"])
    for g in sorted({m.group for m in view.members if m.active} | set(view.failsafe_grants)):
        fs_g.add_metric([g], len(view.failsafe_grants.get(g, ())))
    return [lease, valid, acks, role, epoch, healthy, vip, rdy, fs_on, fs_n, fs_a, fs_g]


def snapshot(agent: Any) -> AgentView:
    """Read an `agents.main.Agent` (session, health monitor, VIP manager) at one moment."""
    session = agent.session
    with session._lock:  # the lease and roles change under this lock (session.py)
        deadline = session.lease.deadline()
        acks = dict(session.lease.acks_by)
        roles = {(m.group, m.member): session.role(m.group, m.member)
                 for m in agent.cfg.members}
    members = []
    for m in agent.cfg.members:
        r = roles[(m.group, m.member)]
        spec = agent._vip_spec(m.group, m.member)
        members.append(MemberView(
            group=m.group, member=m.member, active=bool(r.active_epoch),
            seen_epoch=r.seen_epoch, active_epoch=r.active_epoch,
            healthy=agent.health.healthy(m.group, m.member),
            vip=spec.address if spec is not None else "",
            vip_present=agent.vips.configured(spec) if spec is not None else False))
    fs = getattr(agent, "failsafe", None)
    now = time.monotonic()
    return AgentView(node=agent.cfg.node, now=now, lease_deadline=deadline,
                     acks_by=acks, members=tuple(members),
                     failsafe_engaged=tuple(sorted(fs.engaged())) if fs else (),
                     failsafe_engagements=dict(fs.engagements) if fs else {},
                     failsafe_answers=dict(fs.answered) if fs else {},
                     failsafe_grants=fs.grantors(now) if fs else {},
                     failsafe_deadline=float(getattr(agent, "_fs_deadline", 0.0)))


class AgentCollector(Collector):
    def __init__(self, agent: Any) -> None:
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        yield from view_metrics(snapshot(self._agent))


class AgentMetrics:
    """One agent's registry; `vip_claim` is observed by agents/main.py on promotion."""

    def __init__(self, agent: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.vip_claim = Histogram(
            "vnfha_agent_vip_claim_seconds", "From the agent taking the active role (the "
            "assignment arrived, lease valid) to its VIP configured in the kernel",
            buckets=CLAIM_BUCKETS, registry=self.registry)
        self.registry.register(AgentCollector(agent))


def live(agent: Any) -> tuple[bool, str]:
    """Alive while the session's threads run (it is what keeps the lease)."""
    threads = getattr(agent.session, "_threads", None)
    if threads is not None and not all(t.is_alive() for t in threads):
        return False, "a session thread stopped"
    return True, "running"


def serve_agent(agent: Any) -> Any:
    """Start the metrics listener of a started agent; returns the MetricsServer."""
    from vnfha.coordinator.metrics_http import MetricsServer

    server = MetricsServer(agent.cfg.metrics, agent.metrics.registry,
                           live=lambda: live(agent), ready=lambda: ready(snapshot(agent)))
    server.start()
    return server
