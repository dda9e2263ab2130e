"""Active-active pools driven by a fake clock: exclude, then (LB applied) recover, rejoin."""

from __future__ import annotations

from dataclasses import replace

from cluster_builders import GROUP, build, run
from scenario import EPS, POLICY, STABILIZATION, TTL, Scenario

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import ClusterState, Health, state_from_dict, state_to_dict
from vnfha.coordinator.state_machine import apply


def aa(lbs: tuple[str, ...] = ("lb1",), **kw) -> ClusterState:
    """Group g active-active with a, b, c (n1-n3) in service; LB nodes host group lbg."""
    st = build(**kw)
    st = run(st, C.apply_groups([{"name": GROUP, "mode": "active-active"}]))
    if lbs:  # the HA load-balancer pair: an active/standby group of its own
        st = build(members=tuple((f"lb-{i + 1}", lb, 100 - i) for i, lb in enumerate(lbs)),
                   group="lbg", state=st, active="lb-1")
    return st


def pool_ops(cmds: list[Command]) -> list[tuple]:
    out = []
    for c in cmds:
        if c["op"] in ("pool_admit", "pool_exclude"):
            out.append((c["op"], c["member"]))
        elif c["op"] == "recovery_update":
            out.append(("recovery", c["member"], c["status"]))
        elif c["op"] == "set_health":
            out.append(("set_health", c["member"], c["health"]))
    return out


def applied(sc: Scenario, node: str, version: int | None = None) -> None:
    """The LB agent on `node` reports the pool version it programmed."""
    g = sc.group()
    sc.submit(C.pool_applied(GROUP, node, g.pool_version if version is None else version))


def test_becoming_active_active_puts_eligible_members_in_service():
    st = build(members=(("a", "n1", 100), ("b", "n2", 90), ("c", "n3", 80)))
    st = run(st, C.set_health(GROUP, "c", Health.UNHEALTHY))
    st = run(st, C.apply_groups([{"name": GROUP, "mode": "active-active"}]))
    g = st.groups[GROUP]
    assert g.pool == {"a", "b"} and g.pool_version == 1
    assert [e.kind for e in st.events][-1] == "pool_seeded"


def test_lost_member_excluded_only_after_quorum_expiry_then_recovery_after_lb_ack():
    sc = Scenario(aa())
    sc.keepalive_all()
    assert sc.step() == []
    last = sc.now
    sc.advance(TTL - EPS).keepalive("n2", "n3", "lb1")  # n1 silent from now on
    assert sc.step() == []
    sc.quorum_expired = frozenset()  # the other coordinators still heard n1
    sc.at(last + TTL + 2 * EPS).keepalive("n2", "n3", "lb1")
    assert sc.step() == []
    sc.quorum_expired = frozenset({"n1"})
    cmds = sc.step()
    assert pool_ops(cmds) == [("set_health", "a", "lost"), ("pool_exclude", "a")]
    g = sc.group()
    assert g.pool == {"b", "c"} and g.pool_version == 2
    rec = g.recoveries["a"]
    assert (rec.status, rec.failure, rec.node) == ("awaiting_lb", 2, "n1")
    # Committed, but the LB has not applied it yet: no recovery request.
    sc.advance(1.0).keepalive("n2", "n3", "lb1")
    assert sc.step() == []
    applied(sc, "lb1", 1)  # an older version is not enough
    assert sc.step() == []
    applied(sc, "lb1", 2)
    assert pool_ops(sc.step()) == [("recovery", "a", "requested")]
    assert sc.group().recoveries["a"].status == "requested"
    assert sc.step() == []  # once


def test_unhealthy_member_excluded_at_once():
    sc = Scenario(aa())
    sc.keepalive_all()
    sc.health("b", Health.UNHEALTHY).keepalive_all()
    assert pool_ops(sc.step()) == [("set_health", "b", "unhealthy"), ("pool_exclude", "b")]
    assert sc.group().recoveries["b"].reason.startswith("member b reported unhealthy")


