"""A frozen VM: its agent and guardian both SIGSTOPped (kernel running), the way memory
pressure, a stuck storage path or a cgroup freeze stops them. No user-space process
of vnfha runs on it, yet at its lease end it must stop answering for the VIP: the
kernel lease (agents/kernellease.py) drops ARP and every packet to and from the VIP.
On the old code the frozen VM answered ARP and served clients for the whole freeze.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnfha.agents.kernellease import nft_available
from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab, arp_repliers, pids_in_netns
from vnfha_lab.probe import load_attempts

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not nft_available(), reason="needs nft (nftables)")]

TTL = 0.3
INTERVAL = 0.075
FREEZE = 3.0


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    with Lab() as lab:
        c = LabCluster(lab, tmp_path, ttl=TTL, interval=INTERVAL)
        try:
            c.start_pair()
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def guardian_pid(c: LabCluster, vm: str) -> int:
    for pid in pids_in_netns(c.hosts[vm].netns):
        try:
            if b"vnfha.agents.guardian" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError(f"no guardian in {vm}")


def freeze(c: LabCluster, vm: str, sig: signal.Signals, guardian: int) -> float:
    """SIGSTOP/SIGCONT the agent's process group and its guardian (not the VM)."""
    at = c.signal(f"{vm}-agent", sig)
    os.kill(guardian, sig)
    return at


def test_frozen_agent_and_guardian_stop_answering_at_the_lease_end(cluster: LabCluster):
    c = cluster
    vm1_mac = c.hosts["vm1"].mac
    client = c.hosts["client"]
    assert vm1_mac in client.call(arp_repliers, c.vip_addr, client.ip4), "vm1 answers ARP"
    probe = c.start_probe(duration=FREEZE + 6)
    c.wait(lambda: any(a.ok and a.who == "vm1" for a in load_attempts(str(probe))), 5,
           "client served by vm1")
    checker = VipChecker(c).start()
    guardian = guardian_pid(c, "vm1")
    frozen_at = freeze(c, "vm1", signal.SIGSTOP, guardian)
    try:
        # The lease was last renewed by a round sent before the freeze: it ends by
        # frozen_at + TTL at the latest (deadline = sent + ttl(1-drift) - margin).
        lease_end = frozen_at + TTL
        time.sleep(max(0.0, lease_end + 0.2 - time.time()))
        arp_during = client.call(arp_repliers, c.vip_addr, client.ip4)
        time.sleep(max(0.0, frozen_at + FREEZE - time.time()))
    finally:
        freeze(c, "vm1", signal.SIGCONT, guardian)
    c.wait(lambda: c.vip_holders() == {"vm2"}, 10, "the VIP on vm2 only")
    time.sleep(3 * TTL)
    log = checker.stop()
    late = [a for a in load_attempts(str(probe))
            if a.ok and a.who == "vm1" and a.at >= lease_end]
    assert vm1_mac not in arp_during, "the frozen VM answered ARP after its lease end"
    assert late == [], f"{len(late)} client connections answered by the frozen VM"
    assert log.max_holders == 1, f"two VIP holders at once: {log.dual_windows()}"
    assert any(a.ok and a.who == "vm2" for a in load_attempts(str(probe)))
