"""How late this coordinator's own event loop runs, and whether it is overloaded.

Why: a keepalive's arrival is stamped when the gRPC event loop reads it. A loop that
lags reads every message late, so while it lags every node looks silent at once;
before this module those false silences were committed as expiries, each commit fanned
out to every watch stream, the loop lagged more, and Raft (same process, same GIL)
missed heartbeats: every lease lapsed together (issue 14). The observer's lag is the
observer's problem, not the node's. So:

* `stalled(now)` is a clock of the time the loop could not read: the lease table
  (leases.py) does not count it into any node's silence, whether the stall is over
  (measured by the heartbeat) or still going on (the heartbeat is overdue).
* the keepalive fast path's intake thread reads datagrams past the event loop; how long
  they waited in its socket (kernel receive stamps) counts as lag for `overloaded`
  (`queued`), not for the stall clock: those arrivals are dated correctly already.
* `overloaded(now)` is the sustained state (a smoothed lag above a threshold, held
  for a while after it clears): the coordinator then vouches for a node's silence
  only beyond several TTLs (leases.expiry_votes), leader or peer; it answers standby
  nodes' keepalives at most every `ration(ttl)`, on the gRPC stream (service/agent.py)
  and on the fast path before decrypting (fastpath.py), and tells them so; it refuses
  new registrations; and health, a metric and one rate-limited log line say so.

The meter is plain data and arithmetic over times its caller passes in (the event
loop's heartbeat calls `beat`, any thread reads); `watch` is the asyncio edge.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

log = logging.getLogger("vnfha.overload")

#: Heartbeat period of the event loop probe, seconds.
PERIOD = 0.01
#: Lateness below this is scheduling noise: not counted as a stall.
TOLERANCE = 0.002
#: Smoothing time of the lag average that decides "overloaded", seconds.
SMOOTHING = 0.5
#: While overloaded, the state line is repeated at most this often, seconds.
LOG_EVERY = 10.0
#: A fast-path queueing sample older than this says nothing about now, seconds (the
#: intake reports one per batch it reads; none arrive while no datagrams do).
QUEUE_FRESH = 0.1


class LoopLag:
    """The event loop's lateness, fed by `beat` (one per heartbeat), read from any
    thread. `threshold`: a smoothed lag above it is overload; `hold`: overload is
    reported this long after the lag last exceeded the threshold (no flapping)."""

    def __init__(self, threshold: float, hold: float, period: float = PERIOD,
                 tolerance: float = TOLERANCE, smoothing: float = SMOOTHING) -> None:
        if threshold <= 0 or hold < 0 or period <= 0:
            raise ValueError("threshold and period must be > 0, hold >= 0")
        self.threshold = threshold
        self.hold = hold
        self.period = period
        self.tolerance = tolerance
        self.smoothing = smoothing
        # One tuple, replaced whole, so a reader on another thread never sees half of
        # an update: (last beat, stall seconds counted up to it, smoothed lag, last lag,
        # overloaded until, overloaded since or None).
        self._s: tuple[float | None, float, float, float, float, float | None] = (
            None, 0.0, 0.0, 0.0, -math.inf, None)
        # The keepalive fast path's latest batch: (read at, longest wait in the socket).
        # Its intake thread reads past the event loop, so a backlog there is invisible
        # to the heartbeat; the kernel's receive stamps measure it (fastpath.py).
        self._q: tuple[float, float] = (-math.inf, 0.0)

    def queued(self, now: float, waited: float) -> None:
        """The fast-path intake read, at `now`, datagrams that had waited up to `waited`
        seconds in its socket. Any thread. Counts toward overload like the loop's lag,
        never toward the stall clock: those arrivals are already dated by the kernel."""
        self._q = (now, max(0.0, waited))

    def beat(self, now: float, lag: float) -> None:
        """The heartbeat ran at `now`, `lag` seconds after it was due."""
        last, stalled, avg, _, until, since = self._s
        lag = max(0.0, lag)
        stalled += max(0.0, lag - self.tolerance)
        q_at, q = self._q
        late = max(lag, q if now - q_at <= QUEUE_FRESH else 0.0)
        dt = self.period if last is None else max(now - last, 1e-6)
        avg += (1 - math.exp(-dt / self.smoothing)) * (late - avg)
        if avg > self.threshold or late > 2 * self.threshold:
            until = now + self.hold
            since = now if since is None else since
        elif now >= until:
            since = None
        self._s = (now, stalled, avg, lag, until, since)

    def _ongoing(self, now: float) -> float:
        """How overdue the heartbeat is now (a stall still going on)."""
        last = self._s[0]
        return 0.0 if last is None else max(0.0, now - last - self.period)

    def stalled(self, now: float) -> float:
        """Seconds, since the meter started, during which the loop could not run: never
        decreases, and grows at most as fast as `now`."""
        return self._s[1] + max(0.0, self._ongoing(now) - self.tolerance)

    def lag(self, now: float) -> float:
        """The loop's current lateness: the last measured one, or longer if overdue."""
        return max(self._s[3], self._ongoing(now))

    def overloaded(self, now: float) -> bool:
        return now < self._s[4] or self._ongoing(now) > 2 * self.threshold

    def lagging(self, now: float) -> bool:
        """Overloaded *now*: the smoothed lag above the threshold, or a stall over twice
        it going on; `overloaded` without the hold. While it lasts even the keepalives
        of nodes holding an active role are rationed (fastpath.py); in the hold after
        it, only standbys' are."""
        return self._s[2] > self.threshold or self._ongoing(now) > 2 * self.threshold

    def reason(self, now: float) -> str | None:
        """Why this coordinator is overloaded (health, errors), or None."""
        if not self.overloaded(now):
            return None
        # Stable text (health logs one line per change of reason); the figures are in
        # the metrics and the overload log line.
        return (f"overloaded: its event loop runs, or its keepalives are read, more than "
                f"{self.threshold * 1000:.0f} ms late")

    def average(self) -> float:
        """The smoothed lag that decides overload."""
        return self._s[2]

    def since(self) -> float | None:
        return self._s[5]