def test_recovery_waits_for_every_live_lb_but_not_a_dead_one():
    sc = Scenario(aa(lbs=("lb1", "lb2")))
    sc.keepalive_all()
    applied(sc, "lb1")
    applied(sc, "lb2")
    sc.health("a", Health.UNHEALTHY).keepalive_all()
    sc.step()
    applied(sc, "lb1")
    assert sc.step() == []  # lb2 is alive and has not applied it: it could still route to a
    sc.quorum_expired = frozenset({"lb2"})
    sc.advance(TTL + EPS).keepalive("n1", "n2", "n3", "lb1")
    assert ("recovery", "a", "requested") in pool_ops(sc.step())


def test_no_load_balancer_no_recovery_unless_configured():
    sc = Scenario(aa(lbs=()))
    sc.keepalive_all()
    sc.health("a", Health.UNHEALTHY).keepalive_all()
    assert pool_ops(sc.step()) == [("set_health", "a", "unhealthy"), ("pool_exclude", "a")]
    sc.advance(100).keepalive_all()
    assert sc.step() == []
    sc.policy = replace(POLICY, recover_without_lb=True)
    assert pool_ops(sc.step()) == [("recovery", "a", "requested")]


def test_recovered_member_rejoins_only_after_stabilization():
    sc = Scenario(aa())
    sc.keepalive_all()
    sc.health("a", Health.UNHEALTHY).keepalive_all()
    sc.step()
    applied(sc, "lb1")
    sc.step()
    back = sc.advance(1.0).now
    sc.health("a", Health.HEALTHY).keepalive_all()
    assert pool_ops(sc.step()) == [("set_health", "a", "healthy")]
    assert "a" not in sc.group().pool  # healthy, but quarantined
    sc.at(back + STABILIZATION - EPS).keepalive_all()
    assert sc.step() == []
    sc.at(back + STABILIZATION).keepalive_all()
    cmds = sc.step()
    assert [c["op"] for c in cmds] == ["clear_quarantine", "pool_admit"]
    g = sc.group()
    assert g.pool == {"a", "b", "c"} and g.pool_version == 3
    # The recovery was still open (the hook had not reported success): closed now.
    assert g.recoveries["a"].status == "cancelled"


def test_maintenance_drains_without_recovery_and_rejoins_after():
    sc = Scenario(aa())
    sc.keepalive_all()
    sc.submit(C.set_maintenance("n3", True))
    assert pool_ops(sc.step()) == [("pool_exclude", "c")]
    assert "c" not in sc.group().recoveries
    sc.submit(C.set_maintenance("n3", False))
    assert pool_ops(sc.step()) == [("pool_admit", "c")]


def test_new_leader_does_not_request_a_recovery_again():
    sc = Scenario(aa())
    sc.keepalive_all()
    sc.health("a", Health.UNHEALTHY).keepalive_all()
    sc.step()
    applied(sc, "lb1")
    sc.step()
    failure = sc.group().recoveries["a"].failure
    for status in ("attempt", "succeeded"):
        sc.submit(C.recovery_update(GROUP, "a", failure, status))
    sc.advance(1.0).new_leader()
    sc.advance(TTL + EPS).keepalive_all()
    assert sc.step() == []
    assert sc.group().recoveries["a"].status == "succeeded"
    # And the state machine refuses it outright, whoever proposes it.
    _, r = apply(sc.state, C.recovery_update(GROUP, "a", failure, "requested"))
    assert r["error"] == "conflict"


def test_a_second_failure_opens_a_new_recovery():
    sc = Scenario(aa(), policy=replace(POLICY, stabilization=0.0))
    sc.keepalive_all()
    for _ in range(2):
        sc.health("a", Health.UNHEALTHY).keepalive_all()
        sc.step()
        applied(sc, "lb1")
        sc.step()
        rec = sc.group().recoveries["a"]
        sc.submit(C.recovery_update(GROUP, "a", rec.failure, "attempt"))
        sc.submit(C.recovery_update(GROUP, "a", rec.failure, "succeeded"))
        sc.advance(1.0).health("a", Health.HEALTHY).keepalive_all()
        sc.step()
        assert "a" in sc.group().pool
    kinds = [e.kind for e in sc.state.events if e.member == "a"]
    assert kinds.count("recovery_requested") == 2 and kinds.count("excluded") == 2


