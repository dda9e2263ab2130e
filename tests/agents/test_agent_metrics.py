"""Agent metrics and /readyz over fixed snapshots, the ack counter of the lease, and
the agent config's `metrics:` section."""

from __future__ import annotations

from typing import Any

import pytest

from vnfha.agents.config import parse_agent_config
from vnfha.agents.lease import QuorumLease
from vnfha.agents.metrics import AgentView, MemberView, ready, view_metrics
from vnfha.coordinator.confparse import ConfigError

BASE: dict[str, Any] = {
    "node": "vm1",
    "coordinators": ["127.0.0.1:7401"],
    "members": [{"group": "web", "member": "web-1"}],
}


def samples(view: AgentView) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in view_metrics(view) for s in fam.samples}


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def member(active: bool, vip_present: bool, vip: str = "198.18.0.100/24",
           healthy: bool = True) -> MemberView:
    return MemberView(group="web", member="web-1", active=active, seen_epoch=4,
                      active_epoch=4 if active else 0, healthy=healthy, vip=vip,
                      vip_present=vip_present)


def view(deadline: float | None, *members: MemberView) -> AgentView:
    return AgentView(node="vm1", now=100.0, lease_deadline=deadline,
                     acks_by={"c1": 10, "c2": 7}, members=members)


def test_active_agent_with_its_vip_shows_lease_role_and_vip():
    v = view(100.25, member(active=True, vip_present=True))
    s = samples(v)
    assert s[key("vnfha_agent_lease_remaining_seconds")] == pytest.approx(0.25)
    assert s[key("vnfha_agent_lease_valid")] == 1
    assert s[key("vnfha_agent_keepalive_acks_total", coordinator="c1")] == 10
    assert s[key("vnfha_agent_keepalive_acks_total", coordinator="c2")] == 7
    assert s[key("vnfha_agent_member_role", group="web", member="web-1", role="active")] == 1
    assert s[key("vnfha_agent_member_role", group="web", member="web-1", role="standby")] == 0
    assert s[key("vnfha_agent_seen_epoch", group="web", member="web-1")] == 4
    assert s[key("vnfha_agent_vip_held", group="web", vip="198.18.0.100/24")] == 1
    assert s[key("vnfha_agent_member_healthy", group="web", member="web-1")] == 1
    assert s[key("vnfha_agent_ready")] == 1
    assert ready(v) == (True, "active: web/web-1")


def test_an_expired_lease_shows_zero_remaining_and_is_not_ready():
    v = view(99.0, member(active=False, vip_present=False))
    s = samples(v)
    assert s[key("vnfha_agent_lease_remaining_seconds")] == 0
    assert s[key("vnfha_agent_lease_valid")] == 0
    ok, why = ready(v)
    assert not ok and "no lease" in why
    assert not ready(view(None, member(active=False, vip_present=False)))[0]


@pytest.mark.parametrize("active,present,ok,why", [
    (False, False, True, "lease held"),
    (True, True, True, "active: web/web-1"),
    (False, True, False, "VIP 198.18.0.100/24 configured but not active"),
    (True, False, False, "active but VIP 198.18.0.100/24 not configured"),
])
def test_ready_wants_the_vip_exactly_where_the_role_is(active, present, ok, why):
    got_ok, got_why = ready(view(101.0, member(active=active, vip_present=present)))
    assert got_ok == ok and why in got_why


def test_an_agent_without_members_needs_no_lease():
    assert ready(view(None)) == (True, "lease held")


def test_a_member_without_vip_has_no_vip_series():
    s = samples(view(101.0, member(active=True, vip_present=False, vip="")))
    assert not [k for k in s if k[0] == "vnfha_agent_vip_held"]
    assert s[key("vnfha_agent_ready")] == 1


def test_lease_counts_acks_per_coordinator_even_below_quorum():
    lease = QuorumLease(coordinators=3, ttl=1.0)
    lease.sent(1, 10.0)
    assert not lease.acked(1, "c1", 1000)  # one of three: no lease yet
    assert lease.acked(1, "c2", 1000)
    lease.acked(99, "c3", 1000)  # an ack for a round never sent: not counted
    assert lease.acks_by == {"c1": 1, "c2": 1}


def test_agent_metrics_config_is_off_by_default_and_refuses_an_open_listener():
    assert parse_agent_config(BASE).metrics.listen is None
    c = parse_agent_config({**BASE, "metrics": {"listen": "127.0.0.1:9402"}})
    assert c.metrics.listen == "127.0.0.1:9402"
    with pytest.raises(ConfigError, match=r"vm1\.yaml: metrics\.listen \(198\.18\.0\.11:9402\) "
                                          r"is not a loopback address"):
        parse_agent_config({**BASE, "metrics": {"listen": "198.18.0.11:9402"}},
                           source="vm1.yaml")


def kept(deadline: float = 100.5, grants: tuple[str, ...] = ("web-2",),
         *members: MemberView) -> AgentView:
    """vm1's lease ran out (no coordinator quorum); web-1 is kept on failsafe grants."""
    return AgentView(node="vm1", now=100.0, lease_deadline=99.0,
                     members=members or (member(active=True, vip_present=True),),
                     failsafe_engaged=("web",), failsafe_engagements={"web": 1},
                     failsafe_grants={"web": grants} if grants else {},
                     failsafe_deadline=deadline)


def test_an_active_kept_on_a_full_set_of_failsafe_grants_is_ready_and_says_failsafe():
    """Issue 16: while the coordinators are unreachable the active serves on failsafe
    leases; /readyz says what is true: ready, because of failsafe, from whom."""
    v = kept()
    ok, why = ready(v)
    assert ok, why
    assert why == ("failsafe: no coordinator quorum; active on failsafe leases: "
                   "web/web-1 (from web-2)")
    s = samples(v)
    assert s[key("vnfha_agent_ready")] == 1
    assert s[key("vnfha_agent_lease_valid")] == 0
    assert s[key("vnfha_agent_failsafe_engaged", group="web")] == 1
    assert s[key("vnfha_agent_failsafe_grants_held", group="web")] == 1
    assert s[key("vnfha_agent_failsafe_engagements_total", group="web")] == 1


@pytest.mark.parametrize(("v", "why"), [
    (kept(deadline=99.9), "no lease"),  # the grants ended: failsafe keeps nothing now
    (kept(grants=()), "no lease"),  # engaged, but no grant runs
    (kept(100.5, ("web-2",), member(active=True, vip_present=True),
          MemberView(group="db", member="db-2", active=False, seen_epoch=2,
                     active_epoch=0, healthy=True)),
     "no lease"),  # a standby without a lease could not take over
    (kept(100.5, ("web-2",), member(active=True, vip_present=False)),
     "active but VIP 198.18.0.100/24 not configured"),
])
def test_failsafe_readiness_needs_live_grants_for_every_member_and_the_vip(v, why):
    ok, reason = ready(v)
    assert not ok and why in reason


def test_grants_held_is_zero_for_an_active_on_its_quorum_lease():
    s = samples(view(100.25, member(active=True, vip_present=True)))
    assert s[key("vnfha_agent_failsafe_grants_held", group="web")] == 0
    assert s[key("vnfha_agent_failsafe_engaged", group="web")] == 0
