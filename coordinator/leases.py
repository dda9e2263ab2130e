"""What this coordinator has heard from agents: keepalive arrival times and reports.

Every coordinator keeps one of these, leader or not, because every coordinator
acknowledges keepalives (quorum leases, docs/design.md). An acknowledgement is
a promise: "I will report your node as heard at the arrival time of this
keepalive to any leader that asks". The table keeps that promise across
leadership changes; across a restart it keeps it conservatively by counting
every node as heard at the moment the process started.

Time this coordinator's own event loop could not run (`stall`, coordinator/overload.py)
is not counted into any node's silence: a keepalive that waited unread in our socket
while we lagged was sent in time, and the lag is ours, not the node's. Counting less
silence only ever makes an expiry later, so it cannot break the lease argument.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field

from vnfha.coordinator.model import Health
from vnfha.coordinator.observations import MemberReport, NodeSeen, Observations


@dataclass(frozen=True)
class Report:
    group: str
    member: str
    health: Health
    seen_epoch: int
    active_epoch: int
    #: the agent holds the group's VIP for this member (keepalive MemberReport.vip_held);
    #: read only by a switchover waiting for its new active, never by decide
    vip_held: bool = False
    # The agent's lease generation and whether it held a lease when it sent the round
    # (one pair per keepalive, repeated per member); 0: an agent from before generations.
    generation: int = 0
    leased: bool = False


@dataclass(frozen=True)
class PeerView:
    """One peer coordinator's answer to a lease-age query."""

    ages: Mapping[str, float] = field(default_factory=dict)
    # The peer's own event loop lags (overload.py): its ages say how late it reads,
    # not how long a node was silent, so it vouches only for long silences.
    overloaded: bool = False


#: How long a node that registered while this coordinator serves may take to be heard
#: for the first time before its silence counts (never less than the TTL). What delays a
#: new agent's first keepalive is connection set-up, not a lapsed lease: gRPC channels
#: and TLS handshakes to every coordinator, the fast-path key, retried with back-offs of
#: up to 2 s (overloaded) and 5 s (re-registration), and a burst of agents registering at
#: once (a site powering up) queues all of that. A node never heard from holds no lease,
#: so waiting longer is safe; dating its silence from its registration with only one TTL
#: declared 135-160 live agents of one burst lost (issue 14).
FIRST_KEEPALIVE_GRACE = 5.0

#: An overloaded coordinator's silence figures count only beyond this many TTLs: its
#: lag is discounted where it was measured (the stall clock), but a busy machine must
#: still fail a crashed node over, a little later, rather than never.
OVERLOADED_EXPIRY_TTLS = 4


def expiry_votes(stale: list[str], ttl: float, own_overloaded: bool,
                 answers: Mapping[str, PeerView | None],
                 own_ages: Mapping[str, float] | None = None) -> dict[str, int]:
    """Per stale node, how many coordinators vouch that they have not heard it for more
    than a TTL: the leader itself (it found them stale), plus every peer that answered
    and reports an age above the TTL. A voter whose own event loop is overloaded
    vouches only for an age above OVERLOADED_EXPIRY_TTLS TTLs (`own_ages`: the leader's
    ages; without them an overloaded leader does not vote). A peer that did not answer
    (None) does not vote."""
    slow = OVERLOADED_EXPIRY_TTLS * ttl
    votes = {n: 0 if own_overloaded and (own_ages is None or own_ages.get(n, 0.0) <= slow)
             else 1 for n in stale}
    for view in answers.values():
        if view is None:
            continue
        limit = slow if view.overloaded else ttl
        for node in stale:
            if view.ages.get(node, 0.0) > limit:
                votes[node] += 1
    return votes


def confirmed_expired(votes: Mapping[str, int], quorum: int) -> frozenset[str]:
    """The nodes a majority of coordinators agree are lost (the quorum-lease rule)."""
    return frozenset(n for n, v in votes.items() if v >= quorum)


