"""Gray failures of the agent itself, with real agent processes in the namespace lab:
a member whose VIP cannot be configured, and a guardian that dies under a running
agent. Never "active, healthy" with no VIP; never two VIP holders."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vnfha.agents.sdk import RoleClient
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab, pids_in_netns

pytestmark = pytest.mark.slow

TTL = 0.3
INTERVAL = 0.075
HEALTHY = 2


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    with Lab() as lab:
        c = LabCluster(lab, tmp_path, ttl=TTL, interval=INTERVAL)
        try:
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def member(c: LabCluster, name: str):
    g = c.group()
    return next((m for m in g.members if m.name == name), None) if g else None


def test_unknown_vip_interface_reports_the_member_unhealthy(lab: LabCluster):
    """vm1 (the preferred member) names an interface its VM does not have. The old agent
    was elected, its watch thread died adding the VIP, and the member stayed "active,
    healthy" with no VIP anywhere: a silent outage."""
    c = lab
    c.start_coordinators()
    c.start_service("vm1")
    cfg = c.agent_config("vm1", 200)
    cfg["vip"]["interface"] = "eth9"
    path = c.root / "vm1-agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c._spawn("vm1-agent", "vm1", [sys.executable, "-m", "vnfha.coordinator.cli", "agent",
                                   "--config", str(path)])
    c.wait(lambda: member(c, "web-1") is not None, 20, "web-1 registered")
    c.start_service("vm2")
    c.start_agent("vm2", 100)
    c.wait_active("web-2", 20)
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "the VIP on vm2")
    assert member(c, "web-1").health != HEALTHY
    role = RoleClient(str(c.root / "vm1-role.sock")).get("web")
    assert not role.active and "eth9" in role.reason
    log = (c.root / "vm1-agent.log").read_text()
    assert "no interface 'eth9'" in log and "Traceback" not in log


@pytest.fixture
def lab6(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    with Lab() as lab:
        c = LabCluster(lab, tmp_path, ttl=TTL, interval=INTERVAL, ipv6=True)
        try:
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def test_vip_the_kernel_refuses_is_undone_and_the_member_fails_over(lab6: LabCluster):
    """vm1's interface exists but refuses the (IPv6) VIP: the claim fails after the
    agent was elected. The old agent's watch thread died there, leaving web-1 "active,
    healthy" with no VIP. Now the claim is undone, web-1 reported unhealthy, and web-2
    serves the VIP."""
    c = lab6
    c.start_coordinators()
    done = c.hosts["vm1"].run(["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"])
    assert done.returncode == 0, done.stderr
    c.start_service("vm1")
    c.start_agent("vm1", 200)
    c.wait(lambda: member(c, "web-1") is not None, 20, "web-1 registered")
    c.start_service("vm2")
    c.start_agent("vm2", 100)
    c.wait_active("web-2", 20)
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "the VIP on vm2")
    assert member(c, "web-1").health != HEALTHY
    role = RoleClient(str(c.root / "vm1-role.sock")).get("web")
    assert not role.active and "could not take the active role" in role.reason
    text = (c.root / "vm1-agent.log").read_text()
    assert "member cannot act as active" in text and "Traceback" not in text


def guardian_pid(c: LabCluster, vm: str) -> int:
    for pid in pids_in_netns(c.hosts[vm].netns):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vnfha.agents.guardian" in cmd:
            return pid
    raise AssertionError(f"no guardian in {vm}")


