"""Failsafe on the coordinators' side: the cluster-wide setting, the peers delivered with
assignments, and decide rule 9 (a group none of whose members is heard is left alone; a
lost active is acted on only when another member vouches, or after the rejoin grace)."""

from __future__ import annotations

import pytest
from cluster_builders import build, run
from scenario import TTL, Scenario, ops

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health, state_from_dict, state_to_dict
from vnfha.coordinator.service.agent import assignments_for
from vnfha.coordinator.state_machine import apply

LEASE_MS = 2000
GRACE = LEASE_MS / 1000 + TTL
PORT = 7701  # every node's failsafe listener (rule 9 needs them on the other members)


def failsafe(sc: Scenario, lease_ms: int = LEASE_MS) -> Scenario:
    sc.submit(C.set_failsafe(lease_ms))
    return sc


def outage(sc: Scenario, seconds: float) -> None:
    """Every agent is cut off from the coordinators: nothing heard for `seconds`."""
    sc.keepalive_all()
    sc.step()
    sc.advance(seconds)


@pytest.mark.parametrize("on", [True, False])
def test_a_group_nobody_hears_is_left_alone_only_with_failsafe(on):
    sc = Scenario(build(active="a", failsafe_port=PORT))
    if on:
        failsafe(sc)
    outage(sc, 3 * TTL)
    cmds = ops(sc.step())
    if on:
        assert cmds == [], "a coordinator outage is not the group's failure"
        assert sc.group().active == "a" and sc.group().epoch == 1
        assert all(m.health == Health.HEALTHY for m in sc.group().members.values())
    else:  # what happens without failsafe: everyone LOST, the active demoted
        assert ("demote", "handover=None", "quarantine") in cmds
        assert sc.group().active is None


def test_rejoin_waits_the_grace_before_replacing_a_silent_active():
    """The coordinators come back; the standbys reconnect first. The active may still
    serve under the failsafe leases they gave before they heard the coordinators, and
    is itself about to reconnect: no failover before the grace."""
    sc = failsafe(Scenario(build(active="a", failsafe_port=PORT)))
    outage(sc, 3 * TTL)
    sc.keepalive("n2", "n3")
    assert sc.step() == []
    for _ in range(int(GRACE / (TTL / 2)) - 1):
        sc.advance(TTL / 2)
        sc.keepalive("n2", "n3")
        assert sc.step() == [], f"acted {sc.now - 100:.1f}s in, within the grace"
    # The active reconnects in time: nothing to do, ever.
    sc.keepalive("n1")
    assert sc.step() == []
    sc.advance(GRACE)
    sc.keepalive_all()
    assert sc.step() == [] and sc.group().active == "a" and sc.group().epoch == 1


def test_an_active_that_never_comes_back_is_replaced_after_the_grace():
    sc = failsafe(Scenario(build(active="a", failsafe_port=PORT)))
    outage(sc, 3 * TTL)
    sc.keepalive("n2", "n3")
    back = sc.now
    assert sc.step() == []
    while sc.now < back + GRACE:
        sc.advance(TTL / 2)
        sc.keepalive("n2", "n3")
        cmds = ops(sc.step())
        if cmds:
            break
    assert sc.now >= back + GRACE
    assert cmds == [("promote", "b", "replace=a")]


def test_a_crash_with_the_standbys_heard_throughout_fails_over_as_without_failsafe():
    sc = failsafe(Scenario(build(active="a", failsafe_port=PORT)))
    sc.keepalive_all()
    sc.step()
    sc.advance(TTL / 2)
    sc.keepalive("n2", "n3")  # n1 went silent
    sc.advance(TTL / 2 + 0.01)
    sc.keepalive("n2", "n3")
    assert ops(sc.step()) == [("promote", "b", "replace=a")]


def test_a_group_going_dark_within_one_ttl_is_not_a_failure_of_its_active():
    """The standby's last keepalive reached the leader a moment after the active's (the
    cut is not simultaneous): it is still fresh when the active expires, but it was not
    heard after the active's lease ended, so it does not vouch."""
    sc = failsafe(Scenario(build(active="a", failsafe_port=PORT)))
    sc.keepalive_all()
    sc.step()
    sc.advance(0.05)
    sc.keepalive("n2", "n3")  # the last the leader hears from anyone
    sc.advance(TTL - 0.04)  # a is past its TTL, b and c are fresh
    assert sc.step() == []
    sc.advance(3 * TTL)
    assert sc.step() == [] and sc.group().active == "a"


