"""The coordinator's keepalive intake and Raft threads at real-time priority (`realtime:`).

A real `vnfha coordinator` process (one member, Raft, loopback): with the default
`realtime: auto` as root every thread of it (Raft, gRPC loop, workers, decide) runs
at SCHED_FIFO with its memory locked; where the host does not permit it (capabilities
dropped, RLIMIT_RTPRIO 0) it serves anyway and says so in one line; `off` leaves it
ordinary; `on` refuses to start without it, in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster import CoordinatorCluster
from support import wait_for

pytestmark = pytest.mark.slow

RESET_ON_FORK = getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)

# Root without CAP_SYS_NICE / CAP_IPC_LOCK and with no real-time or lockable budget:
# what an unprivileged service account gets.
UNPRIVILEGED = ["setpriv", "--inh-caps=-sys_nice,-ipc_lock",
                "--bounding-set=-sys_nice,-ipc_lock",
                "prlimit", "--rtprio=0", "--memlock=65536", "--"]


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("real-time scheduling and mlock need root")


def start(c: CoordinatorCluster, realtime: dict | None,
          prefix: list[str] | None = None) -> subprocess.Popen:
    path = c.configs["c1"]
    cfg = yaml.safe_load(path.read_text())
    if realtime is not None:
        cfg["realtime"] = realtime
    path.write_text(yaml.safe_dump(cfg))
    log = open(c.root / "c1.log", "ab")
    proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "vnfha.coordinator.cli",
                             "coordinator", "--config", str(path)], stdout=log, stderr=log,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    c.procs["c1"] = proc
    return proc


def lines(c: CoordinatorCluster) -> list[dict]:
    out = []
    for ln in (c.root / "c1.log").read_text().splitlines():
        if ln.startswith("{"):
            out.append(json.loads(ln))
    return out


def serving(c: CoordinatorCluster) -> bool:
    return any(x.get("msg") == "real-time set-up" for x in lines(c)) and c.leader() == "c1"


def threads(pid: int) -> dict[int, tuple[int, int]]:
    """Every thread of `pid`: tid -> (scheduling policy without SCHED_RESET_ON_FORK,
    priority)."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        tid = int(t.name)
        try:
            out[tid] = (os.sched_getscheduler(tid) & ~RESET_ON_FORK,
                        os.sched_getparam(tid).sched_priority)
        except ProcessLookupError:
            continue
    return out


def locked_kb(pid: int) -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmLck:"):
            return int(ln.split()[1])
    return 0


@pytest.fixture
def one(tmp_path: Path):
    need_root()
    c = CoordinatorCluster(tmp_path, size=1, tls=False)
    try:
        yield c
    finally:
        for proc in c.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_auto_as_root_runs_every_thread_fifo_with_memory_locked(one: CoordinatorCluster):
    proc = start(one, None)  # the default: realtime: auto
    wait_for(lambda: serving(one), 30, what="the coordinator serving")
    ts = threads(proc.pid)
    assert len(ts) >= 3, ts  # Raft, gRPC loop, decide at least
    # Every thread real-time: Raft's tick thread one priority above the rest, so that
    # threads that never block at its process's priority cannot keep it off the CPU
    # (coordinator/raft/priority.py), every other thread at the configured 5.
    assert all(policy == os.SCHED_FIFO for policy, _ in ts.values()), ts
    assert sorted(prio for _, prio in ts.values()) == [5] * (len(ts) - 1) + [6], ts
    assert [x for x in lines(one)
            if x.get("msg") == "raft tick thread raised one real-time priority"
            and x.get("priority") == 6], "the thread at 6 is not Raft's tick thread"
    assert locked_kb(proc.pid) > 0
    assert not [x for x in lines(one) if "without part of the real-time" in x.get("msg", "")]
    setup = next(x for x in lines(one) if x.get("msg") == "real-time set-up")
    assert setup["realtime"] is True and setup["memory_locked"] is True


def test_not_permitted_serves_ordinary_and_says_so_once(one: CoordinatorCluster):
    if shutil.which("setpriv") is None or shutil.which("prlimit") is None:
        pytest.skip("needs setpriv and prlimit (util-linux)")
    proc = start(one, {"priority": 20}, prefix=UNPRIVILEGED)
    wait_for(lambda: serving(one), 30, what="the coordinator serving without real-time")
    ts = threads(proc.pid)
    assert all(t[0] == os.SCHED_OTHER for t in ts.values()), ts
    assert locked_kb(proc.pid) == 0
    warned = [x for x in lines(one) if "without part of the real-time" in x.get("msg", "")]
    assert len(warned) == 1, warned
    problems = " ".join(warned[0]["problems"])
    assert "SCHED_FIFO 20" in problems and "memory locking" in problems, warned
    assert "Traceback" not in (one.root / "c1.log").read_text()


def test_off_leaves_it_ordinary(one: CoordinatorCluster):
    proc = start(one, {"mode": "off"})
    wait_for(lambda: serving(one), 30, what="the coordinator serving")
    assert all(t[0] == os.SCHED_OTHER for t in threads(proc.pid).values())
    assert locked_kb(proc.pid) == 0


def test_on_without_permission_refuses_to_start_in_one_line(one: CoordinatorCluster):
    if shutil.which("setpriv") is None or shutil.which("prlimit") is None:
        pytest.skip("needs setpriv and prlimit (util-linux)")
    proc = start(one, {"mode": "on"}, prefix=UNPRIVILEGED)
    assert proc.wait(timeout=30) == 1
    text = (one.root / "c1.log").read_text()
    assert "Traceback" not in text
    errors = [x for x in lines(one) if x.get("level") == "error"]
    assert len(errors) == 1 and "realtime is on" in errors[0]["error"], errors


CHILDREN = """
import json, os, subprocess, sys, threading
from vnfha.agents import realtime
rt = realtime.apply(realtime.RealtimeSettings("on", 7), threads_inherit=True)
probe = [sys.executable, "-c", "import os; print(os.sched_getscheduler(0) & ~0x40000000)"]
out = {}
def hot():
    out["thread"] = os.sched_getscheduler(0) & ~realtime.RESET_ON_FORK
    out["child_of_hot"] = int(subprocess.run(probe, capture_output=True).stdout)
def hook_runner():
    realtime.children_ordinary()
    out["hook_runner"] = os.sched_getscheduler(0) & ~realtime.RESET_ON_FORK
    out["hook"] = int(subprocess.run(probe, capture_output=True).stdout)
for fn in (hot, hook_runner):
    t = threading.Thread(target=fn)
    t.start()
    t.join()
print(json.dumps(out))
"""


def test_threads_inherit_fifo_and_hook_runners_start_ordinary_processes():
    """threads_inherit (the coordinator's set-up): a thread started later is SCHED_FIFO;
    a thread that called children_ordinary stays FIFO, its processes run ordinary (the
    recovery hook's workers do so)."""
    need_root()
    r = subprocess.run([sys.executable, "-c", CHILDREN], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    fifo, other = os.SCHED_FIFO, os.SCHED_OTHER
    assert out == {"thread": fifo, "child_of_hot": fifo, "hook_runner": fifo,
                   "hook": other}, out
