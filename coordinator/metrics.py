"""Coordinator metrics (docs/metrics.md): what Prometheus sees of one coordinator.

Most values are read from the committed state when Prometheus scrapes
(`StateCollector` over `store.state()`, `store.describe()` and the lease table), so
the paths that matter for failover speed pay nothing for them. The few things that
exist only as moments (a keepalive answered, a decision committed, a failover
finished) are counted where they happen, at the cost of a counter or histogram
update:

* keepalive acknowledgement latency: the time from a keepalive's arrival to its
  answer being built, inside this coordinator's handler. Network and queueing time
  on either side are not visible here (the agent's lease metrics show the effect).
* failovers and switchovers: counted by the leader's controller when the promotion
  that ends them commits (`FailoverMeter`, fed by two calls from control.py). Only
  the leader counts, so `sum()` over coordinators is the cluster's number.

`/readyz` is `ready()`: a leader is known and the store is reachable, the same facts
the gRPC health service reports. A caller (server.py) may pass its own check, so the
gRPC health branch's rules can be used for both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vnfha.coordinator.model import ClusterState, Event, GroupMode, Health
from vnfha.coordinator.store.base import Store

#: Roles a member can be in, as the `role` label of vnfha_member_role (a state set:
#: every role is exported, 1 for the current one, so a series never goes stale).
ROLES = ("active", "standby", "releasing")
HEALTHS = tuple(h.value for h in Health)
#: Causes of a promotion (see `demote_cause`); failovers and switchovers split them.
FAILOVER_CAUSES = ("lost", "unhealthy")
SWITCHOVER_CAUSES = ("switchover", "maintenance", "drain")

# Handler times are sub-millisecond; commits are milliseconds; failovers, seconds.
ACK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FAILOVER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# --------------------------------------------------------------------------- readiness


def ready(store: Store) -> tuple[bool, str]:
    """Ready when this coordinator can serve consistent reads and take writes. One rule
    for /readyz and gRPC health (server.py): `Store.not_ready_reason` (store reachable and
    able to persist, a majority of Raft voters in contact, a leader known, reads not
    gated after a restart)."""
    reason = store.not_ready_reason()
    if reason is not None:
        return False, reason
    return True, f"leader {store.leader_id()}"


# --------------------------------------------------------------------------- state collector


def member_role(state: ClusterState, group: str, member: str) -> str:
    g = state.groups[group]
    if g.active == member:
        return "active"
    if g.releasing == member:
        return "releasing"
    return "standby"


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def state_metrics(state: ClusterState, lease_ages: dict[str, float]) -> list[Metric]:
    """Every gauge derived from one committed state and this coordinator's lease ages.
    Pure: unit tests feed it fixed states."""
    role = _gauge("vnfha_member_role", "1 for the member's current role (active, standby, "
                  "releasing: demoted, not yet let go), 0 for the others",
                  ("group", "member", "node", "role"))
    active = _gauge("vnfha_member_active", "1 while the member holds its group's active role "
                    "(active-standby) or is in the pool (active-active)",
                    ("group", "member", "node"))
    health = _gauge("vnfha_member_health", "1 for the member's committed health, 0 for the "
                    "others", ("group", "member", "node", "health"))
    quarantined = _gauge("vnfha_member_quarantined", "1 while the member failed and is not "
                         "yet stable again (not eligible)", ("group", "member", "node"))
    epoch = _gauge("vnfha_group_epoch", "The group's epoch (fencing token; +1 per change of "
                   "its active member)", ("group",))
    has_active = _gauge("vnfha_group_has_active", "1 while an active-standby group has an "
                        "active member", ("group",))
    pool_version = _gauge("vnfha_pool_version", "Active-active: version of the group's pool "
                          "(+1 per change)", ("group",))
    pool_size = _gauge("vnfha_pool_members", "Active-active: members in service", ("group",))
    lb_applied = _gauge("vnfha_lb_pool_version_applied", "Highest pool version the load "
                        "balancer on `lb` reported applied", ("group", "lb"))
    recovery = _gauge("vnfha_recovery_attempts", "Attempts of the member's latest recovery "
                      "request, labelled with where it stands", ("group", "member", "status"))
    lease_age = _gauge("vnfha_node_lease_age_seconds", "Seconds since this coordinator last "
                       "acknowledged a keepalive from the node", ("node",))
    maintenance = _gauge("vnfha_node_maintenance", "1 while the node is in maintenance",
                         ("node",))
    ckpt_version = _gauge("vnfha_checkpoint_version", "Writes accepted into the group's "
                          "checkpoint (state-sync.md)", ("group",))
    ckpt_epoch = _gauge("vnfha_checkpoint_epoch", "Epoch of the active that wrote the group's "
                        "checkpoint; below vnfha_group_epoch until the new active writes one",
                        ("group",))
    queue_next = _gauge("vnfha_queue_next_offset", "Offset the group's queue gives its next "
                        "message", ("group",))
    queue_bytes = _gauge("vnfha_queue_retained_bytes", "Bytes of messages the group's queue "
                         "retains", ("group",))
    revision = _gauge("vnfha_state_revision", "Commands applied to this coordinator's state")
    revision.add_metric([], state.revision)
    for g in sorted(state.groups.values(), key=lambda g: g.name):
        epoch.add_metric([g.name], g.epoch)
        aa = g.mode == GroupMode.ACTIVE_ACTIVE
        if aa:
            pool_version.add_metric([g.name], g.pool_version)
            pool_size.add_metric([g.name], len(g.pool))
            for lb, version in sorted(g.lb_applied.items()):
                lb_applied.add_metric([g.name, lb], version)
        else:
            has_active.add_metric([g.name], 1 if g.active else 0)
        for m in sorted(g.members.values(), key=lambda m: m.name):
            current = member_role(state, g.name, m.name)
            for r in ROLES:
                role.add_metric([g.name, m.name, m.node, r], 1 if r == current else 0)
            on = (m.name in g.pool) if aa else (g.active == m.name)
            active.add_metric([g.name, m.name, m.node], 1 if on else 0)
            for h in HEALTHS:
                health.add_metric([g.name, m.name, m.node, h], 1 if m.health.value == h else 0)
            quarantined.add_metric([g.name, m.name, m.node], 1 if m.quarantined else 0)
        for r in sorted(g.recoveries.values(), key=lambda r: r.member):
            recovery.add_metric([g.name, r.member, r.status], r.attempts)
    for gname, c in sorted(state.checkpoints.items()):
        ckpt_version.add_metric([gname], c.version)
        ckpt_epoch.add_metric([gname], c.epoch)
    for gname, q in sorted(state.queues.items()):
        queue_next.add_metric([gname], q.next_offset)
        queue_bytes.add_metric([gname], q.size)
    for n in sorted(state.nodes.values(), key=lambda n: n.name):
        maintenance.add_metric([n.name], 1 if n.maintenance else 0)
        if n.name in lease_ages:
            lease_age.add_metric([n.name], lease_ages[n.name])
    return [role, active, health, quarantined, epoch, has_active, pool_version, pool_size,
            lb_applied, recovery, lease_age, maintenance, ckpt_version, ckpt_epoch, queue_next,
            queue_bytes, revision]


#: describe() keys of the Raft and etcd stores -> (metric, help)
_DESCRIBE = {
    "term": ("vnfha_raft_term", "Raft term this coordinator is in"),
    "commit_index": ("vnfha_raft_commit_index", "Highest Raft log index known committed"),
    "last_applied": ("vnfha_raft_applied_index", "Highest Raft log index applied here"),
    "log_size": ("vnfha_raft_log_entries", "Entries in the local Raft journal (since the "
                 "last compaction)"),
    "quorum_contact_age": ("vnfha_raft_quorum_contact_age_seconds", "Leader only: how old "
                           "its proof that no other leader exists is"),
    "etcd_revision": ("vnfha_etcd_revision", "etcd revision of this coordinator's mirror"),
}


def store_metrics(store: Store, node_id: str, ready_check: Callable[[], tuple[bool, str]]
                  ) -> list[Metric]:
    """Leadership and backend facts, read at scrape time."""
    leader = store.leader_id()
    out = []
    g = _gauge("vnfha_store_leader", "1 while this coordinator leads (runs failure detection)")
    g.add_metric([], 1 if store.is_leader() else 0)
    out.append(g)
    g = _gauge("vnfha_store_leader_known", "1 while a leader is known to this coordinator")
    g.add_metric([], 0 if leader is None else 1)
    out.append(g)
    g = _gauge("vnfha_store_leader_info", "1, labelled with the leader this coordinator "
               "follows", ("leader",))
    if leader is not None:
        g.add_metric([leader], 1)
    out.append(g)
    g = _gauge("vnfha_store_reachable", "1 while this coordinator is in touch with its store")
    g.add_metric([], 1 if store.store_reachable() else 0)
    out.append(g)
    contact = getattr(store, "voters_in_contact", None)
    if contact is not None:
        g = _gauge("vnfha_raft_voters_in_contact", "Raft voters this coordinator is "
                   "connected to, itself included")
        g.add_metric([], contact()[0])
        out.append(g)
    ok, _why = ready_check()
    g = _gauge("vnfha_coordinator_ready", "1 when /readyz answers ok")
    g.add_metric([], 1 if ok else 0)
    out.append(g)
    facts = store.describe()
    g = _gauge("vnfha_coordinator_info", "1, labelled with this coordinator's id and backend",
               ("node", "backend"))
    g.add_metric([node_id, str(facts.get("backend", ""))], 1)
    out.append(g)
    for key, (name, doc) in _DESCRIBE.items():
        value = facts.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            g = _gauge(name, doc)
            g.add_metric([], value)
            out.append(g)
    return out


class StateCollector(Collector):
    """Reads the committed state on every scrape (never on a hot path)."""

    def __init__(self, store: Store, lease_ages: Callable[[list[str]], dict[str, float]],
                 node_id: str, ready_check: Callable[[], tuple[bool, str]]) -> None:
        self._store = store
        self._lease_ages = lease_ages
        self._node_id = node_id
        self._ready = ready_check

    def collect(self) -> Iterator[Metric]:
        state = self._store.state()
        ages = self._lease_ages(sorted(state.nodes))
        yield from state_metrics(state, ages)
        yield from store_metrics(self._store, self._node_id, self._ready)


class OverloadCollector(Collector):
    """The event loop's lateness and what overload shed (coordinator/overload.py), read
    at scrape time from the meter and the keepalive servicer's counters."""

    def __init__(self, coordinator: Any) -> None:
        self._c = coordinator

    def collect(self) -> Iterator[Metric]:
        meter, api, now = self._c.overload, self._c.agent_api, time.monotonic()
        g = _gauge("vnfha_coordinator_overloaded", "1 while this coordinator's event loop "
                   "lags past its threshold (no vote on expiry, new nodes refused)")
        g.add_metric([], 1 if meter.overloaded(now) else 0)
        yield g
        g = _gauge("vnfha_event_loop_lag_seconds", "How late this coordinator's gRPC "
                   "event loop runs its heartbeat now")
        g.add_metric([], meter.lag(now))
        yield g
        g = _gauge("vnfha_event_loop_stalled_seconds", "Total time the event loop could "
                   "not run; not counted into any node's silence")
        g.add_metric([], meter.stalled(now))
        yield g
        c = CounterMetricFamily("vnfha_keepalives_superseded", "Keepalives dropped "
                                "unanswered because a newer one of the same node arrived")
        c.add_metric([], api.superseded)
        yield c
        c = CounterMetricFamily("vnfha_registrations_refused_overload", "New node "
                                "registrations refused (RESOURCE_EXHAUSTED) while overloaded")
        c.add_metric([], api.registrations_refused)
        yield c

