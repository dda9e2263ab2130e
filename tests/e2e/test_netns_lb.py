"""Active-active behind an HA pair of real HAProxy load balancers, in network namespaces.

Topology (lab/vnfha_lab/lablb.py): 3 coordinators, 3 backend VMs (service + agent,
members of the active-active group `web`), 2 LB hosts (HAProxy + agent; group
`lb` is active/standby and owns the front VIP), a client probing the VIP every
10 ms. Faults are real: a VM's link goes down and all its processes are SIGKILLed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnfha_lab.lablb import LbLab
from vnfha_lab.netlab import Lab
from vnfha_lab.probe import load_attempts

pytestmark = pytest.mark.slow


def _build(tmp_path: Path, request: pytest.FixtureRequest, **kw) -> Iterator[LbLab]:
    with Lab() as lab:
        c = LbLab(lab, tmp_path, **kw)
        try:
            c.start_all()
            yield c
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print(c.logs_tail(25), file=sys.stderr)
        finally:
            c.close()


@pytest.fixture
def lbc(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LbLab]:
    yield from _build(tmp_path, request)


@pytest.fixture
def lbc_checks(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LbLab]:
    yield from _build(tmp_path, request, backend_checks=True)


def served_by(probe: Path, who: str, after: float) -> bool:
    return any(a.ok and a.who == who and a.at >= after for a in load_attempts(str(probe)))


def test_backend_loss_exclude_recover_rejoin_then_lb_loss(lbc: LbLab):
    c = lbc
    probe = c.start_front_probe(duration=60)
    c.wait(lambda: all(served_by(probe, vm, 0) for vm in c.vms), 10, "all three backends serve")

    # -- a backend VM dies ----------------------------------------------------------------
    fault = c.crash_vm("vm2")
    c.wait(lambda: "web-2" not in c.in_service(), 10, "web-2 excluded")
    c.wait(lambda: c.haproxy_ready("lb1") == {"web-1", "web-3"}
           and c.haproxy_ready("lb2") == {"web-1", "web-3"}, 5, "both HAProxys drop web-2")
    applied = c.excluded_at("lb1", "web-2", fault)
    assert applied is not None
    c.wait(lambda: len(c.hook_calls()) >= 1, 10, "the recovery hook called")

    # After the active LB applied the exclusion, no request fails.
    settle_until = applied + 2.0
    c.wait(lambda: any(a.at > settle_until for a in load_attempts(str(probe))), 5,
           "two more seconds of traffic")
    after = [a for a in load_attempts(str(probe)) if applied <= a.at <= settle_until]
    assert len(after) > 50 and all(a.ok for a in after), [a for a in after if not a.ok][:5]
    assert {a.who for a in after} == {"vm1", "vm3"}
    errors = [a.at for a in load_attempts(str(probe)) if not a.ok and a.at >= fault]
    window = (max(errors) - fault) if errors else 0.0
    assert window < 3.0, f"errors for {window:.3f}s after the fault"

    # The hook: exactly once for this failure, after both LBs applied the exclusion.
    calls = c.hook_calls()
    assert len(calls) == 1, calls
    call = calls[0]
    assert (call["group"], call["member"], call["node"], call["attempt"]) == \
        ("web", "web-2", "vm2", 1)
    assert "lease expired" in call["reason"]
    assert call["called_at"] > applied
    events = c.events()
    kinds = [(e.kind, e.member, e.node) for e in events]
    excluded = kinds.index(("excluded", "web-2", "vm2"))
    failure = events[excluded].epoch
    requested = kinds.index(("recovery_requested", "web-2", "vm2"))
    # Every LB applied the exclusion before the request, unless its node was lost
    # first (a dead LB is not waited for; possible when the machine is overloaded).
    acked = {e.node for e in events[excluded:requested]
             if e.kind == "pool_applied" and e.epoch >= failure}
    lost = {e.node for e in events[:requested]
            if e.kind == "health_changed" and e.member.startswith("lb-") and "-> lost" in e.reason}
    assert "lb1" in acked and acked | lost == {"lb1", "lb2"}, (acked, lost)
    if "lb2" in acked:
        lb2_applied = c.excluded_at("lb2", "web-2", fault)
        assert lb2_applied is not None and call["called_at"] > lb2_applied
    assert kinds.index(("recovery_attempt", "web-2", "vm2")) > requested
    c.wait(lambda: ("recovery_succeeded", "web-2", "vm2") in
           [(e.kind, e.member, e.node) for e in c.events()], 5, "recovery success recorded")

    # -- the VNF manager brings it back: it rejoins after stabilization ------------------
    back = time.time()
    c.revive_vm("vm2")
    c.wait(lambda: "web-2" in c.in_service(), 15, "web-2 back in service")
    c.wait(lambda: served_by(probe, "vm2", back), 10, "client served by vm2 again")
    assert len(c.hook_calls()) == 1  # one failure, one call
    ev = [e for e in c.events() if e.member == "web-2" and e.kind == "pool_admitted"]
    assert ev and ev[-1].reason.startswith("healthy and stable")

    # -- the active LB host dies: lb2 takes the VIP, service resumes ---------------------
    lb_fault = c.crash_vm("lb1")
    c.wait(lambda: c.vip_on() == {"lb2"}, 10, "the front VIP on lb2")
    c.wait(lambda: sum(1 for a in load_attempts(str(probe)) if a.ok and a.at > lb_fault) > 30,
           10, "service through lb2")
    resumed = [a for a in load_attempts(str(probe)) if a.at > lb_fault]
    # Service resumed with the first answer after the outage began: an answer to a
    # request lb1 had in flight when it died can land just after the fault's timestamp,
    # and timing the window from it made this check depend on the failover's duration.
    first_fail = min((a.at for a in resumed if not a.ok), default=lb_fault)
    first_ok = min(a.at for a in resumed if a.ok and a.at > first_fail)
    assert all(a.ok for a in resumed if a.at > first_ok + 0.5)
    assert {a.who for a in resumed if a.ok} >= {"vm1", "vm3"}
    assert len(c.hook_calls()) == 1  # an LB member is active/standby: no pool recovery


def test_lb_as_cluster_manager_haproxy_checks_trigger_exclusion_and_recovery(lbc_checks: LbLab):
    """The VNFC dies but its VM and agent are fine (the agent has no checks of its own):
    only HAProxy's health checks see it. The coordinator still excludes it (drain) and
    requests its recovery; when the service is back, HAProxy sees it up and it rejoins."""
    c = lbc_checks
    probe = c.start_front_probe(duration=40)
    c.wait(lambda: all(served_by(probe, vm, 0) for vm in c.vms), 10, "all three backends serve")
    fault = c.kill("vm3-svc")
    c.wait(lambda: "web-3" not in c.in_service(), 10, "web-3 excluded on HAProxy's word")
    c.wait(lambda: len(c.hook_calls()) == 1, 10, "the recovery hook called")
    call = c.hook_calls()[0]
    assert call["member"] == "web-3" and "load balancer's checks" in call["reason"]
    applied = c.excluded_at("lb1", "web-3", fault)
    assert applied is not None and call["called_at"] > applied
    # Health of the member as its agent sees it never changed: the LB was the judge.
    g = next(g for g in c.status().groups if g.name == "web")
    assert next(m for m in g.members if m.name == "web-3").health == 2  # HEALTHY
    back = time.time()
    c.start_service("vm3")
    c.wait(lambda: "web-3" in c.in_service(), 10, "web-3 back once HAProxy sees it up")
    c.wait(lambda: served_by(probe, "vm3", back), 10, "client served by vm3 again")
    assert len(c.hook_calls()) == 1