def test_dead_guardian_fail_stops_the_active(lab: LabCluster):
    """The active's guardian dies (OOM killer): the old agent went on holding the VIP
    with no guardian behind it. Now it releases the role, reports unhealthy, and the
    standby takes over; never two holders."""
    c = lab
    c.start_pair()
    c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
    checker = VipChecker(c).start()
    os.kill(guardian_pid(c, "vm1"), signal.SIGKILL)
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "the VIP moved to vm2")
    c.wait(lambda: member(c, "web-1").health != HEALTHY, 5, "web-1 reported unhealthy")
    time.sleep(3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"
    assert c.group().active == "web-2"
    assert "vm1" not in c.vip_holders()
    text = (c.root / "vm1-agent.log").read_text()
    assert "agent failed" in text and "guardian exited" in text


def test_kernel_lease_on_without_nft_refuses_to_start(tmp_path: Path):
    """`vip.kernel_lease: on` on a host without nft: one clear line, exit status 1,
    nothing configured (not a silent downgrade to no kernel lease)."""
    cfg = {"node": "vm1", "coordinators": ["198.18.0.1:7401"],
           "members": [{"group": "web", "member": "web-1"}],
           "vip": {"interface": "eth0", "kernel_lease": "on"},
           "logging": {"level": "info", "format": "text"}, "insecure": True}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with Lab() as lab:
        vm = lab.add_host("vm1", ipv4=lab.address(11))
        done = vm.run(["env", "PATH=/nonexistent", sys.executable, "-m",
                       "vnfha.coordinator.cli", "agent", "--config", str(path)], timeout=30)
        assert done.returncode == 1
        err = done.stdout + done.stderr
        assert "vip.kernel_lease is on but nft is not installed" in err
        assert "Traceback" not in err
        assert vm.run(["nft", "list", "ruleset"]).stdout.strip() == ""


def _policy_and_locked(pid: int) -> tuple[int, int]:
    policy = os.sched_getscheduler(pid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    locked = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmLck:"):
            locked = int(line.split()[1])
    return policy, locked


def test_agent_and_guardian_run_realtime_with_locked_memory(lab: LabCluster):
    """realtime: auto (the default) as root: the agent and its guardian run at SCHED_FIFO
    with their memory locked, so CPU hogs and memory pressure on the VM cannot delay the
    lease path; the processes they start run as ordinary ones (reset on fork)."""
    c = lab
    c.start_pair()
    agent = c.procs["vm1-agent"].pid
    for pid in (agent, guardian_pid(c, "vm1")):
        policy, locked = _policy_and_locked(pid)
        assert policy == os.SCHED_FIFO, f"pid {pid} runs with policy {policy}"
        assert os.sched_getparam(pid).sched_priority == 10
        assert locked > 0, f"pid {pid} has no locked memory"
        # every thread, not only the main one (the lease path runs in threads; with
        # SCHED_RESET_ON_FORK on the main thread they used to start ordinary)
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                tid = int(task.name)
                assert _policy_and_locked(tid)[0] == os.SCHED_FIFO, \
                    f"thread {tid} ({(task / 'comm').read_text().strip()}) of {pid} ordinary"
    svc = c.procs["vm1-svc"].pid  # not started by the agent: an ordinary process
    assert _policy_and_locked(svc)[0] == os.SCHED_OTHER


def test_hung_notify_hook_fail_stops_its_member(lab: LabCluster):
    """The active's notify hook hangs (the VNFC never learns its role): the agent kills
    it at its timeout, releases the role and reports the member unhealthy, so the
    standby takes over; on the old agent the hook was only logged after 10 s and the
    member stayed "active, healthy" however long the VNFC stayed unaware."""
    c = lab
    hook = c.root / "hook.sh"
    hook.write_text('#!/bin/sh\n[ "$1" = active ] && exec sleep 30\nexit 0\n')
    hook.chmod(0o755)
    c.start_coordinators()
    c.start_service("vm1")
    cfg = c.agent_config("vm1", 200)
    cfg["members"][0].update(notify=str(hook), notify_timeout=1.0)
    path = c.root / "vm1-agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c._spawn("vm1-agent", "vm1", [sys.executable, "-m", "vnfha.coordinator.cli", "agent",
                                   "--config", str(path)])
    c.wait_active("web-1", 20)
    c.start_service("vm2")
    c.start_agent("vm2", 100)
    checker = VipChecker(c).start()
    c.wait_active("web-2", 20)
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "the VIP on vm2")
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"
    assert member(c, "web-1").health != HEALTHY
    text = (c.root / "vm1-agent.log").read_text()
    assert "notify hook hung: killed" in text and "Traceback" not in text
