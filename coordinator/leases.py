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

A node whose last keepalive came by the UDP fast path (`heard_fast`) has an exact
silence instead: it is counted up to the intake's read watermark (`read_through`,
fastpath.FastPathIntake.read_through: everything that arrived before it has been read
and handled), not up to now. A backlog still unread in the socket then ages nobody,
whatever the load, so such an age needs no overload discount (`vouched`); and it is
never more than now minus the last arrival, so it can only make an expiry later.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
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


#: (watermark, kernel-drop mark, per-node shed marks): LeaseTable._read_through
_Marks = tuple[float, float, Mapping[str, float]]
_NO_SHED: Mapping[str, float] = {}


def expiry_votes(stale: list[str], ttl: float, own_overloaded: bool,
                 answers: Mapping[str, PeerView | None],
                 own_ages: Mapping[str, float] | None = None) -> dict[str, int]:
    """Per stale node, how many coordinators vouch that they have not heard it for more
    than a TTL: the leader itself, plus every peer that answered and reports an age
    above the TTL. The leader votes by `own_ages` if given (LeaseTable.vouched, which
    applies the overload rule per node itself), else for every stale node. A voter
    flagged overloaded (`own_overloaded`, a peer's `PeerView.overloaded`) vouches only
    for an age above OVERLOADED_EXPIRY_TTLS TTLs (an overloaded leader without ages does
    not vote). A peer that did not answer (None) does not vote."""
    slow = OVERLOADED_EXPIRY_TTLS * ttl
    own_limit = slow if own_overloaded else ttl
    votes = {n: (int(own_ages.get(n, 0.0) > own_limit) if own_ages is not None
                 else 0 if own_overloaded else 1) for n in stale}
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
        self._version_seq = 0
        # The stall clock's reading when each node's `_last` (or `_first_asked`) was
        # noted: the silence since then is discounted by how much it grew meanwhile.
        self._stall_at: dict[str, float] = {}
        self._first_stall: dict[str, float] = {}
        # The fast path's read watermark (same clock as arrivals); None: no fast path.
        self._watermark: Callable[[], float] | None = None
        self._shed: Callable[[], tuple[float, Mapping[str, float]]] | None = None
        # A gRPC arrival at most this long after a node's last datagram is a copied round,
        # not a broken fast path (`_fast`).
        self._copy_window = ttl or 0.0
        # Per node, the arrival of its last fast-path keepalive: while it equals `_last`,
        # the node's last keepalive came by the fast path and its age is exact.
        self._fast_at: dict[str, float] = {}

    @property
    def ttl(self) -> float | None:
        return self._ttl

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
                # From one counter for all nodes: a value is never seen twice, also for a
                # node forgotten (removed) and registered again (`forget_absent`).
                self._version_seq += 1
                self._versions[node] = self._version_seq
        return changed

    def _remember(self, node: str, reports: Sequence[Report]) -> None:
        """Keep `reports` for `record`'s identity check if it is a tuple (immutable);
        anything else may be changed by its owner later, so it is never trusted."""
        if isinstance(reports, tuple):
            self._recorded[node] = reports
        else:
            self._recorded.pop(node, None)

    def read_through(self, watermark: Callable[[], float] | None,
                     shed: Callable[[], tuple[float, Mapping[str, float]]] | None = None
                     ) -> None:
        """Count fast-path silences up to `watermark()` (the intake's read watermark,
        this table's clock), not up to now; None: no fast path, every silence up to now
        less the stall. `shed()`: (a time after which no datagram the kernel dropped
        arrived, per node the latest arrival of a datagram under its key dropped
        unhandled as stale): a node whose last datagram came before one of those is not
        known to have been silent, and is aged as a gRPC one (up to now, with the
        overload rule). FastPathIntake.read_through and .shed_marks."""
        self._watermark = watermark
        self._shed = shed

    def heard_fast(self, node: str, arrived: float) -> None:
        """The keepalive of `node` that arrived at `arrived` came by the fast path (called
        after `record`, from the intake thread): the node's age is then counted up to the
        read watermark, without the event loop's stall (`_fast`). One writer (the intake
        thread) and single dict operations, which the GIL keeps whole: no lock, this
        runs for every datagram."""
        if arrived >= self._fast_at.get(node, arrived):
            self._fast_at[node] = arrived

    def read_lag(self, now: float) -> float | None:
        """How far the fast path's read watermark trails `now` (logs); None: no fast
        path."""
        w = self._read_through()
        return None if w is None else max(0.0, now - w[0])

    def _read_through(self) -> _Marks | None:
        """(watermark, kernel-drop mark, per-node shed marks), the watermark read *before*
        the lock is taken for the arrivals it is compared with: a newer watermark read
        after older arrivals could count a datagram handled in between as silence. (The
        shed marks are read after it: a newer one only makes fewer silences exact.)"""
        w = self._watermark
        if w is None:
            return None
        through = w()
        overflow, shed = (-math.inf, _NO_SHED) if self._shed is None else self._shed()
        return through, overflow, shed

    def _fast(self, node: str, w: _Marks | None) -> float | None:
        """The node's last fast-path arrival if its silence is counted exactly, else None:
        there is a watermark; no datagram that may be the node's was dropped unhandled
        since; and it has not been living on gRPC (a gRPC arrival more than a TTL after
        its last datagram: its fast path is broken, its gRPC arrivals are what count).
        A later gRPC arrival within a TTL (a round the agent copied to gRPC when an
        answer was late) still bounds the age (`_age`). Called per node per round."""
        if w is None:
            return None
        fast = self._fast_at.get(node)
        if fast is None or w[1] > fast or w[2].get(node, -math.inf) > fast:
            return None
        return fast if self._last.get(node, fast) - fast <= self._copy_window else None

    def _heard(self, node: str, stalled: float) -> float | None:
        """When `node` was last heard, moved later by the stall since then (our own lag
        is not its silence); None if never heard from."""
        last = self._last.get(node)
        return None if last is None else last + (stalled - self._stall_at.get(node, 0.0))

    def _age(self, node: str, now: float, stalled: float, known: bool = True,
             w: _Marks | None = None) -> float:
        fast = self._fast(node, w)
        if fast is not None and w is not None:
            # Exact: no datagram of it arrived after `fast` up to the watermark; and no
            # more than since its last arrival over gRPC, if that came later (safety:
            # never above now minus the last arrival acknowledged, by either path).
            age = min(w[0], now) - fast
            if self._last.get(node, fast) != fast:
                age = min(age, now - (self._heard(node, stalled) or fast))
            return max(0.0, age)
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

    def forget_absent(self, known: Container[str]) -> list[str]:
        """Drop everything held for nodes not in `known` (the registered nodes, the
        store's applied state); returns the nodes dropped. A removed node's records
        otherwise stay for the life of the process (memory that grows with VM churn),
        and a node registered again under its name would be aged from its last
        keepalive before the removal instead of getting a new node's grace.

        Safe with a `known` older than a registration: a node dropped that way is
        aged as one never heard from (young: a leader never gives up on it early),
        and its next keepalive records it again. The intake thread may re-add a
        fast-path arrival for a removed node right after; the next call drops it."""
        with self._lock:
            held = (self._last.keys() | self._first_asked.keys() | self._reports.keys()
                    | self._fast_at.keys())
            gone = sorted(n for n in held if n not in known)
            for node in gone:
                for table in (self._last, self._run, self._first_asked, self._reports,
                              self._raw, self._recorded, self._versions, self._stall_at,
                              self._first_stall, self._fast_at):
                    table.pop(node, None)
        return gone

    def tracked(self) -> int:
        """How many nodes the table holds anything for (for tests and status)."""
        with self._lock:
            return len(self._last.keys() | self._first_asked.keys() | self._reports.keys()
                       | self._fast_at.keys())

    def age(self, node: str, now: float) -> float:
        """Seconds since the last acknowledged keepalive; for a node never heard from,
        since we started serving or first heard of it, whichever is later."""
        known = self._known()
        stalled = self._stall(now)
        w = self._read_through()
        with self._lock:
            return self._age(node, now, stalled, known is None or node in known, w)

    def ages(self, nodes: list[str], now: float) -> dict[str, float]:
        known = self._known()  # read outside our lock: it asks the store
        stalled = self._stall(now)
        w = self._read_through()
        with self._lock:
            return {n: self._age(n, now, stalled, known is None or n in known, w)
                    for n in nodes}

    def vouched(self, nodes: list[str], now: float, ttl: float | None,
                overloaded: bool) -> tuple[dict[str, float], bool]:
        """The ages this coordinator vouches for (its own expiry vote, and its answer to
        PeerService.GetLeaseAges), and whether any is exact (fast path).

        Exact ages are given as they are, overloaded or not. While this coordinator is
        overloaded, an age measured up to now (a gRPC arrival: the stall credit may
        lag behind a loop that is late right now) is given only beyond
        OVERLOADED_EXPIRY_TTLS TTLs, and as at most one TTL otherwise: no vote, for new
        and old leaders alike (a smaller age is always the safe side), and every node
        asked about is still answered. Without a TTL (unit tests) an overloaded table
        vouches only for exact ages (the others as 0)."""
        known = self._known()
        stalled = self._stall(now)
        w = self._read_through()
        slow = math.inf if ttl is None else OVERLOADED_EXPIRY_TTLS * ttl
        out: dict[str, float] = {}
        exact = False
        with self._lock:
            for n in nodes:
                age = self._age(n, now, stalled, known is None or n in known, w)
                if self._fast(n, w) is not None:
                    exact = True
                elif overloaded and age <= slow:
                    age = 0.0 if ttl is None else min(age, ttl)
                out[n] = age
        return out, exact

    def suspect_ages(self, nodes: Iterable[str], now: float, ttl: float) -> dict[str, float]:
        """The ages by which the leader picks nodes to ask the others about: `age`, but
        while the fast path's watermark lags now by more than a TTL (its intake thread
        frozen, or a backlog of more than a TTL), a fast-path node's silence up to now.
        Only a choice of whom to ask: votes are cast on `vouched` ages, so a frozen
        intake leaves the expiry to the other coordinators instead of to nobody. One
        lock for all (the leader asks about every node, every round)."""
        known = self._known()
        stalled = self._stall(now)
        w = self._read_through()
        frozen = w is not None and now - w[0] > ttl
        out: dict[str, float] = {}
        with self._lock:
            for n in nodes:
                age = self._age(n, now, stalled, known is None or n in known, w)
                if frozen and self._fast(n, w) is not None:
                    age = max(age, now - self._last.get(n, now))
                out[n] = age
        return out

    def next_expiry(self, ttl: float, now: float) -> float | None:
        """The earliest time a node heard within the last TTL would become stale, so
        the leader can look exactly then instead of on its next tick. A fast-path node
        turns stale when the watermark passes its arrival by a TTL: due as if the
        watermark's current lag persists (while it lags by more than a TTL, not at all:
        the leader's interval then paces the questions, not a wake per frozen reading)."""
        stalled = self._stall(now)
        w = self._read_through()
        lag = 0.0 if w is None else max(0.0, now - w[0])
        with self._lock:
            due = []
            for n in self._last:
                fast = self._fast(n, w)
                t = self._heard(n, stalled)
                if fast is not None:
                    if lag > ttl:
                        continue
                    t = fast + lag if t is None or self._last[n] == fast else max(fast + lag, t)
                if t is not None and t + ttl > now:
                    due.append(t + ttl)
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
        the stall since it arrived, or for a fast-path one by the watermark's lag (so
        `Observations.fresh` agrees with `age`; with a lag above `ttl`, where the leader
        asks about such nodes anyway (`suspect_ages`), it is left where it is)."""
        stalled = None if now is None else self._stall(now)
        w = None if now is None else self._read_through()
        lag = 0.0 if w is None or now is None else max(0.0, now - w[0])
        shift_fast = lag if self._ttl is None or lag <= self._ttl else 0.0
        # `_fast` inlined: this runs for every node at every round (20 Hz).
        fast_at, stall_at, reports, run = self._fast_at, self._stall_at, self._reports, self._run
        overflow, shed = (math.inf, _NO_SHED) if w is None else (w[1], w[2])
        window = self._copy_window
        with self._lock:
            nodes = {}
            for n, t in self._last.items():
                if stalled is not None:
                    fast = fast_at.get(n) if w is not None else None
                    if (fast is not None and overflow <= fast
                            and shed.get(n, -math.inf) <= fast and t - fast <= window):
                        # as `_age` counts it: the later of the two, if the last was gRPC
                        t = (fast + shift_fast if t == fast
                             else max(fast + shift_fast, t + stalled - stall_at.get(n, 0.0)))
                    else:
                        t = t + stalled - stall_at.get(n, 0.0)
                nodes[n] = NodeSeen(last_keepalive=t, members=dict(reports.get(n, {})),
                                    heard_since=run.get(n))
            versions = dict(self._versions)
        return Observations(leader_since=leader_since, nodes=nodes,
                            quorum_expired=quorum_expired, versions=versions)
