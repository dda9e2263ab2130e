"""Failsafe end to end (issue 16): losing the coordinators must not take the service down,
and must never allow two actives.

The two-VM lab (tests/e2e/labpair.py): 3 coordinators, vm1 active, vm2 standby, a client
probing the VIP every 10 ms, the VIP checker polling every VM throughout. Faults are
real: kill -9 of every coordinator, nftables drops in the switch. The total outages last
30 s (the issue's judged scenario); bench/failsafe.py measures the client-visible outage
of the same with failsafe on and off. Failsafe is on by default in a new cluster; the
tests still turn it on with their lease, and the control turns it off explicitly.

Each scenario fails without failsafe: with it off (or on the old code) vm1 drops the VIP
one lease after the coordinators go, and the client sees the whole outage.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labpair import TTL, build_pair, served_by

from agents.failsafe_peer import REFUSAL_LOG_EVERY
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.probe import load_attempts

pytestmark = pytest.mark.slow

LEASE = 1.0  # the failsafe lease the tests turn on
# A request fails when the service does not answer within this. Starting three
# coordinators on a loaded 2-core machine stalls everything for tens of ms; a slow
# answer is not an outage (the VIP checker and the role log say whether the VIP moved).
PROBE_TIMEOUT = 0.5
OUTAGE = 30.0  # how long the coordinators are gone (the fault, not an assertion)
METRICS_PORT = 9402  # each agent's /metrics and /readyz, on loopback in its own VM


class ReadyzLab(LabCluster):
    """The pair with every agent's metrics listener on the VM's loopback (/readyz)."""

    def agent_config(self, vm: str, priority: int) -> dict[str, Any]:
        return {**super().agent_config(vm, priority),
                "metrics": {"listen": f"127.0.0.1:{METRICS_PORT}"}}


def _get_readyz(port: int) -> tuple[int, str]:
    """GET /readyz on this namespace's loopback (runs inside the VM)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def readyz(cluster: LabCluster, vm: str) -> tuple[int, str]:
    return cluster.hosts[vm].call(_get_readyz, METRICS_PORT, timeout=10)


def ready_on_failsafe(cluster: LabCluster) -> None:
    """Mid-outage, vm1's /readyz says what is true: it serves, on failsafe grants."""
    code, body = readyz(cluster, "vm1")
    assert code == 200 and body.startswith("ok: failsafe: "), (code, body)
    assert "web/web-1 (from web-2)" in body, body


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    for c in build_pair(tmp_path, request, cls=ReadyzLab):
        c.set_failsafe(LEASE)
        yield c


def failed_after(probe: Path, start: float) -> list:
    return [a for a in load_attempts(str(probe)) if not a.ok and a.at >= start]


def engaged(cluster: LabCluster, vm: str, kind: str = "failsafe_engaged") -> list[dict]:
    return [d for d in cluster.log_lines(f"{vm}-agent") if d.get("kind") == kind]


def kept_through(cluster: LabCluster, probe: Path, fault: float, epoch: int) -> None:
    """The checks every outage shares: served by vm1 alone from one TTL after the fault,
    the same active at the same epoch now, and vm1's role never changed: when the
    coordinators are back, vm1's agent has a new lease generation while it still
    holds the epoch on failsafe leases, and the leader re-stamps it at the same epoch
    (docs/design.md "Failsafe"; issue 16: "the same active, the same epoch")."""
    attempts = [a for a in load_attempts(str(probe)) if a.at >= fault + TTL]
    assert attempts, "the client stopped probing"
    bad = [a for a in attempts if not a.ok]
    assert bad == [], f"{len(bad)} failed requests after the first TTL (first at " \
                      f"{bad[0].at - fault:.2f}s)"
    assert {a.who for a in attempts} == {"vm1"}
    g = cluster.group()
    assert g is not None and (g.active, g.epoch) == ("web-1", epoch)
    changes = [r for r in cluster.role_changes("vm1") if r["ts"] > fault]
    assert changes == [], f"vm1's role changed: {changes}"
    assert engaged(cluster, "vm1"), "vm1 never logged failsafe_engaged"


