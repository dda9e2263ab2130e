"""Keeps the coordinator's long-lived heap out of Python's garbage collections.

Why (issue 14): a generation-2 collection walks every tracked object while holding the
GIL, so every thread stops meanwhile, the keepalive intake too. A coordinator starts
with little (the start-up freeze, server.run), then nodes register: the state, the
lease table, fast-path sessions, one watch stream per node. Measured at 1,000 nodes
(bench/scale.py, docs/sizing.md): a gen-2 pass every ~2.5 s of 83-93 ms CPU each, on a
250 ms lease: every node's acknowledgement waits behind it (ack p99 ~100 ms, leases
lapsed). With this: ~30 ms each, ack p99 18 ms, no lapse.

What: after start-up and then at growing intervals (`FreezePlan`), one collection and
then `gc.freeze()`: whatever survived is moved out of every later collection, so the
automatic ones walk only what was allocated since the last freeze. The collection
before each freeze walks only objects not frozen yet, so after the first one it is
short. The price: a frozen object that later becomes garbage inside a reference cycle
is not reclaimed (one freed by reference counting, nearly all, is), for example the
objects of a watch stream whose agent reconnected. So every `full_every` seconds the
heap is unfrozen and collected once (one full pass), which bounds that to an hour's.

Each wait is spread by up to `jitter` either way, at random: coordinators started
together (Ansible starts them at once) otherwise collect in the same second for ever
after, and a pause on a majority at once stops every node's lease renewals at once,
where a pause on one is covered by the others (issue 14: the three coordinators of the
overload test collected within 0.4 s of each other, 100-300 ms each under the budget,
and every lease lapsed).
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("vnfha.gc")


@dataclass(frozen=True)
class FreezePlan:
    """When to freeze: `first` seconds after start, then each gap `growth` times the
    previous one, up to `longest`; a full collection every `full_every` seconds."""

    first: float = 5.0
    growth: float = 2.0
    longest: float = 300.0
    full_every: float = 3600.0
    jitter: float = 0.25


def spread(gap: float, jitter: float, draw: float) -> float:
    """The wait for a planned `gap`, moved by up to `jitter` of it either way; `draw` is
    uniform in [0, 1)."""
    return gap * (1.0 - jitter + 2.0 * jitter * draw)


def next_step(plan: FreezePlan, gap: float, since_full: float) -> tuple[float, bool]:
    """(the gap before the next freeze, whether that one unfreezes and collects all
    first), given the gap just waited and the time since the last full collection."""
    following = min(plan.longest, gap * plan.growth)
    return following, since_full + following >= plan.full_every


@dataclass
class GcOps:
    """The gc module's calls (tests pass their own)."""

    collect: Callable[[], int] = gc.collect
    freeze: Callable[[], None] = gc.freeze
    unfreeze: Callable[[], None] = gc.unfreeze
    frozen: Callable[[], int] = gc.get_freeze_count


class GcFreezer:
    """A daemon thread that follows a FreezePlan until stopped."""

    def __init__(self, plan: FreezePlan | None = None, ops: GcOps | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 draw: Callable[[], float] = random.random) -> None:
        self._plan = plan or FreezePlan()
        self._ops = ops or GcOps()
        self._clock = clock
        self._draw = draw
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gc-freeze", daemon=True)
        self.freezes = 0  # for tests and status
        self.full = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def freeze_now(self, full: bool = False) -> float:
        """Collect, then freeze what survived; with `full`, unfreeze everything first
        so the collection also reclaims frozen objects that died in cycles. Returns
        the seconds it took (the GIL was held most of that time)."""
        started = self._clock()
        if full:
            self._ops.unfreeze()
        collected = self._ops.collect()
        self._ops.freeze()
        took = self._clock() - started
        self.freezes += 1
        self.full += full
        log.info("garbage collected and frozen", extra={
            "full": full, "collected": collected, "frozen": self._ops.frozen(),
            "ms": round(took * 1e3, 1)})
        return took

    def _run(self) -> None:
        gap, since_full = self._plan.first, 0.0
        full = False
        while not self._stop.wait(spread(gap, self._plan.jitter, self._draw())):
            self.freeze_now(full)
            since_full = 0.0 if full else since_full + gap
            gap, full = next_step(self._plan, gap, since_full)
