"""What a node does when its disk refuses a write: pure policy, no I/O.

A Raft node may acknowledge only what is on stable storage. When a journal,
meta or snapshot write fails, the journal records a :class:`PersistFault`
and leaves the file exactly as it was before the failed write (or, if even
that is impossible, marks itself *broken* and writes nothing more). While a
fault is set the node sends nothing (``transport.py``), steps down if it
leads, stands in no election, and retries persisting with back-off
(``DiskGuard`` in ``guard.py`` drives this from the tick thread).

Policy (``decide``):

* **ENOSPC / EDQUOT / EFBIG** ("no room"): retried for ever with back-off;
  an operator freeing space makes the node rejoin by itself.
* **anything else** (EIO, EROFS, a filesystem shut down, ...): retried for
  ``fatal_after`` seconds (a transient path failover may come back), then
  fatal: the process exits with one line naming the errno and path. A disk
  that has gone bad does not heal, and a node that stays up but silent only
  hides the problem from the orchestrator that would replace it.
* **broken** (the roll-back itself failed, so the file may end in garbage):
  never retried, fatal after ``fatal_after`` whatever the errno. Until then
  the node stays up, silent and NOT_SERVING (so health and refused
  keepalives tell the truth). The CRC scan on the next start cuts the garbage
  off; nothing after it was ever acknowledged.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

#: errnos that mean "no room": freeing space fixes them
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass
class PersistFault:
    """The first write failure of the current outage, and how the retries went."""

    op: str  # "append", "sync", "meta", "truncate", "rewrite", "snapshot", "probe"
    errno: int
    path: str
    since: float  # monotonic time of the first failure
    broken: bool = False  # the journal could not be restored to its pre-write state
    attempts: int = 0  # failed recovery probes so far
    last_errno: int = 0

    @classmethod
    def from_error(cls, op: str, exc: OSError, path: str, now: float) -> PersistFault:
        code = exc.errno if isinstance(exc.errno, int) else errno.EIO
        return cls(op=op, errno=code, path=path, since=now, last_errno=code)

    @property
    def no_room(self) -> bool:
        return self.last_errno in NO_ROOM

    def describe(self) -> str:
        """One line for logs, health and status: errno name, operation, path."""
        name = errno.errorcode.get(self.last_errno, str(self.last_errno))
        state = "broken journal" if self.broken else "cannot persist"
        return f"{state}: {name} on {self.op} of {self.path}"


@dataclass(frozen=True)
class FaultPolicy:
    """Back-off and give-up times (seconds)."""

    first_retry: float = 0.1
    max_retry: float = 2.0
    fatal_after: float = 10.0


def retry_delay(policy: FaultPolicy, attempts: int) -> float:
    """Exponential back-off: first_retry, doubled per failed attempt, capped."""
    return float(min(policy.max_retry, policy.first_retry * (2 ** min(attempts, 30))))


def decide(policy: FaultPolicy, fault: PersistFault, now: float) -> str:
    """``"fatal"`` if the node should exit now, else ``"retry"``."""
    if fault.no_room and not fault.broken:
        return "retry"
    return "fatal" if now - fault.since >= policy.fatal_after else "retry"


class RateLimit:
    """At most one log line per ``interval`` seconds per key; counts what it swallowed."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def take_suppressed(self, key: str) -> int:
        return self.suppressed.pop(key, 0)
