"""The agent's own lease: the conservative clock of the safety argument. Pure.

The agent notes its monotonic time `s` before sending keepalive round `seq`
to every coordinator. When a majority of distinct coordinators acknowledged
that round, the lease runs until ``s + ttl * (1 - drift) - margin``. The
agent acts as active only while the lease runs, and demotes itself when it
ends, without waiting to be told.

Why a majority: a coordinator's acknowledgement is its promise to count the
node as heard at arrival (>= s) for ttl. The leader declares a node lost
only when a majority of coordinators report more than ttl since they last
heard it; that majority shares a member with the one that acknowledged
round `seq`, so it cannot happen before ``s + ttl`` (on coordinator clocks,
which may run fast by `drift`). `margin` covers the time to drop the VIP.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class QuorumLease:
    coordinators: int  # how many coordinators the cluster has
    ttl: float  # the agent's configured TTL, seconds
    drift: float = 0.01  # allowed clock-rate difference (rho)
    margin: float = 0.05  # seconds reserved to take the VIP down before the lease ends
    _sent: dict[int, float] = field(default_factory=dict)
    _acks: dict[int, set[str]] = field(default_factory=dict)
    _ttl_seen: float | None = None
    _deadline: float | None = None
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

    @property
    def quorum(self) -> int:
        return self.coordinators // 2 + 1

    def sent(self, seq: int, at: float) -> None:
        """Record the local time noted *before* round `seq` went out."""
        self._sent[seq] = at
        self._acks.setdefault(seq, set())
        # Rounds far older than the newest cannot extend the lease any more.
        for old in [s for s in self._sent if s < seq - 64]:
            self._sent.pop(old, None)
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
        acks = self._acks[seq]
        acks.add(coordinator_id)
        if len(acks) < self.quorum:
            return False
        ttl = self.ttl if self._ttl_seen is None else min(self.ttl, self._ttl_seen)
        deadline = self._sent[seq] + ttl * (1 - self.drift) - self.margin
        if self._deadline is None or deadline > self._deadline:
            self._deadline = deadline
            return True
        return False

    def deadline(self) -> float | None:
        return self._deadline

    def valid(self, now: float) -> bool:
        return self._deadline is not None and now < self._deadline
