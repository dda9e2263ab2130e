"""Tick-thread side of a disk fault: step down, stay out of elections, retry, or give up.

The journal (``journal.py``) notices a failed write and records it; the
transport (``transport.py``) sends nothing while a fault is set. This module
decides, once per tick, what the node does about it (policy in
``diskfault.py``):

* **leader**: steps down in the same tick, so its lease stops and another
  node is elected after one election timeout (its heartbeats have stopped);
* **any role**: its election deadline is pushed out, so it stands in no
  election it could not persist a vote or a term for;
* **retry**: ``journal.try_recover`` with exponential back-off; on success
  the node takes part again (it catches up like a lagging follower);
* **fatal**: ``on_fatal(line)`` once, with one line naming errno and path.

Logging: one line when the fault starts, one per ``log_interval`` while it
lasts (with the number of failed retries), one when it ends. Never a
traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from . import internals
from .diskfault import FaultPolicy, PersistFault, RateLimit, decide, retry_delay
from .journal import DurableJournal

logger = logging.getLogger(__name__)


class DiskGuard:
    """Per-node state of the fault handling; all methods run on pysyncobj's tick thread."""

    def __init__(self, journal: DurableJournal, policy: FaultPolicy, min_free: int,
                 hold_off: float, on_fatal: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 log_interval: float = 5.0) -> None:
        self._journal = journal
        self._policy = policy
        self._min_free = min_free
        self._hold_off = hold_off  # how far to push the election deadline each tick
        self._on_fatal = on_fatal
        self._clock = clock
        self._limit = RateLimit(log_interval)
        self._next_try = 0.0
        self._seen: PersistFault | None = None
        self.fatal: str | None = None  # set once the policy gave up
        self.step_downs = 0

    def reason(self) -> str | None:
        """Why this node cannot persist now (None if it can)."""
        if self.fatal is not None:
            return self.fatal
        fault = self._journal.fault
        return None if fault is None else fault.describe()

    def on_tick(self, core: Any) -> None:
        fault = self._journal.fault
        now = self._clock()
        if fault is None:
            if self._seen is not None and self._limit.allow("recovered", now):
                logger.warning("journal: persisting again after %.1f s (%d failed retries); "
                               "rejoining", now - self._seen.since, self._seen.attempts)
            self._seen = None
            return
        if fault is not self._seen:  # a new outage: retry soon
            self._seen = fault
            self._next_try = now + self._policy.first_retry
        if internals.is_leader(core):
            internals.step_down(core)
            self.step_downs += 1
            logger.error("raft: stepping down as leader: %s", fault.describe())
        internals.set_election_deadline(core, self._hold_off)
        if self.fatal is not None:
            return
        if now >= self._next_try:
            if self._journal.try_recover(self._min_free):
                self.on_tick(core)  # logs the recovery
                return
            self._next_try = now + retry_delay(self._policy, fault.attempts)
        if decide(self._policy, fault, now) == "fatal":
            self.fatal = f"{fault.describe()} (for {now - fault.since:.1f} s, " \
                         f"{fault.attempts} retries): giving up"
            logger.critical("journal: %s", self.fatal)
            if self._on_fatal is not None:
                try:
                    self._on_fatal(self.fatal)
                except Exception:
                    logger.exception("on_fatal hook failed")
            return
        if self._limit.allow("retry", now) and fault.attempts:
            logger.error("journal: still %s; %d retries so far, next in %.1f s",
                         fault.describe(), fault.attempts, max(0.0, self._next_try - now))