def test_all_coordinators_killed_the_active_keeps_serving_and_nothing_fails_over(
        cluster: LabCluster):
    checker = VipChecker(cluster).start()
    probe = cluster.start_probe(duration=OUTAGE + 25, timeout=PROBE_TIMEOUT)
    cluster.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    epoch = cluster.group().epoch
    fault = time.time()
    for cid in cluster.cids:
        cluster.kill(cid)  # SIGKILL, process group
    time.sleep(OUTAGE / 2)
    ready_on_failsafe(cluster)
    time.sleep(OUTAGE / 2)
    assert failed_after(probe, fault + TTL) == [], "the service went down with them"
    for cid in cluster.cids:
        cluster.start_coordinator(cid)
    back = time.time()
    cluster.wait(lambda: cluster.leader(), 30, "a leader again")
    # The grace: agents reconnect, vm1 renews its quorum lease; nothing fails over.
    cluster.wait(lambda: engaged(cluster, "vm1", "failsafe_ended"), 15,
                 "vm1 back on its quorum lease")
    time.sleep(LEASE + 3 * TTL)  # past the rejoin grace: a failover would show now
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders: {log.dual_windows()}"
    kept_through(cluster, probe, fault, epoch)
    assert served_by(probe, "vm1", back + LEASE)