def test_setting_is_replicated_validated_and_an_event():
    st = build(active="a")
    st2, res = apply(st, C.set_failsafe(1500))
    assert res["ok"] and res["changed"] and st2.failsafe_lease_ms == 1500
    assert st2.events[-1].kind == "failsafe_on"
    assert state_from_dict(state_to_dict(st2)).failsafe_lease_ms == 1500
    _, again = apply(st2, C.set_failsafe(1500))
    assert again["ok"] and not again["changed"]
    st3, _ = apply(st2, C.set_failsafe(0))
    assert st3.failsafe_lease_ms == 0 and st3.events[-1].kind == "failsafe_off"
    for bad in (-1, C.MAX_FAILSAFE_LEASE_MS + 1):
        _, r = apply(st, C.set_failsafe(bad))
        assert not r["ok"] and "lease_ms" in r["message"]


def test_assignments_carry_the_peers_and_their_endpoints_only_with_failsafe_on():
    st = build(active="a")
    st = run(st, C.register_node("n2", "198.18.0.12", [{"group": "g", "member": "b",
                                                        "priority": 90}],
                                 failsafe_endpoint="198.18.0.12:7701"))
    assert state_from_dict(state_to_dict(st)).nodes["n2"].failsafe_endpoint \
        == "198.18.0.12:7701"
    (a,) = assignments_for(st, "n1")
    assert a.failsafe_lease_ms == 0 and not a.peers
    st = run(st, C.set_failsafe(LEASE_MS))
    (a,) = assignments_for(st, "n1")
    assert a.failsafe_lease_ms == LEASE_MS
    assert [(p.member, p.node, p.endpoint, p.active) for p in a.peers] == [
        ("b", "n2", "198.18.0.12:7701", False), ("c", "n3", "", False)]
    (b,) = assignments_for(st, "n2")
    assert [(p.member, p.active) for p in b.peers] == [("a", True), ("c", False)]


@pytest.mark.parametrize("endpoint", ["nohost", "198.18.0.1:0", "198.18.0.1:99999",
                                      "::1:80", "[198.18.0.1]:80", "bad host:1"])
def test_a_bad_failsafe_endpoint_is_refused(endpoint):
    st = build(active="a")
    _, r = apply(st, C.register_node("n2", "", [{"group": "g", "member": "b"}],
                                     failsafe_endpoint=endpoint))
    assert not r["ok"] and "endpoint" in r["message"]


def _without_listener(st, node: str):
    """Re-register `node` without a failsafe listener (its members unchanged)."""
    existing = [{"group": m.group, "member": m.name, "priority": m.priority}
                for m in st.members_on(node)]
    return run(st, C.register_node(node, st.nodes[node].address, existing))


@pytest.mark.parametrize("case", ["lone member", "a standby without a listener"])
def test_rule_9_applies_only_where_failsafe_could_keep_the_active(case):
    """Failsafe is on by default: where no failsafe lease can keep the active (no other
    member to grant, or another member's node has no listener to ask), a group nobody
    hears is handled as without failsafe (LOST, demoted), not left alone for ever."""
    if case == "lone member":
        st = build((("a", "n1", 100),), active="a", failsafe_port=PORT)
    else:
        st = _without_listener(build(active="a", failsafe_port=PORT), "n3")
    sc = failsafe(Scenario(st))
    outage(sc, 3 * TTL)
    cmds = ops(sc.step())
    assert ("demote", "handover=None", "quarantine") in cmds
    assert sc.group().active is None


def test_a_new_cluster_starts_with_failsafe_on_and_off_is_kept():
    """Stores start from StateMachine(): failsafe on with the default lease. The setting
    is always stored, off included; a stored state without it (written before it was
    always stored) reads as the default, as a replica replaying the log from an empty
    state would have it."""
    from vnfha.coordinator.model import DEFAULT_FAILSAFE_LEASE_MS
    from vnfha.coordinator.state_machine import StateMachine

    sm = StateMachine()
    assert sm.state.failsafe_lease_ms == DEFAULT_FAILSAFE_LEASE_MS == 1000
    assert sm.apply(C.set_failsafe(0))["changed"]
    snap = sm.snapshot()
    assert snap["state"]["failsafe_lease_ms"] == 0
    again = StateMachine()
    again.restore(snap)
    assert again.state.failsafe_lease_ms == 0, "failsafe off must survive a snapshot"
    old = {k: v for k, v in snap["state"].items() if k != "failsafe_lease_ms"}
    assert state_from_dict(old).failsafe_lease_ms == DEFAULT_FAILSAFE_LEASE_MS
