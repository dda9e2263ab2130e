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
from collections.abc import Callable, Container
from dataclasses import dataclass

from vnfha.coordinator.model import Health
from vnfha.coordinator.observations import MemberReport, NodeSeen, Observations


@dataclass(frozen=True)
class Report:
    group: str
    member: str
    health: Health
    seen_epoch: int
    active_epoch: int
    # The agent's lease generation and whether it held a lease when it sent the round
    # (one pair per keepalive, repeated per member); 0: an agent from before generations.
    generation: int = 0
    leased: bool = False


class LeaseTable:
    def __init__(self, started_at: float, ttl: float | None = None,
                 known_nodes: Callable[[], Container[str]] | None = None) -> None:
        self._started_at = started_at
        # The registered nodes (the store's applied state). Only they get a "first
        # asked" entry: anyone may ask about any name (PeerService), and an entry per
        # invented name was memory that was never freed. None: every name (unit tests).
        self._known_nodes = known_nodes
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
        # Per node, +1 whenever its reports change in a way decide reads (health, seen
        # and held epochs, the start of a healthy run): the controller re-decides only
        # the groups of nodes whose version moved (decide_dirty.py).
        self._versions: dict[str, int] = {}

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
                                        active_epoch=r.active_epoch, healthy_since=since,
                                        generation=r.generation, leased=r.leased)
            self._reports[node] = new
            changed = first or old.keys() != new.keys() or any(
                (o.health, o.seen_epoch, o.active_epoch, o.generation, o.leased)
                != (new[k].health, new[k].seen_epoch, new[k].active_epoch, new[k].generation,
                    new[k].leased)
                for k, o in old.items())
            if changed or any(o.healthy_since != new[k].healthy_since for k, o in old.items()):
                self._versions[node] = self._versions.get(node, 0) + 1
        return changed

    def _age(self, node: str, now: float, known: bool = True) -> float:
        last = self._last.get(node)
        if last is None:
            first = self._first_asked.get(node)
            if first is None:
                # Never heard of: as young as can be (the safe side: a small age never
                # makes a leader give up on a node early), remembered only if registered.
                first = now
                if known:
                    self._first_asked[node] = now
            last = max(self._started_at, first)
        return now - last

    def _known(self) -> Container[str] | None:
        return None if self._known_nodes is None else self._known_nodes()

    def tracked(self) -> int:
        """How many nodes the table holds anything for (for tests and status)."""
        with self._lock:
            return len(self._last.keys() | self._first_asked.keys() | self._reports.keys())

    def age(self, node: str, now: float) -> float:
        """Seconds since the last acknowledged keepalive; for a node never heard from,
        since we started serving or first heard of it, whichever is later."""
        known = self._known()
        with self._lock:
            return self._age(node, now, known is None or node in known)

    def ages(self, nodes: list[str], now: float) -> dict[str, float]:
        known = self._known()  # read outside our lock: it asks the store
        with self._lock:
            return {n: self._age(n, now, known is None or n in known) for n in nodes}

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
            versions = dict(self._versions)
        return Observations(leader_since=leader_since, nodes=nodes,
                            quorum_expired=quorum_expired, versions=versions)
