"""The agent's own lease: the conservative clock of the safety argument. Pure.

The agent notes its monotonic time before sending each keepalive round to every
coordinator, and keeps per coordinator the send time of the newest round that
coordinator acknowledged. With `s` the newest time that a majority of distinct
coordinators each acknowledged a round sent at or after (the quorum-th largest of
those times), the lease runs until ``s + ttl * (1 - drift) - margin``. The agent acts
as active only while the lease runs, and demotes itself when it ends, without
waiting to be told.

Why a majority: a coordinator's acknowledgement is its promise to count the
node as heard at arrival (>= the round's send time) for ttl. The leader declares a
node lost only when a majority of coordinators report more than ttl since they last
heard it; that majority shares a member with the one whose acknowledgements date
`s`, and that member heard a round sent at `s` or later, so it cannot happen before
``s + ttl`` (on coordinator clocks, which may run fast by `drift`). `margin` covers
the time to drop the VIP. The majority need not acknowledge the *same* round: each
promise stands on its own. An overloaded coordinator answers each node only every
so often and drops the rounds in between (docs/design.md, "Overload"), so three of
them rarely answer one round in common; requiring that lapsed a third of the nodes
at any moment with every coordinator answering each of them several times a second.

Whose majority: the argument needs the agent's majority to be a majority of
the set the *coordinators* expire against, not of the agent's own list. An
agent that lists a subset of the coordinators, or a stale list after the
cluster grew from 3 to 5, would otherwise renew with 2 acks while the three
others expire it. So every acknowledgement announces the coordinator's
cluster membership (ids); the quorum is a majority of the larger of the
agent's list and the union of every announced set, and only acks from an
announced member count. A lease the agent cannot justify this way is not
held, and `unjustified()` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class QuorumLease:
    coordinators: int  # how many coordinators the agent's own config lists
    ttl: float  # the agent's configured TTL, seconds
    drift: float = 0.01  # allowed clock-rate difference (rho)
    margin: float = 0.05  # seconds reserved to take the VIP down before the lease ends
    _sent: dict[int, float] = field(default_factory=dict)
    _acks: dict[int, set[str]] = field(default_factory=dict)
    #: per coordinator id, the send time of the newest round it acknowledged
    _newest_acked: dict[str, float] = field(default_factory=dict)
    _ttl_seen: float | None = None
    _deadline: float | None = None
    _views: dict[str, frozenset[str]] = field(default_factory=dict)  # id -> announced set
    #: the union of `_views`, kept as they change: it is read for every acknowledgement
    _announced: frozenset[str] = frozenset()
    #: the newest round recorded, and whether every round was recorded above the one
    #: before (then `_sent` is in round order and old rounds are dropped from its front)
    _newest: int | None = None
    _in_order: bool = True
    #: acknowledgements counted per coordinator id (metrics: vnfha_agent_keepalive_acks_total)
    acks_by: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.coordinators < 1:
            raise ValueError("a lease needs at least one coordinator")
        if not 0 <= self.drift < 0.5:
            raise ValueError("drift must be in [0, 0.5)")
        if self.margin < 0 or self.ttl * (1 - self.drift) - self.margin <= 0:
            raise ValueError(f"ttl {self.ttl}s leaves no lease after drift and margin "
                             f"{self.margin}s")

    # -- the membership the quorum is counted against --------------------------------------

    @property
    def announced(self) -> frozenset[str]:
        """Every coordinator id any coordinator announced (empty: none announced yet)."""
        return self._announced

    @property
    def size(self) -> int:
        """The cluster size the quorum is a majority of: never below the agent's list."""
        return max(self.coordinators, len(self.announced))

    @property
    def quorum(self) -> int:
        return self.size // 2 + 1

    def announce(self, coordinator_id: str, members: Iterable[str]) -> bool:
        """Record the membership `coordinator_id` announced; True if the counted set changed.

        A change can only make the lease stricter or looser for *future* counting, but
        a deadline granted under a smaller quorum is not justified any more, so the
        deadline is recomputed from the recorded rounds (it may shrink or vanish).
        """
        view = frozenset(m for m in members if m)
        if not view or self._views.get(coordinator_id) == view:
            return False
        before = (self.announced, self.quorum)
        self._views[coordinator_id] = view
        self._announced = frozenset().union(*self._views.values())
        if (self.announced, self.quorum) == before:
            return False
        self._deadline = None
        self._extend()
        return True

    def unjustified(self) -> str | None:
        """Why no lease can be held even if every listed coordinator acknowledges, if so."""
        if self.coordinators >= self.quorum:
            return None
        ids = ", ".join(sorted(self.announced))
        return (f"the agent lists {self.coordinators} coordinator(s) but the cluster announces "
                f"{len(self.announced)} ({ids}): a lease needs {self.quorum} acknowledgements, "
                f"more than the agent can get; list every coordinator in the agent config")

    def counts(self, coordinator_id: str) -> bool:
        """Whether an ack from this coordinator counts (a member of the announced set)."""
        announced = self.announced
        return not announced or coordinator_id in announced

    # -- rounds and acks -------------------------------------------------------------------

    def sent(self, seq: int, at: float) -> None:
        """Record the local time noted *before* round `seq` went out."""
        sent = self._sent
        sent[seq] = at
        self._acks.setdefault(seq, set())
        # Rounds far older than the newest cannot extend the lease any more. Rounds are
        # numbered upwards, so the oldest are at the front of `_sent` (insertion order)
        # and dropping them stops at the first recent one: a scan of every recorded
        # round here, each round, was most of a load generator's cost per simulated
        # agent. Recorded out of order once, the full scan is what stays exact.
        if self._newest is not None and seq < self._newest:
            self._in_order = False
        self._newest = seq if self._newest is None else max(self._newest, seq)
        floor = seq - 64
        if self._in_order:
            while True:
                oldest = next(iter(sent))
                if oldest >= floor:
                    break
                del sent[oldest]
                self._acks.pop(oldest, None)
            return
        for old in [s for s in sent if s < floor]:
            sent.pop(old, None)
            self._acks.pop(old, None)

    def acked(self, seq: int, coordinator_id: str, ttl_ms: int) -> bool:
        """Record an ack; returns True if it extended the lease."""
        if seq not in self._sent:
            return False  # unknown or expired round: an ack we cannot date
        self.acks_by[coordinator_id] = self.acks_by.get(coordinator_id, 0) + 1
        if ttl_ms > 0:
            coord_ttl = ttl_ms / 1000.0
            self._ttl_seen = coord_ttl if self._ttl_seen is None else min(self._ttl_seen,
                                                                          coord_ttl)
        self._acks[seq].add(coordinator_id)
        at = self._sent[seq]
        if at > self._newest_acked.get(coordinator_id, -math.inf):
            self._newest_acked[coordinator_id] = at
        return self._extend()

    def _extend(self) -> bool:
        """Extend the lease to the newest send time a quorum of counted members each
        acknowledged a round at or after (the module docstring says why that is safe)."""
        newest = sorted((t for c, t in self._newest_acked.items() if self.counts(c)),
                        reverse=True)
        if len(newest) < self.quorum:
            return False
        ttl = self.ttl if self._ttl_seen is None else min(self.ttl, self._ttl_seen)
        deadline = newest[self.quorum - 1] + ttl * (1 - self.drift) - self.margin
        if self._deadline is None or deadline > self._deadline:
            self._deadline = deadline
            return True
        return False

    def acked_since(self, seq: int) -> bool:
        """A quorum acknowledged a keepalive sent at or after `seq` (its reports are in)."""
        return any(s >= seq and len([c for c in acks if self.counts(c)]) >= self.quorum
                   for s, acks in self._acks.items())

    def deadline(self) -> float | None:
        return self._deadline

    def valid(self, now: float) -> bool:
        return self._deadline is not None and now < self._deadline
