"""Active/standby failover end to end, in network namespaces with a real VIP.

Topology (lab/vnfha_lab/labcluster.py): 3 coordinators, 2 VMs (agent + TCP
service each), 1 client probing the VIP, all on one bridge in 198.18.0.0/24.
A checker polls every VM's addresses throughout each test. Faults are real:
SIGKILL, SIGSTOP, nftables drops in the switch, link down.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpair import TTL, build_pair, served_by

from vnfha.agents.sdk import RoleClient
from vnfha.v1 import admin_pb2
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.probe import load_attempts, outage

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request)


@pytest.fixture
def cluster_checks(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request, checks=True)


@pytest.fixture
def cluster6(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request, ipv6=True)


def test_crash_of_active_vm_moves_vip_and_service(cluster: LabCluster):
    checker = VipChecker(cluster).start()
    probe = cluster.start_probe(duration=15)
    cluster.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    before = cluster.group().epoch
    fault = cluster.crash_vm("vm1")
    cluster.wait(lambda: "vm2" in cluster.vip_holders(), 10, "vm2 holds the VIP")
    cluster.wait(lambda: served_by(probe, "vm2", fault), 5, "client served by vm2")
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 5, "VIP gone from the dead VM")
    log = checker.stop()
    # The agent's guardian removed the dead agent's VIP before vm2 claimed it.
    assert log.max_holders == 1, log.changes
    g = cluster.group()
    # Usually epoch 2; a lease that lapsed on this loaded machine re-promotes its holder
    # under the new lease (rule 10), one epoch more, without moving anything.
    assert g.active == "web-2" and g.epoch > before, (g.active, g.epoch, before)
    took = outage(load_attempts(str(probe)), fault, "vm2")
    assert took is not None and took > 0


def test_partitioned_active_drops_vip_before_standby_claims(cluster: LabCluster):
    checker = VipChecker(cluster).start()
    vm1 = cluster.hosts["vm1"]
    cluster.lab.cut(vm1)  # vm1 hears nobody and nobody hears vm1
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 10, "VIP moved to vm2")
    time.sleep(3 * TTL)
    cluster.lab.heal()
    # Back in touch: vm1 rejoins as a standby, the VIP stays on vm2.
    cluster.wait(lambda: next(m for m in cluster.group().members
                              if m.name == "web-1").health == 2, 10, "web-1 healthy again")
    time.sleep(3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"
    assert cluster.vip_holders() == {"vm2"}
    assert cluster.group().active == "web-2"


def test_leader_and_active_in_the_minority_never_two_holders(cluster: LabCluster):
    leader = cluster.leader()
    assert leader is not None
    checker = VipChecker(cluster).start()
    minority = [cluster.hosts[leader], cluster.hosts["vm1"]]
    majority = [cluster.hosts[c] for c in cluster.cids if c != leader] + [cluster.hosts["vm2"]]
    for a in minority:
        for b in majority:
            cluster.lab.cut(a, b)
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 15, "VIP moved to the majority side")
    time.sleep(3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"
    st = [cluster.status(c) for c in cluster.cids if c != leader]
    assert any(s is not None and s.coordinator.is_leader for s in st)


def test_sigkilled_agent_on_a_live_vm_leaves_no_second_holder(cluster: LabCluster):
    """Only the agent dies (its VM and network are fine): nobody is left to remove
    the VIP but the agent's guardian, which must do so before vm2 claims it."""
    checker = VipChecker(cluster).start()
    probe = cluster.start_probe(duration=15)
    cluster.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    fault = cluster.kill("vm1-agent")
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 10, "VIP moved to vm2")
    cluster.wait(lambda: served_by(probe, "vm2", fault), 5, "client served by vm2")
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"


def test_sigstopped_agent_does_not_act_as_active_on_waking(cluster: LabCluster):
    checker = VipChecker(cluster).start()
    stopped = cluster.signal("vm1-agent", signal.SIGSTOP)
    try:
        cluster.wait(lambda: "vm2" in cluster.vip_holders(), 10, "vm2 claims the VIP")
        time.sleep(max(0.0, 2 * TTL - (time.time() - stopped)))
    finally:
        cluster.signal("vm1-agent", signal.SIGCONT)
    woke = time.time()
    # On waking its lease is long gone: it must drop the VIP at once, not act.
    cluster.wait(lambda: "vm1" not in cluster.vip_holders(), 2, "vm1 drops the VIP on waking")
    role = RoleClient(str(cluster.root / "vm1-role.sock")).get("web")
    assert not role.active and role.epoch == 0
    assert time.time() - woke < 2
    assert [r for r in cluster.role_changes("vm1") if r["role"] == "active"
            and r["ts"] > woke] == []
    assert cluster.vip_holders() == {"vm2"}
    assert cluster.group().active == "web-2"
    # Frozen, the agent could not drop the VIP: its guardian did, at the lease end.
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"


def test_failing_health_check_fails_over(cluster_checks: LabCluster):
    c = cluster_checks
    checker = VipChecker(c).start()
    c.kill("vm1-svc")  # the VNFC dies; its VM and agent are fine
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "VIP moved to vm2")
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()
    kinds = [(e.kind, e.member) for e in c.events()]
    assert kinds.index(("demoted", "web-1")) < kinds.index(("released", "web-1")) \
        < kinds.index(("promoted", "web-2"))


def test_planned_switchover_releases_before_claiming(cluster: LabCluster):
    checker = VipChecker(cluster).start()
    probe = cluster.start_probe(duration=10)
    cluster.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    resp = cluster.call("Switchover", admin_pb2.SwitchoverRequest(group="web",
                                                                  to_member="web-2"))
    assert resp.completed and resp.to_member == "web-2"
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 5, "VIP on vm2")
    cluster.wait(lambda: served_by(probe, "vm2", 0), 5, "client served by vm2")
    log = checker.stop()
    assert log.max_holders == 1, log.dual_windows()


def test_ipv6_vip_fails_over_like_ipv4(cluster6: LabCluster):
    c = cluster6
    checker = VipChecker(c).start()
    probe = c.start_probe(duration=15)
    c.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1 over IPv6")
    fault = c.crash_vm("vm1")
    c.wait(lambda: "vm2" in c.vip_holders(), 10, "vm2 holds the IPv6 VIP")
    c.wait(lambda: served_by(probe, "vm2", fault), 5, "client served by vm2 over IPv6")
    log = checker.stop()
    assert log.max_holders == 1, log.changes
