"""Keep the agent's lease path on time when the VM is loaded.

Measured (issue 12): with CPU hogs on both cores an active's agent sometimes ran
its keepalive rounds late enough for its lease to lapse (the guardian removed the
VIP, the lease came back 0-0.2 s later), and once a live active was failed over.
keepalived avoids this by running its VRRP process at real-time priority. We do
the same, for the agent and its guardian:

* SCHED_FIFO at a low real-time priority (default 10): any runnable thread of ours
  preempts ordinary work. SCHED_RESET_ON_FORK, so the processes we start (health
  checks, hooks, nft) run as ordinary processes. The kernel's RT throttling
  (sched_rt_runtime_us) still bounds a runaway loop.
* mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): no page of ours is swapped out
  under memory pressure (ONFAULT: locked when first touched, so thread stacks are
  not populated up front).
* gc.freeze() once start-up is done: the objects of the import and start-up phase
  move to a permanent generation, so collections on the hot path stay short.

`realtime: auto` (the default) applies what the host permits and logs what it could
not; `on` refuses to start without it; `off` leaves everything as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from dataclasses import dataclass

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4


@dataclass(frozen=True)
class RealtimeSettings:
    mode: str = "auto"  # auto | on | off
    priority: int = 10  # SCHED_FIFO priority, 1..99


@dataclass(frozen=True)
class Applied:
    scheduler: bool
    mlock: bool
    problems: tuple[str, ...] = ()


RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)


def _set_fifo(priority: int, reset_on_fork: bool = True) -> None:
    policy = os.SCHED_FIFO | (RESET_ON_FORK if reset_on_fork else 0)
    os.sched_setscheduler(0, policy, os.sched_param(priority))


def children_ordinary() -> None:
    """For the calling thread only: the processes (and threads) it starts from now on
    run as ordinary ones, while it keeps its own real-time priority. For the threads of
    a process set up with `threads_inherit` that run commands (hooks)."""
    policy = os.sched_getscheduler(0)
    if policy & ~RESET_ON_FORK == os.SCHED_FIFO and not policy & RESET_ON_FORK:
        os.sched_setscheduler(0, policy | RESET_ON_FORK, os.sched_getparam(0))


def _mlockall() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mlockall: {os.strerror(err)}")


def apply(settings: RealtimeSettings, threads_inherit: bool = False) -> Applied:
    """Apply to the calling thread and the whole process (memory). Call from the main
    thread before starting any other; raises RuntimeError only in mode `on`.

    SCHED_RESET_ON_FORK resets every task the thread creates, threads included: by
    default only the calling thread runs real-time. With `threads_inherit` the flag is
    left off, so every thread started later inherits SCHED_FIFO (with the GIL, a hot
    thread waits for whichever thread holds it, so all of them must be on time); the
    threads that start processes then call `children_ordinary` first."""
    if settings.mode == "off":
        return Applied(False, False)
    problems = []
    scheduler = mlock = False
    try:
        _set_fifo(settings.priority, reset_on_fork=not threads_inherit)
        scheduler = True
    except OSError as e:
        problems.append(f"real-time scheduling (SCHED_FIFO {settings.priority}): {e.strerror}")
    try:
        _mlockall()
        mlock = True
    except OSError as e:
        problems.append(f"memory locking: {e.strerror}")
    if problems and settings.mode == "on":
        raise RuntimeError("realtime is on but the host does not permit "
                           + "; ".join(problems) + " (run as root or set realtime: auto|off)")
    return Applied(scheduler, mlock, tuple(problems))


def freeze_garbage() -> None:
    """After start-up: a collection now, then everything alive is left out of later ones."""
    gc.collect()
    gc.freeze()