def test_coordinators_cut_off_by_nftables_no_failover_when_they_return(cluster: LabCluster):
    """The coordinators keep running (and keep their Raft quorum) but hear no agent: the
    leader must leave the group alone (decide rule 9), not demote the silent active."""
    checker = VipChecker(cluster).start()
    probe = cluster.start_probe(duration=OUTAGE + 25, timeout=PROBE_TIMEOUT)
    cluster.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    epoch = cluster.group().epoch
    fault = time.time()
    cluster.lab.cut_between([cluster.hosts[c] for c in cluster.cids],
                            [cluster.hosts[vm] for vm in cluster.vms])
    time.sleep(OUTAGE / 2)
    ready_on_failsafe(cluster)
    time.sleep(OUTAGE / 2)
    assert failed_after(probe, fault + TTL) == []
    g = cluster.group()
    assert g.active == "web-1" and g.epoch == epoch, "the leader acted on the outage"
    cluster.lab.heal()
    cluster.wait(lambda: engaged(cluster, "vm1", "failsafe_ended"), 15,
                 "vm1 back on its quorum lease")
    time.sleep(LEASE + 3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders: {log.dual_windows()}"
    kept_through(cluster, probe, fault, epoch)


def heard_for_a_lease(cluster: LabCluster, vm: str) -> None:
    """Wait until `vm`'s agent has held a coordinator lease for a whole failsafe lease.
    Before it first hears the coordinators a starting agent grants failsafe as a
    partitioned one would (it cannot tell the two apart; the grant blocks its own
    promotion, so this is safe), and a grant given then stays good for LEASE: a cut
    within it lets the active keep its role on that grant for up to LEASE (one CI run:
    cut 0.8 s after vm2 registered, vm1 engaged failsafe on vm2's grant for 0.5 s)."""
    first = cluster.wait(lambda: next((d["ts"] for d in cluster.log_lines(f"{vm}-agent")
                                       if d.get("msg") == "lease acquired: new lease "
                                       "generation"), None), 20, f"{vm} holding a lease")
    time.sleep(max(0.0, first + LEASE + 0.2 - time.time()))


def test_active_cut_off_from_coordinators_and_standby_drops_and_standby_takes_over(
        cluster: LabCluster):
    """Failsafe must not keep a partitioned active: vm1 hears nobody, so nobody grants;
    it drops within its lease, the coordinators promote vm2, never two holders."""
    before = cluster.wait_active("web-1", 10).epoch
    def refusals(since: float) -> list[dict]:
        return [d for d in cluster.log_lines("vm2-agent")
                if d.get("msg") == "failsafe lease refused" and d["ts"] >= since]

    # At start-up vm1 may ask for grants while its role awaits a re-stamp (a lease
    # lapse under load starts a new generation), and vm2 refuses; vm2 logs a reason once
    # per REFUSAL_LOG_EVERY, so let that settle or the refusal after the cut goes unlogged.
    cluster.wait(lambda: not refusals(time.time() - REFUSAL_LOG_EVERY - 0.5), 20,
                 "no failsafe refusal logged for a while")
    heard_for_a_lease(cluster, "vm2")
    checker = VipChecker(cluster).start()
    cut = time.time()
    cluster.lab.cut(cluster.hosts["vm1"])
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 15, "VIP moved to vm2")
    assert cluster.wait_active("web-2", 10).epoch > before
    time.sleep(3 * TTL)
    cluster.lab.heal()
    time.sleep(LEASE + 3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders: {log.dual_windows()}"
    assert cluster.vip_holders() == {"vm2"}
    assert not [d for d in engaged(cluster, "vm1") if d["ts"] > cut], \
        "vm1 kept its role under failsafe while cut off"


def test_a_standby_that_hears_the_coordinators_refuses_so_a_partitioned_active_drops(
        cluster: LabCluster):
    """vm1 is cut off from the coordinators only; vm2 still hears them and vm1. vm2
    refuses the failsafe lease (it hears a quorum), so vm1 drops as without failsafe and
    vm2 is promoted: failsafe never keeps the minority side's active."""
    before = cluster.wait_active("web-1", 10).epoch
    def refusals(since: float) -> list[dict]:
        return [d for d in cluster.log_lines("vm2-agent")
                if d.get("msg") == "failsafe lease refused" and d["ts"] >= since]

    # At start-up vm1 may ask for grants while its role awaits a re-stamp (a lease
    # lapse under load starts a new generation), and vm2 refuses; vm2 logs a reason once
    # per REFUSAL_LOG_EVERY, so let that settle or the refusal after the cut goes unlogged.
    cluster.wait(lambda: not refusals(time.time() - REFUSAL_LOG_EVERY - 0.5), 20,
                 "no failsafe refusal logged for a while")
    heard_for_a_lease(cluster, "vm2")
    checker = VipChecker(cluster).start()
    cut = time.time()
    cluster.lab.cut_between([cluster.hosts[c] for c in cluster.cids], [cluster.hosts["vm1"]])
    cluster.wait(lambda: cluster.vip_holders() == {"vm2"}, 15, "VIP moved to vm2")
    assert cluster.wait_active("web-2", 10).epoch > before
    after = refusals(cut)
    assert after, "vm2 logged no failsafe refusal after the cut"
    assert "coordinator quorum" in after[0]["reason"], after
    cluster.lab.heal()
    time.sleep(LEASE + 3 * TTL)
    log = checker.stop()
    assert log.max_holders == 1, f"two VIP holders: {log.dual_windows()}"
    assert cluster.vip_holders() == {"vm2"}


@pytest.fixture
def plain(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    """The same lab with failsafe turned off (`vnfha failsafe off`): it is on by default."""
    for c in build_pair(tmp_path, request):
        c.set_failsafe(0)
        yield c


def test_without_failsafe_the_outage_takes_the_service_down(plain: LabCluster):
    """The control: the same kill of every coordinator with failsafe off drops the VIP
    within a lease (what the tests above see on the old code)."""
    probe = plain.start_probe(duration=15, timeout=PROBE_TIMEOUT)
    plain.wait(lambda: served_by(probe, "vm1", 0), 5, "client served by vm1")
    fault = time.time()
    for cid in plain.cids:
        plain.kill(cid)
    plain.wait(lambda: plain.vip_holders() == set(), 10, "the VIP gone")
    plain.wait(lambda: failed_after(probe, fault + TTL), 5, "failed requests")
