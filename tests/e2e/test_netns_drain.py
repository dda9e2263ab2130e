"""A stopped agent is a handover, not a failure: SIGTERM to the active's agent (what
`systemctl stop` does with KillMode=mixed) in network namespaces with a real VIP.

Topology as in test_netns_failover.py (lab/vnfha_lab/labcluster.py). A checker polls
every VM's addresses throughout and must never see two VIP holders.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpair import TTL, build_pair, served_by

from vnfha.v1 import admin_pb2, types_pb2
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.probe import gap, load_attempts

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request)


@pytest.fixture
def cluster_checks(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request, checks=True)


def member(c: LabCluster, name: str) -> admin_pb2.MemberStatus:
    g = c.group()
    assert g is not None
    return next(m for m in g.members if m.name == name)


def node(c: LabCluster, name: str) -> admin_pb2.NodeStatus:
    st = c.status()
    assert st is not None
    return next(n for n in st.nodes if n.name == name)


def stop_agent(c: LabCluster, vm: str) -> tuple[float, int]:
    """SIGTERM the agent process alone, as systemd's KillMode=mixed does (not its
    process group: its nft children are not for the signal); (sent at, exit status)."""
    proc = c.procs[f"{vm}-agent"]
    at = time.time()
    os.kill(proc.pid, signal.SIGTERM)
    rc = proc.wait(timeout=10)
    c.procs.pop(f"{vm}-agent")
    return at, rc


def test_sigterm_of_active_agent_hands_over_without_quarantine(cluster: LabCluster):
    c = cluster
    checker = VipChecker(c).start()
    probe = c.start_probe(duration=15)
    c.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    at, rc = stop_agent(c, "vm1")
    assert rc == 0
    c.wait(lambda: c.vip_holders() == {"vm2"}, 5, "VIP on vm2")
    c.wait(lambda: served_by(probe, "vm2", at), 5, "client served by vm2")
    # Long after vm1's lease ran out: a stop, not a failure.
    time.sleep(4 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()
    g = c.group()
    assert g is not None and g.active == "web-2"
    web1 = member(c, "web-1")
    assert not web1.quarantined and web1.health == types_pb2.HEALTH_HEALTHY
    assert node(c, "vm1").stopped
    kinds = [(e.kind, e.member or e.node) for e in c.events()]
    # The switchover path: demoted, released (reported by the agent), then promoted.
    assert kinds.index(("node_stopped", "vm1")) < kinds.index(("demoted", "web-1")) \
        < kinds.index(("released", "web-1")) < kinds.index(("promoted", "web-2"))
    released = [e for e in c.events() if e.kind == "released" and e.member == "web-1"]
    assert "agent confirmed" in released[-1].reason
    assert not [e for e in c.events() if e.kind == "health_changed" and e.member == "web-1"
                and "lost" in e.reason]
    assert gap(load_attempts(str(probe)), "vm2", at) is not None
    # The agent starts again: its node runs again, and it is a standby.
    c.start_agent("vm1", 200)
    c.wait(lambda: not node(c, "vm1").stopped, 10, "vm1 registered again")
    time.sleep(3 * TTL)
    assert c.group().active == "web-2" and c.vip_holders() == {"vm2"}
    # Starting again after a stop is no failure either (its old lease ran out long ago).
    assert not member(c, "web-1").quarantined


def test_sigterm_with_unhealthy_standby_releases_and_never_two_holders(
        cluster_checks: LabCluster):
    c = cluster_checks
    checker = VipChecker(c).start()
    c.kill("vm2-svc")  # the standby's VNFC dies: web-2 is not eligible
    c.wait(lambda: member(c, "web-2").health == types_pb2.HEALTH_UNHEALTHY, 10,
           "web-2 unhealthy")
    _, rc = stop_agent(c, "vm1")
    assert rc == 0
    c.wait(lambda: c.vip_holders() == set(), 5, "vm1 released the VIP")
    g = c.group()
    assert g is not None and not g.active
    assert not member(c, "web-1").quarantined
    # The standby recovers (stable after the stabilization time) and takes over.
    c.start_service("vm2")
    c.wait(lambda: c.vip_holders() == {"vm2"}, 20, "vm2 takes the VIP once healthy")
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()


def test_sigterm_during_switchover_in_flight_never_two_holders(cluster: LabCluster):
    """A switchover to vm2 and a stop of vm1's agent at the same moment."""
    c = cluster
    checker = VipChecker(c).start()
    c.call("Switchover", admin_pb2.SwitchoverRequest(group="web", to_member="web-2",
                                                     wait_ms=1))
    _, rc = stop_agent(c, "vm1")
    assert rc == 0
    c.wait(lambda: c.vip_holders() == {"vm2"}, 5, "VIP on vm2")
    time.sleep(3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()
    assert c.group().active == "web-2"
    assert not member(c, "web-1").quarantined


def test_sigterm_cut_off_from_coordinators_is_bounded_and_safe(cluster: LabCluster):
    """No coordinator answers the drain: the agent still lets go when its lease ends
    (the drain never extends a lease), gives up on the drain within its bound and
    exits; the standby takes over as after any lease expiry."""
    c = cluster
    checker = VipChecker(c).start()
    vm1 = c.hosts["vm1"]
    for cid in c.cids:
        c.lab.cut(vm1, c.hosts[cid])
    _, rc = stop_agent(c, "vm1")
    assert rc == 0
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "VIP on vm2")
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()
    text = (c.root / "vm1-agent.log").read_text()
    assert "no coordinator took the drain" in text
    assert c.group().active == "web-2"