def fastpath_metrics(intake: Any) -> Iterator[Metric]:
    """The keepalive fast path's counters (coordinator/fastpath.py FastPathIntake):
    datagrams answered, datagrams dropped by reason, open sessions."""
    c = CounterMetricFamily("vnfha_fastpath_datagrams", "Keepalive datagrams received on "
                            "the fast path, by what became of them", labels=["result"])
    c.add_metric(["answered"], intake.answered)
    for reason, count in sorted(intake.dropped.items()):
        c.add_metric([reason], count)
    yield c
    g = GaugeMetricFamily("vnfha_fastpath_sessions", "Fast-path session keys this "
                          "coordinator holds (one per node that opened one)")
    g.add_metric([], intake.sessions())
    yield g
    per_answer = intake.answer_cpu()
    if per_answer is not None:
        g = GaugeMetricFamily("vnfha_fastpath_answer_cpu_seconds", "Mean intake-thread "
                              "CPU of one answered keepalive datagram while overloaded "
                              "(sampled)")
        g.add_metric([], per_answer)
        yield g
    cpu = intake.cpu_seconds()
    if cpu is not None:
        c = CounterMetricFamily("vnfha_fastpath_intake_cpu_seconds", "CPU time of the "
                                "fast path's intake thread")
        c.add_metric([], cpu)
        yield c


