"""The keepalive fast path in the namespace lab: 3 coordinators, 2 VMs, mTLS, real agents.

nftables in the active VM's own namespace takes one transport away at a time:
* TCP to the coordinators' API port dropped: the gRPC streams stall, the datagrams
  alone must hold the lease (no failover, the VIP stays);
* UDP answers dropped: the agent must notice, keep alive over gRPC, say so once, and
  still lose neither its lease nor its role.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpair import TTL, build_pair

from vnfha_lab.labcluster import API_PORT, LabCluster, VipChecker

pytestmark = pytest.mark.slow

TABLE = "vnfha_fastpath_test"
HOLD = 3.0  # seconds with one transport gone (10 TTLs)


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    yield from build_pair(tmp_path, request)


def opened_everywhere(cluster: LabCluster, node: str) -> bool:
    """Every coordinator issued `node` a fast-path key (its log says so)."""
    for cid in cluster.cids:
        path = cluster.root / f"{cid}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if not any(_is_open_line(line, node) for line in text.splitlines()):
            return False
    return True


def _is_open_line(line: str, node: str) -> bool:
    try:
        doc = json.loads(line)
    except ValueError:
        return False
    return doc.get("msg", doc.get("message")) == "fast path session opened" \
        and doc.get("node") == node


def block(cluster: LabCluster, vm: str, proto: str) -> None:
    """TCP: drop what `vm` sends to the coordinators' API port. UDP: drop the answers
    coming back (the coordinators still hear every datagram, the agent hears nothing:
    the most misleading half-open case a firewall can make; a local drop of what the
    agent sends fails its sendto at once, which is the easy case)."""
    host = cluster.hosts[vm]
    hook, match = ("output", f"tcp dport {API_PORT}") if proto == "tcp" else \
        ("input", f"udp sport {API_PORT}")
    for cmd in (f"add table inet {TABLE}",
                f"add chain inet {TABLE} c {{ type filter hook {hook} priority 0 ; }}",
                f"add rule inet {TABLE} c {match} drop"):
        host.run(["nft", cmd], check=True)


def unblock(cluster: LabCluster, vm: str) -> None:
    cluster.hosts[vm].run(["nft", f"delete table inet {TABLE}"])


def agent_lines(cluster: LabCluster, vm: str, msg: str) -> int:
    path = cluster.root / f"{vm}-agent.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(1 for line in text.splitlines() if msg in line)


def hold_without(cluster: LabCluster, proto: str) -> None:
    cluster.wait(lambda: opened_everywhere(cluster, "vm1"), 15, "vm1 on the fast path")
    g0 = cluster.group()
    assert g0 is not None and g0.active == "web-1"
    releases = len([r for r in cluster.role_changes("vm1") if not r.get("active")])
    checker = VipChecker(cluster).start()
    block(cluster, "vm1", proto)
    try:
        time.sleep(HOLD)
        g = cluster.group()
        assert g is not None
        assert (g.active, g.epoch) == ("web-1", g0.epoch), "failed over"
        assert cluster.vip_holders() == {"vm1"}
    finally:
        unblock(cluster, "vm1")
        log = checker.stop()
    assert log.max_holders == 1
    # The VIP never left vm1: its lease never ran out.
    assert all(h == frozenset({"vm1"}) for _, h in log.changes), log.changes
    assert len([r for r in cluster.role_changes("vm1") if not r.get("active")]) == releases


def test_datagrams_alone_hold_the_lease_when_tcp_is_blocked(cluster: LabCluster):
    hold_without(cluster, "tcp")
    assert agent_lines(cluster, "vm1", "keepalive fast path gets no answers") == 0


def test_blocked_udp_falls_back_to_grpc_without_failover(cluster: LabCluster):
    hold_without(cluster, "udp")
    # Said once, not once per round or per coordinator.
    assert agent_lines(cluster, "vm1", "keepalive fast path gets no answers") == 1
    time.sleep(2 * TTL)
    g = cluster.group()
    assert g is not None and g.active == "web-1"


def opened_count(cluster: LabCluster, cid: str, node: str) -> int:
    path = cluster.root / f"{cid}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(1 for line in text.splitlines() if _is_open_line(line, node))


def test_restarted_coordinator_gets_a_new_key_without_failover(cluster: LabCluster):
    """A restart forgets every key: the agents open new ones; nobody lapses meanwhile."""
    cluster.wait(lambda: opened_everywhere(cluster, "vm1"), 15, "vm1 on the fast path")
    g0 = cluster.group()
    assert g0 is not None
    checker = VipChecker(cluster).start()
    before = {vm: opened_count(cluster, "c2", vm) for vm in ("vm1", "vm2")}
    cluster.kill("c2")
    cluster.start_coordinator("c2")
    cluster.wait(lambda: all(opened_count(cluster, "c2", vm) > before[vm]
                             for vm in ("vm1", "vm2")), 30, "both agents re-opened on c2")
    time.sleep(1.0)
    log = checker.stop()
    g = cluster.group()
    assert g is not None and (g.active, g.epoch) == ("web-1", g0.epoch)
    assert all(h == frozenset({"vm1"}) for _, h in log.changes), log.changes