def test_active_standby_group_has_no_pool():
    sc = Scenario(build(active="a"))
    sc.health("a", Health.UNHEALTHY).keepalive_all()
    cmds = sc.step()
    assert not any(c["op"].startswith(("pool_", "recovery")) for c in cmds)
    assert sc.group().pool == frozenset() and sc.group().pool_version == 0


# --- the state machine's side ------------------------------------------------------------------


def refused(st: ClusterState, cmd: Command, code: str) -> None:
    new, r = apply(st, cmd)
    assert not r["ok"] and r["error"] == code, r
    assert new is st


def test_pool_commands_are_compare_and_set_on_the_version():
    st = aa()
    refused(st, C.pool_exclude(GROUP, "a", 0, reason="t"), "stale_version")
    st = run(st, C.pool_exclude(GROUP, "a", 1, reason="t"))
    refused(st, C.pool_exclude(GROUP, "a", 2, reason="t"), "conflict")  # not in service
    refused(st, C.pool_admit(GROUP, "a", 1, reason="t"), "stale_version")
    st = run(st, C.set_health(GROUP, "b", Health.UNHEALTHY))
    refused(st, C.pool_exclude(GROUP, "a", 2, reason="t") | {"member": "zz"}, "unknown_member")
    st = run(st, C.pool_exclude(GROUP, "b", 2, reason="t"))
    refused(st, C.pool_admit(GROUP, "b", 3, reason="t"), "not_eligible")  # unhealthy
    st = run(st, C.pool_admit(GROUP, "a", 3, reason="t"))
    assert st.groups[GROUP].pool == {"a", "c"} and st.groups[GROUP].pool_version == 4


def test_pool_applied_refuses_lies_and_never_goes_back():
    st = aa()
    refused(st, C.pool_applied(GROUP, "lb1", 5), "invalid")  # ahead of the pool
    refused(st, C.pool_applied(GROUP, "nope", 1), "unknown_node")
    refused(st, C.pool_applied("lbg", "lb1", 0), "conflict")  # not active-active
    st = run(st, C.pool_exclude(GROUP, "a", 1, reason="t"), C.pool_applied(GROUP, "lb1", 2))
    st = run(st, C.pool_applied(GROUP, "lb1", 1))
    assert st.groups[GROUP].lb_applied == {"lb1": 2}


def test_recovery_moves_only_forward():
    st = run(aa(), C.pool_exclude(GROUP, "a", 1, reason="t"))
    refused(st, C.recovery_update(GROUP, "a", 2, "attempt"), "conflict")  # not requested yet
    refused(st, C.recovery_update(GROUP, "a", 9, "requested"), "stale_version")
    refused(st, C.recovery_update(GROUP, "a", 2, "bogus"), "invalid")
    st = run(st, C.recovery_update(GROUP, "a", 2, "requested"),
             C.recovery_update(GROUP, "a", 2, "attempt"),
             C.recovery_update(GROUP, "a", 2, "failed", message="exit 1"),
             C.recovery_update(GROUP, "a", 2, "attempt"),
             C.recovery_update(GROUP, "a", 2, "gave_up", message="limit"))
    rec = st.groups[GROUP].recoveries["a"]
    assert (rec.status, rec.attempts) == ("gave_up", 2)
    refused(st, C.recovery_update(GROUP, "a", 2, "attempt"), "conflict")
    assert state_from_dict(state_to_dict(st)) == st


def test_malformed_pool_commands_are_refused():
    st = aa()
    bad = C.pool_exclude(GROUP, "a", 1, reason="t")
    bad["expect_version"] = "1"
    refused(st, bad, "invalid")
    bad = C.pool_applied(GROUP, "lb1", 1)
    bad["version"] = True
    refused(st, bad, "invalid")
    refused(st, C.pool_exclude("nope", "a", 0, reason="t"), "unknown_group")