class FastPathCollector(Collector):
    def __init__(self, intake: Any) -> None:
        self._intake = intake

    def collect(self) -> Iterator[Metric]:
        yield from fastpath_metrics(self._intake)


# --------------------------------------------------------------------------- failovers


def demote_cause(reason: str) -> str:
    """Why an active was demoted, from the reason decide.py / the switchover command
    wrote into the command (and its `demoted` event)."""
    if "switchover" in reason:
        return "switchover"
    if "maintenance" in reason:
        return "maintenance"
    if reason.startswith("node ") and " stopping" in reason:  # drain_node: its agent stopped
        return "drain"
    if "lost" in reason or "lease expired" in reason:
        return "lost"
    if "unhealthy" in reason:
        return "unhealthy"
    return "other"


def last_role_event(events: Iterable[Event], group: str) -> Event | None:
    """The group's latest promoted/demoted event (events are few: at most MAX_EVENTS)."""
    for e in reversed(tuple(events)):
        if e.group == group and e.kind in ("promoted", "demoted"):
            return e
    return None


@dataclass
class _Incident:
    cause: str
    detected: float  # monotonic: when the leader saw the problem (or the demotion)


class FailoverMeter:
    """Counts failovers/switchovers and their durations on the leader. Fed by the
    controller: `round` once per decide round, `committed` per applied command.

    * detection: from the last keepalive this leader heard from the failed active's
      node to the round in which a majority of coordinators confirmed it lost;
    * commit: from that detection (or, for an unhealthy active, a maintenance or a
      planned switchover, from the demotion) to the commit of the promotion.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._lost_at: dict[str, float] = {}  # node -> when a majority confirmed it lost
        self._incidents: dict[str, _Incident] = {}  # group -> open incident
        self.failovers = Counter("vnfha_failovers_total", "Unplanned changes of the active "
                                 "member, by cause (lost: lease expired; unhealthy)",
                                 ("group", "cause"), registry=registry)
        self.switchovers = Counter("vnfha_switchovers_total", "Planned changes of the active "
                                   "member, by cause (switchover command; maintenance)",
                                   ("group", "cause"), registry=registry)
        self.elections = Counter("vnfha_elections_total", "Promotions in a group that had no "
                                 "active member for another reason (first start, no standby "
                                 "earlier)", ("group",), registry=registry)
        self.detection = Histogram("vnfha_failover_detection_seconds", "Last keepalive heard "
                                   "from the active's node to a majority confirming it lost",
                                   ("cause",), buckets=FAILOVER_BUCKETS, registry=registry)
        self.commit = Histogram("vnfha_failover_commit_seconds", "Detection (lost) or "
                                "demotion (other causes) to the promotion committed",
                                ("cause",), buckets=FAILOVER_BUCKETS, registry=registry)

    def round(self, state: ClusterState, lost: Iterable[str], last_heard: dict[str, float],
              now: float) -> None:
        """One decide round: `lost` are the nodes a majority confirmed lost, `last_heard`
        when this coordinator last acknowledged them (monotonic)."""
        with self._lock:
            lost = set(lost)
            for node in lost:
                if node not in self._lost_at:
                    self._lost_at[node] = now
                    heard = last_heard.get(node)
                    if heard is not None and now >= heard:
                        self.detection.labels("lost").observe(now - heard)
            for node in [n for n in self._lost_at if n not in lost]:
                del self._lost_at[node]  # heard again
            for g in state.groups.values():
                if g.releasing is not None and g.name not in self._incidents:
                    # Demoted by someone else (a switchover command on any coordinator,
                    # or a leader before us): it starts when we first see it.
                    ev = last_role_event(state.events, g.name)
                    cause = demote_cause(ev.reason) if ev and ev.kind == "demoted" else "other"
                    self._incidents[g.name] = _Incident(cause, now)

    def committed(self, cmd: dict[str, Any], state_before: ClusterState, now: float) -> None:
        """A command of ours was applied (`state_before`: the state decide() saw)."""
        op = cmd.get("op")
        group = str(cmd.get("group", ""))
        with self._lock:
            if op == "demote":
                self._incidents[group] = _Incident(demote_cause(str(cmd.get("reason", ""))),
                                                   now)
                return
            if op != "promote":
                return
            incident = self._incidents.pop(group, None)
            replaced = cmd.get("replace")
            if replaced:
                g = state_before.groups.get(group)
                old = g.members.get(str(replaced)) if g is not None else None
                start = self._lost_at.get(old.node) if old is not None else None
                self._count("lost", group, start, now)
                return
            if incident is None:
                ev = last_role_event(state_before.events, group)
                if ev is None or ev.kind != "demoted":
                    self.elections.labels(group).inc()
                    return
                incident = _Incident(demote_cause(ev.reason), now)  # no start time known
                self._count(incident.cause, group, None, now)
                return
            self._count(incident.cause, group, incident.detected, now)

    def _count(self, cause: str, group: str, start: float | None, now: float) -> None:
        if cause in SWITCHOVER_CAUSES:
            self.switchovers.labels(group, cause).inc()
        elif cause in FAILOVER_CAUSES:
            self.failovers.labels(group, cause).inc()
        else:
            self.elections.labels(group).inc()
            return
        if start is not None and now >= start:
            self.commit.labels(cause).observe(now - start)


# --------------------------------------------------------------------------- the bundle


class CoordinatorMetrics:
    """One coordinator's registry: the scrape-time collector plus the few live metrics.
    Each coordinator has its own registry (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.keepalive_ack = Histogram(
            "vnfha_keepalive_ack_seconds", "Time from a keepalive's arrival to its answer, "
            "inside this coordinator's handler (network time not included)",
            buckets=ACK_BUCKETS, registry=self.registry)
        self.commit = Histogram(
            "vnfha_store_commit_seconds", "Time to commit one of the leader's decisions "
            "through the store (submit to result)", buckets=COMMIT_BUCKETS,
            registry=self.registry)
        self.failovers = FailoverMeter(self.registry)

    def watch(self, store: Store, lease_ages: Callable[[list[str]], dict[str, float]],
              node_id: str, ready_check: Callable[[], tuple[bool, str]]) -> None:
        self.registry.register(StateCollector(store, lease_ages, node_id, ready_check))


def lease_ages_fn(leases: Any) -> Callable[[list[str]], dict[str, float]]:
    """Lease ages now, from a LeaseTable (its `ages` takes the node names and a time)."""
    return lambda nodes: leases.ages(nodes, time.monotonic())


def live(coordinator: Any) -> tuple[bool, str]:
    """Alive while the gRPC event loop and the controller threads run."""
    loop_thread = getattr(coordinator, "_loop_thread", None)
    if loop_thread is None or not loop_thread.is_alive():
        return False, "gRPC event loop not running"
    if not coordinator.controller.running:
        return False, "controller not running"
    return True, "running"


def serve_coordinator(coordinator: Any) -> Any:
    """Start the metrics listener of a started `server.Coordinator`; returns the
    MetricsServer. Readiness is `coordinator.readiness` when set (the gRPC health
    rules), else `ready(store)`."""
    from vnfha.coordinator.metrics_http import MetricsServer

    metrics = CoordinatorMetrics()

    def ready_check() -> tuple[bool, str]:
        custom = getattr(coordinator, "readiness", None)
        ok, why = custom() if custom is not None else ready(coordinator.store)
        meter = getattr(coordinator, "overload", None)
        busy = None if meter is None else meter.reason(time.monotonic())
        return (False, busy) if ok and busy is not None else (ok, why)

    metrics.watch(coordinator.store, lease_ages_fn(coordinator.leases),
                  coordinator.cfg.node_id, ready_check)
    if getattr(coordinator, "overload", None) is not None:
        metrics.registry.register(OverloadCollector(coordinator))
    coordinator.controller.metrics = metrics
    coordinator.agent_api.on_ack_time = metrics.keepalive_ack.observe
    if getattr(coordinator, "fastpath", None) is not None:
        metrics.registry.register(FastPathCollector(coordinator.fastpath))
    coordinator.metrics = metrics
    server = MetricsServer(coordinator.cfg.metrics, metrics.registry,
                           live=lambda: live(coordinator), ready=ready_check)
    server.start()
    return server