def ration(ttl: float) -> float:
    """While overloaded, the shortest time between two answers to a node that holds no
    active role (the gRPC stream and the fast path alike; the keepalives between are
    dropped unhandled, and the answers say so: KeepaliveResponse.answer_every_ms).

    Why TTL/3: the keepalive interval is at most TTL/3 (a timing rule checked when the
    config loads), so a rationed node's answered rounds are at most TTL/3 + interval
    <= 2*TTL/3 apart, less than the TTL by which this coordinator would call it silent
    and than the lease cover one answer gives the agent (TTL*(1-drift) - margin) as long
    as margin + drift*TTL stays under a third of the TTL: an answer of this coordinator
    is still due before the previous one ran out. At the default timing (TTL 0.25 s,
    interval 0.06 s) that is every second round, 0.12 s apart against a cover of
    0.1975 s; at TTL 1 s and 0.1 s, every fourth. It sheds half to three quarters of a
    standby's keepalives, the part that renews nothing the next answer does not."""
    return ttl / 3


def for_ttl(ttl: float) -> LoopLag:
    """The default meter for a lease TTL: a loop late by a fifth of the TTL on average
    has a backlog of unread keepalives (each stream is read once per loop pass) that
    eats most of an agent's lease; overload is held for 4 TTLs, at least 1 s, so it
    does not flap."""
    return LoopLag(threshold=ttl / 5, hold=max(1.0, 4 * ttl))


async def watch(meter: LoopLag, node_id: str,
                clock: Callable[[], float] = time.monotonic) -> None:
    """The heartbeat (runs on the event loop it measures until cancelled), and the
    overload log: one line when overload starts and ends, and at most one every
    LOG_EVERY seconds while it lasts."""
    was, said, began = False, -math.inf, 0.0
    while True:
        t0 = clock()
        await asyncio.sleep(meter.period)
        now = clock()
        meter.beat(now, now - t0 - meter.period)
        over = meter.overloaded(now)
        if over and not was:
            began = now
        if over and (not was or now - said >= LOG_EVERY):
            log.warning("coordinator overloaded: rationing answers, vouching only for "
                        "silences it dates exactly or long ones, refusing new "
                        "registrations",
                        extra={"node": node_id, "lag_ms": round(meter.lag(now) * 1000),
                               "average_ms": round(meter.average() * 1000),
                               "threshold_ms": round(meter.threshold * 1000)})
            said = now
        elif was and not over:
            log.warning("coordinator no longer overloaded",
                        extra={"node": node_id, "lasted_s": round(now - began, 1)})
        was = over
