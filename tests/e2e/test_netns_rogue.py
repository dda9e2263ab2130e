"""A rogue with a valid certificate for vm2, in the lab's namespaces (issue 11).

The cluster runs with mTLS (lab/vnfha_lab/labcluster.py). The rogue sits on the
same bridge as the VMs and holds a real certificate for vm2, signed by the
cluster's CA. It must not be able to act for vm1 or as an admin, and forged
keepalives for vm1 must not keep vm1's lease alive once vm1 dies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnfha_lab.labcluster import LabCluster, VipChecker
from vnfha_lab.netlab import Lab

pytestmark = pytest.mark.slow

TTL = 0.3
INTERVAL = 0.075
ROGUE = str(Path(__file__).with_name("rogue.py"))


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCluster]:
    with Lab() as lab:
        c = LabCluster(lab, tmp_path, ttl=TTL, interval=INTERVAL)
        c.hosts["rogue"] = lab.add_host("rogue", ipv4=lab.address(66))
        try:
            c.start_pair()
            c.wait(lambda: c.vip_holders() == {"vm1"}, 10, "the VIP on vm1")
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


def rogue_argv(c: LabCluster, cid: str, *mode: str) -> list[str]:
    return [sys.executable, ROGUE, "--endpoint", c.api[cid], *c.tls_args("node/vm2"), *mode]


def test_rogue_with_vm2_certificate_cannot_act_for_vm1_or_as_admin(cluster: LabCluster):
    c = cluster
    for cid in c.cids:  # every coordinator refuses, leader or not
        r = c.hosts["rogue"].run(rogue_argv(c, cid, "attempts"), timeout=60)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert got == dict.fromkeys(got, "PERMISSION_DENIED") and len(got) == 6, (cid, got)
    g = c.group()
    assert g.active == "web-1" and g.epoch == 1
    assert {m.name: m.priority for m in g.members} == {"web-1": 200, "web-2": 100}
    assert {m.name: m.node for m in g.members} == {"web-1": "vm1", "web-2": "vm2"}
    st = c.status()
    assert st is not None and not any(n.maintenance for n in st.nodes)


def test_forged_keepalives_for_a_dead_active_do_not_stop_the_failover(cluster: LabCluster):
    c = cluster
    checker = VipChecker(c).start()
    # The forgers outlast the wait below: a failover seen in time is not one that only
    # happened once they gave up.
    ready = {cid: c.root / f"forging-{cid}" for cid in c.cids}
    forgers = [c.hosts["rogue"].popen(rogue_argv(c, cid, "forge", "--seconds", "15",
                                                 "--ready-file", str(ready[cid])),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for cid in c.cids]
    try:
        c.wait(lambda: all(p.exists() for p in ready.values()), 30, "the rogue forging")
        c.wait_active("web-1", 5)
        c.crash_vm("vm1")  # dies while the rogue keeps "its" lease alive on every coordinator
        g = c.wait_active("web-2", 5)
        assert g.epoch == 2
        c.wait(lambda: c.vip_holders() == {"vm2"}, 5, "the VIP on vm2")
    finally:
        outs = [p.communicate(timeout=30)[0] for p in forgers]
    log = checker.stop()
    assert log.max_holders <= 1, log.changes
    for out in outs:
        counts = json.loads(out.strip().splitlines()[-1])
        assert counts.get("PERMISSION_DENIED", 0) > 0 and set(counts) == {"PERMISSION_DENIED"}
