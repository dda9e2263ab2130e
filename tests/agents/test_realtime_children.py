"""A real-time agent (realtime: auto as root) runs its hooks and exec health checks as
ordinary processes, while its own threads, started later, inherit SCHED_FIFO.

Runs in a child interpreter so the test process's own scheduling is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, os, sys, tempfile, threading, time
from pathlib import Path
from vnfha.agents import realtime
from vnfha.agents.health import CheckSpec, HealthMonitor
from vnfha.agents.hooks import HookRunner

realtime.apply(realtime.RealtimeSettings("on", 9), threads_inherit=True)
tmp = Path(tempfile.mkdtemp())
def probe(name):  # a command that records the scheduling policy it runs with
    return (sys.executable, "-c", "import os, sys; open(sys.argv[1], 'w').write("
            "str(os.sched_getscheduler(0) & ~0x40000000))", str(tmp / name))
runner = HookRunner(timeout=10)
runner.submit(probe("hook"), "active", 1, "web", "web-1")
runner.stop(timeout=20)
mon = HealthMonitor({("web", "web-1"): [CheckSpec(kind="exec", argv=probe("check"),
                                                  interval=0.1, timeout=5, rise=1, fall=1)]})
mon.start()
for _ in range(200):  # <= 20 s
    if mon.healthy("web", "web-1"):
        break
    time.sleep(0.1)
mon.stop()
seen = {}
def later_thread():
    seen["thread"] = os.sched_getscheduler(0) & ~realtime.RESET_ON_FORK
t = threading.Thread(target=later_thread)
t.start(); t.join()
print(json.dumps({"hook": int((tmp / "hook").read_text()),
                  "check": int((tmp / "check").read_text()),
                  "healthy": mon.healthy("web", "web-1"), **seen}))
"""


def test_hooks_and_exec_checks_run_ordinary_in_a_realtime_agent():
    if os.geteuid() != 0:
        pytest.skip("SCHED_FIFO needs root")
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got == {"hook": os.SCHED_OTHER, "check": os.SCHED_OTHER, "healthy": True,
                   "thread": os.SCHED_FIFO}, got
