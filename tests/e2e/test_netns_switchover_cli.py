"""`vnfha switchover` returns once the new active holds the VIP and answers.

The real CLI (a fresh `vnfha` process, as an operator or a script runs it) against the
namespace lab of labpair.py (3 coordinators, 2 VMs with agents, a real VIP with its
kernel lease). When the command exits 0, the new active must already hold the VIP and
answer a client on it: the command returns on the new active's report, not at commit.
A checker polls every VM's addresses throughout and must never see two holders.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpair import build_pair

from vnfha_lab.labcluster import SERVICE_PORT, LabCluster, VipChecker
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import probe_once

pytestmark = pytest.mark.slow

VNFHA = str(Path(sys.executable).with_name("vnfha"))


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request)


@pytest.fixture
def slow_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    """A long TTL (2 s): an agent may be frozen for a second without being lost."""
    with Lab() as lab:
        c = LabCluster(lab, tmp_path, ttl=2.0, interval=0.2)
        try:
            c.start_pair()
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def endpoints(c: LabCluster) -> str:
    # The coordinators' admin unix sockets: the test runs in the root namespace, which
    # has no link to the lab (local root: plaintext, no certificate).
    return ",".join(f"unix://{c.admin_socket(cid)}" for cid in c.cids)


def switchover(c: LabCluster, to: str) -> subprocess.Popen[str]:
    return subprocess.Popen([VNFHA, "--endpoint", endpoints(c), "switchover", "web",
                             "--to", to], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def answered_by(c: LabCluster) -> str:
    """One connection from the client to the VIP: the name of the VM that answered."""
    ok, who = c.hosts["client"].call(probe_once, c.vip_addr, SERVICE_PORT, 1.0)
    return who if ok else f"no answer ({who})"


def test_switchover_command_returns_when_the_new_active_serves(cluster: LabCluster):
    c = cluster
    checker = VipChecker(c).start()
    assert answered_by(c) == "vm1"
    for to, vm in [("web-2", "vm2"), ("web-1", "vm1"), ("web-2", "vm2")]:
        proc = switchover(c, to)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (out, err)
        # Checked the moment the command has exited, before anything else happens.
        assert c.vip_holders() == {vm}, out
        assert answered_by(c) == vm
        assert out.strip().endswith(f"(completed; {to} holds the VIP)"), out
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()


def test_switchover_command_waits_for_a_slow_new_active(slow_cluster: LabCluster):
    """vm2's agent is frozen (SIGSTOP) until the promotion is committed and a moment
    more: a command that returned at commit would exit while vm2 holds nothing."""
    c = slow_cluster
    checker = VipChecker(c).start()
    agent = c.procs["vm2-agent"]
    os.kill(agent.pid, signal.SIGSTOP)
    resumed = threading.Event()

    def resume_after_commit() -> None:
        try:  # bounded: never longer than 1.2 s (the TTL is 2 s), whatever happens
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline:
                g = c.group()
                if g is not None and g.active == "web-2":
                    time.sleep(0.2)  # committed; the agent stays frozen a moment more
                    break
                time.sleep(0.01)
        finally:
            os.kill(agent.pid, signal.SIGCONT)
            resumed.set()

    t = threading.Thread(target=resume_after_commit, daemon=True)
    try:
        proc = switchover(c, "web-2")
        t.start()
        out, err = proc.communicate(timeout=30)
        holders = c.vip_holders()
    finally:
        t.join(5)
        if not resumed.is_set():
            os.kill(agent.pid, signal.SIGCONT)
    assert proc.returncode == 0, (out, err)
    assert holders == {"vm2"}, out
    assert answered_by(c) == "vm2"
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()
