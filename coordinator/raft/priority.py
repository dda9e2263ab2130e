"""Raft's tick thread one real-time priority above the rest of its process.

Why (issue 14): a coordinator runs every thread SCHED_FIFO at one priority
(server.py `realtime`), and threads of one SCHED_FIFO priority are not
time-sliced: a thread that became runnable waits until those ahead of it
block. Under test_overload.py's CPU budget the intake and the event loop
rarely block, and the tick thread, which needs about 2 ms of CPU a second,
waited on the run queue for about a second every second (/proc schedstat):
its ticks came 0.3-10 s apart, beyond the election timeout, so followers
started elections and links timed out. One priority above, it runs as soon as
it is runnable and its process has CPU left; it still shares the GIL and the
process's real-time bandwidth, so it cannot take more than it needs for long.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)


@dataclass(frozen=True)
class Scheduling:
    policy: int  # with RESET_ON_FORK as the kernel reports it
    priority: int


def raised(current: Scheduling, fifo: int, highest: int) -> Scheduling | None:
    """The tick thread's scheduling one step above `current`, or None to leave it:
    only a SCHED_FIFO thread is raised (an ordinary one has nothing to be above), and
    never past the highest priority."""
    if current.policy & ~RESET_ON_FORK != fifo or current.priority >= highest:
        return None
    return Scheduling(current.policy, current.priority + 1)


def raise_calling_thread() -> int | None:
    """Apply `raised` to the calling thread (Linux: pid 0 is this thread only); the
    new priority, or None if left as it was."""
    fifo = getattr(os, "SCHED_FIFO", None)
    if fifo is None:
        return None
    try:
        now = Scheduling(os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
        target = raised(now, fifo, os.sched_get_priority_max(fifo))
        if target is None:
            return None
        os.sched_setscheduler(0, target.policy, os.sched_param(target.priority))
    except OSError as e:
        logger.warning("raft tick thread keeps its priority", extra={"error": e.strerror})
        return None
    logger.info("raft tick thread raised one real-time priority",
                extra={"priority": target.priority})
    return target.priority
