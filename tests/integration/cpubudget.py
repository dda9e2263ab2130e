"""A CPU budget for processes: a cgroup with a CFS quota (v1 `cpu` controller, or v2).

Why: "twice the capacity" needs a capacity that a load generator on the same 2-core
machine can double. Unlimited, three coordinators on the fast path take more
keepalives than one Python generator can send; under a budget of a fraction of a core
(a coordinator VM starved by its neighbours, or simply sized too small) they take a few
thousand a second, and the generator can offer twice that. The processes are real
coordinators; only the CPU they get is bounded. `close` moves them back and removes the
cgroup, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

PERIOD_US = 100_000
V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")


class CpuBudget:
    """`cores` of CPU time shared by every process added (e.g. 0.25: a quarter core)."""

    def __init__(self, cores: float, name: str | None = None) -> None:
        name = name or f"vnfha-budget-{os.getpid()}-{time.monotonic_ns()}"
        quota = max(1000, int(cores * PERIOD_US))
        if (V1 / "cpu.cfs_quota_us").exists():
            self.path, self._root = V1 / name, V1
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            # Coordinators run real-time (SCHED_FIFO, server.py `realtime: auto`): a v1
            # group without real-time bandwidth refuses them (EINVAL), and a CFS quota
            # does not bound them. Real-time bandwidth is per CPU, so each CPU gets its
            # share of the budget, over the same short period (the default 1 s period
            # would freeze them for most of a second at a time).
            share = int(cores * PERIOD_US / (os.cpu_count() or 1))
            (self.path / "cpu.rt_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.rt_runtime_us").write_text(str(max(1000, share)))
        elif (V2 / "cgroup.controllers").exists():
            self.path, self._root = V2 / name, V2
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            raise OSError("no cgroup cpu controller (v1 or v2) is mounted")
        self.cores = cores

    def add(self, pid: int) -> None:
        """Move process `pid` (every thread) and the processes it started (a coordinator's
        keepalive intake) under the budget: a cgroup takes one process at a time."""
        for p in family(pid):
            with contextlib.suppress(ProcessLookupError):
                (self.path / "cgroup.procs").write_text(str(p))

    def throttled_s(self) -> float:
        """Seconds the group's CFS quota held it back so far (cpu.stat; real-time
        throttling is not counted there: compare the CPU used with the budget)."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":  # v1: ns
                return int(value) / 1e9
            if key == "throttled_usec":  # v2
                return int(value) / 1e6
        return 0.0

    def close(self) -> None:
        """Lift the budget: move what is left back to the root group, remove the group."""
        with contextlib.suppress(FileNotFoundError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self._root / "cgroup.procs").write_text(pid)
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # a process still leaving
                time.sleep(0.1)
        self.path.rmdir()


def family(pid: int) -> list[int]:
    """`pid` and its live descendants (Linux /proc/<pid>/task/*/children): what a
    coordinator costs is its own process and those it started."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process, all its threads and its live descendants (Linux
    /proc)."""
    total = 0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