class LeaseTable:
    def __init__(self, started_at: float, ttl: float | None = None,
                 known_nodes: Callable[[], Container[str]] | None = None,
                 stall: Callable[[float], float] | None = None,
                 first_keepalive_grace: float | None = None) -> None:
        self._started_at = started_at
        # A node first heard *of* after we started serving (it registered since) counts as
        # heard this much later than that, so it turns stale `first_keepalive_grace` after
        # registering rather than one TTL after (FIRST_KEEPALIVE_GRACE). None or not more
        # than the TTL: one TTL, as for everyone (unit tests, the simulator).
        self._first_extra = (0.0 if first_keepalive_grace is None or ttl is None
                             else max(0.0, first_keepalive_grace - ttl))
        # Seconds this coordinator's loop could not run, as of a time (never decreasing,
        # overload.LoopLag.stalled): subtracted from every silence. None: no such credit.
        self._stall = stall or (lambda now: 0.0)
        self._started_stall = 0.0
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
        # Per node, when its current unbroken run of keepalives began (a gap of more than
        # one TTL starts a new one): decide's failsafe rejoin grace reads it.
        self._run: dict[str, float] = {}
        # When we first heard *of* a node we never heard *from*: a node that has just
        # registered is not silent yet, it gets one TTL like everyone else.
        self._first_asked: dict[str, float] = {}
        self._reports: dict[str, dict[tuple[str, str], MemberReport]] = {}
        # The last report as the agent sent it, per node and member: what a switchover
        # waits for (the new active's agent says it serves at the promotion's epoch).
        self._raw: dict[str, dict[tuple[str, str], Report]] = {}
        # Per node, the tuple of reports last passed to `record`, kept by identity: a caller
        # that hands the very same (immutable) tuple again (AgentServicer's cache of an
        # unchanged keepalive) skips building and comparing `raw`; equal content follows.
        self._recorded: dict[str, tuple[Report, ...]] = {}
        # Per node, +1 whenever its reports change in a way decide reads (health, seen
        # and held epochs, the start of a healthy run): the controller re-decides only
        # the groups of nodes whose version moved (decide_dirty.py).
        self._versions: dict[str, int] = {}
        # The stall clock's reading when each node's `_last` (or `_first_asked`) was
        # noted: the silence since then is discounted by how much it grew meanwhile.
        self._stall_at: dict[str, float] = {}
        self._first_stall: dict[str, float] = {}

    @property
    def started_at(self) -> float:
        return self._started_at

    def serving_from(self, now: float) -> None:
        """Count every node as heard when agents can first reach us (the gRPC server
        is up), not when the process started: a restart is not a silence."""
        stalled = self._stall(now)
        with self._lock:
            if now > self._started_at:
                self._started_at, self._started_stall = now, stalled

    def record(self, node: str, reports: Sequence[Report], now: float) -> bool:
        """Note an acknowledged keepalive that arrived at `now` (monotonic).

        Returns True if anything a decision depends on changed (first keepalive,
        health, seen or held epoch), so the leader can look again at once. Passing the
        very tuple passed last time for `node` costs least (no comparison)."""
        stalled = self._stall(now)
        with self._lock:
            # The tuple recorded last time, again: its reports equal the kept ones (a
            # tuple of frozen reports cannot have changed), so `raw` need not be built.
            same = isinstance(reports, tuple) and self._recorded.get(node) is reports
            raw = None if same else {(r.group, r.member): r for r in reports}
            first = node not in self._last
            gap = now - self._last.get(node, now)
            if (not first and (self._ttl is None or gap <= self._ttl)
                    and (same or self._raw.get(node) == raw)):
                # The same reports as last time, within a healthy run (nearly every
                # keepalive): the full path below would rebuild equal reports, keep
                # every healthy_since and change nothing; only the time moves.
                if now >= self._last[node]:
                    self._last[node] = now
                    self._stall_at[node] = stalled
                self._remember(node, reports)
                return False
            if raw is None:
                raw = {(r.group, r.member): r for r in reports}
            self._remember(node, reports)
            if first or (self._ttl is not None and gap > self._ttl):
                self._run[node] = now
            if now >= self._last.get(node, now):
                self._last[node] = now
                self._stall_at[node] = stalled
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
            self._raw[node] = raw
            changed = first or old.keys() != new.keys() or any(
                (o.health, o.seen_epoch, o.active_epoch, o.generation, o.leased)
                != (new[k].health, new[k].seen_epoch, new[k].active_epoch, new[k].generation,
                    new[k].leased)
                for k, o in old.items())
            if changed or any(o.healthy_since != new[k].healthy_since for k, o in old.items()):
                self._versions[node] = self._versions.get(node, 0) + 1
        return changed

    def _remember(self, node: str, reports: Sequence[Report]) -> None:
        """Keep `reports` for `record`'s identity check if it is a tuple (immutable);
        anything else may be changed by its owner later, so it is never trusted."""
        if isinstance(reports, tuple):
            self._recorded[node] = reports
        else:
            self._recorded.pop(node, None)

    def _heard(self, node: str, stalled: float) -> float | None:
        """When `node` was last heard, moved later by the stall since then (our own lag
        is not its silence); None if never heard from."""
        last = self._last.get(node)
        return None if last is None else last + (stalled - self._stall_at.get(node, 0.0))

    def _age(self, node: str, now: float, stalled: float, known: bool = True) -> float:
        last = self._heard(node, stalled)
        if last is None:
            first = self._first_asked.get(node)
            if first is None:
                # Never heard of: as young as can be (the safe side: a small age never
                # makes a leader give up on a node early), remembered only if registered.
                first = now
                if known:
                    self._first_asked[node] = now
                    self._first_stall[node] = stalled
            if first >= self._started_at:
                # Registered while we serve: it gets its first-keepalive grace. (A node
                # known from before we started is dated from then, below: it was running,
                # and a node that died while we were down must fail over promptly.)
                last = (first + self._first_extra
                        + stalled - self._first_stall.get(node, stalled))
            else:
                last = self._started_at + stalled - self._started_stall
        return max(0.0, now - last)

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
        stalled = self._stall(now)
        with self._lock:
            return self._age(node, now, stalled, known is None or node in known)

    def ages(self, nodes: list[str], now: float) -> dict[str, float]:
        known = self._known()  # read outside our lock: it asks the store
        stalled = self._stall(now)
        with self._lock:
            return {n: self._age(n, now, stalled, known is None or n in known)
                    for n in nodes}

    def next_expiry(self, ttl: float, now: float) -> float | None:
        """The earliest time a node heard within the last TTL would become stale, so
        the leader can look exactly then instead of on its next tick."""
        stalled = self._stall(now)
        with self._lock:
            heard = (self._heard(n, stalled) for n in self._last)
            due = [t + ttl for t in heard if t is not None and t + ttl > now]
        return min(due) if due else None

    def last_seen(self, node: str) -> float | None:
        with self._lock:
            return self._last.get(node)

    def report(self, node: str, group: str, member: str) -> Report | None:
        """The member's part of the node's last acknowledged keepalive, if any."""
        with self._lock:
            return self._raw.get(node, {}).get((group, member))

    def observations(self, leader_since: float,
                     quorum_expired: frozenset[str] | None,
                     now: float | None = None) -> Observations:
        """The leader's inputs; with `now`, each node's last keepalive is moved later by
        the stall since it arrived (so `Observations.fresh` agrees with `age`)."""
        stalled = None if now is None else self._stall(now)
        with self._lock:
            nodes = {n: NodeSeen(last_keepalive=t if stalled is None
                                 else t + stalled - self._stall_at.get(n, 0.0),
                                 members=dict(self._reports.get(n, {})),
                                 heard_since=self._run.get(n))
                     for n, t in self._last.items()}
            versions = dict(self._versions)
        return Observations(leader_since=leader_since, nodes=nodes,
                            quorum_expired=quorum_expired, versions=versions)
