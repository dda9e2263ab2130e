"""What this coordinator has heard from agents: keepalive arrival times and reports.

Every coordinator keeps one of these, leader or not, because every coordinator
acknowledges keepalives (quorum leases, docs/design.md). An acknowledgement is
a promise: "I will report your node as heard at the arrival time of this
keepalive to any leader that asks". The table keeps that promise across
leadership changes; across a restart it keeps it conservatively by counting
every node as heard at the moment the process started.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from vnfha.coordinator.decide import MemberReport, NodeSeen, Observations
from vnfha.coordinator.model import Health


@dataclass(frozen=True)
class Report:
    group: str
    member: str
    health: Health
    seen_epoch: int
    active_epoch: int


class LeaseTable:
    def __init__(self, started_at: float, ttl: float | None = None) -> None:
        self._started_at = started_at
        # A healthy run survives only keepalives less than one TTL apart: a node
        # that was silent longer (crashed, cut off) starts a new run when it is
        # heard again, so the stabilization time is measured from then. None: no
        # such break (the table's behaviour before active-active pools).
        self._ttl = ttl
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        # When we first heard *of* a node we never heard *from*: a node that has just
        # registered is not silent yet, it gets one TTL like everyone else.
        self._first_asked: dict[str, float] = {}
        self._reports: dict[str, dict[tuple[str, str], MemberReport]] = {}

    @property
    def started_at(self) -> float:
        return self._started_at

    def serving_from(self, now: float) -> None:
        """Count every node as heard when agents can first reach us (the gRPC server
        is up), not when the process started: a restart is not a silence."""
        with self._lock:
            self._started_at = max(self._started_at, now)

    def record(self, node: str, reports: list[Report], now: float) -> bool:
        """Note an acknowledged keepalive that arrived at `now` (monotonic).

        Returns True if anything a decision depends on changed (first keepalive,
        health, seen or held epoch), so the leader can look again at once."""
        with self._lock:
            first = node not in self._last
            gap = now - self._last.get(node, now)
            self._last[node] = max(now, self._last.get(node, now))
            old = self._reports.get(node, {})
            new: dict[tuple[str, str], MemberReport] = {}
            for r in reports:
                key = (r.group, r.member)
                prev = old.get(key)
                if r.health == Health.HEALTHY:
                    since = (prev.healthy_since if prev is not None
                             and prev.health == Health.HEALTHY
                             and prev.healthy_since is not None
                             and (self._ttl is None or gap <= self._ttl) else now)
                else:
                    since = None
                new[key] = MemberReport(health=r.health, seen_epoch=r.seen_epoch,
                                        active_epoch=r.active_epoch, healthy_since=since)
            self._reports[node] = new
        if first or old.keys() != new.keys():
            return True
        return any((o.health, o.seen_epoch, o.active_epoch)
                   != (new[k].health, new[k].seen_epoch, new[k].active_epoch)
                   for k, o in old.items())

    def _age(self, node: str, now: float) -> float:
        last = self._last.get(node)
        if last is None:
            last = max(self._started_at, self._first_asked.setdefault(node, now))
        return now - last

    def age(self, node: str, now: float) -> float:
        """Seconds since the last acknowledged keepalive; for a node never heard from,
        since we started serving or first heard of it, whichever is later."""
        with self._lock:
            return self._age(node, now)

    def ages(self, nodes: list[str], now: float) -> dict[str, float]:
        with self._lock:
            return {n: self._age(n, now) for n in nodes}

    def next_expiry(self, ttl: float, now: float) -> float | None:
        """The earliest time a node heard within the last TTL would become stale, so
        the leader can look exactly then instead of on its next tick."""
        with self._lock:
            due = [t + ttl for t in self._last.values() if t + ttl > now]
        return min(due) if due else None

    def last_seen(self, node: str) -> float | None:
        with self._lock:
            return self._last.get(node)


    def observations(self, leader_since: float,
                     quorum_expired: frozenset[str] | None) -> Observations:
        with self._lock:
            nodes = {n: NodeSeen(last_keepalive=t, members=dict(self._reports.get(n, {})))
                     for n, t in self._last.items()}
        return Observations(leader_since=leader_since, nodes=nodes,
                            quorum_expired=quorum_expired)
