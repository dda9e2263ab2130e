"""Lifecycle operations: pause/resume, manual failover, member reset, node remove and
group delete, in the state machine and in decide (fake clock, scripted agents)."""

from __future__ import annotations

from cluster_builders import GROUP, build, run
from scenario import TTL, Scenario, ops

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import ClusterState, Health, state_from_dict, state_to_dict
from vnfha.coordinator.state_machine import apply


def refused(state: ClusterState, cmd: dict, code: str) -> str:
    """Apply `cmd`, expect refusal with `code` and an unchanged state; the message."""
    new, result = apply(state, cmd)
    assert not result["ok"] and result["error"] == code, result
    assert new is state
    return result["message"]


# ------------------------------------------------------------------ pause / resume


def test_pause_is_an_event_and_survives_a_snapshot():
    st, result = apply(build(active="a"), C.set_paused(True))
    assert result == {"ok": True, "changed": True}
    assert st.paused and st.events[-1].kind == "paused"
    assert state_from_dict(state_to_dict(st)).paused
    st, result = apply(st, C.set_paused(True))
    assert result["changed"] is False
    st = run(st, C.set_paused(False))
    assert not st.paused and st.events[-1].kind == "resumed"
    assert "paused" not in state_to_dict(st)  # old snapshots and new ones read alike


def test_lost_active_is_not_replaced_while_paused_and_is_after_resume():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.set_paused(True))
    sc.advance(TTL * 2).keepalive("n2", "n3")  # n1 went silent long ago
    assert sc.step() == []
    assert sc.group().active == "a"
    sc.advance(TTL * 5).keepalive("n2", "n3")
    assert sc.step() == []
    assert sc.group().active == "a" and sc.group().epoch == 1
    sc.submit(C.set_paused(False))
    sc.advance(0.05).keepalive("n2", "n3")
    assert ops(sc.step()) == [("promote", "b", "replace=a")]
    assert sc.group().active == "b"


def test_unhealthy_active_stays_and_standby_health_still_recorded_while_paused():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.set_paused(True))
    sc.advance(0.1).health("a", Health.UNHEALTHY).health("c", Health.UNHEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "a", "unhealthy"), ("set_health", "c", "unhealthy")]
    assert sc.group().active == "a"  # no demotion while paused
    sc.submit(C.set_paused(False))
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step())[0] == ("demote", "handover=b", "quarantine")


def test_switchover_in_flight_completes_while_paused():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.switchover(GROUP, "b"))
    sc.submit(C.set_paused(True))
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("confirm_release", "a"), ("promote", "b")]
    assert sc.group().active == "b"


def test_group_without_active_is_not_elected_while_paused():
    sc = Scenario(build())
    sc.submit(C.set_paused(True))
    sc.keepalive_all()
    assert sc.step() == []
    sc.submit(C.set_paused(False))
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("promote", "a")]


# ------------------------------------------------------------------ failover


def test_failover_hands_over_release_before_promote():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    result = sc.submit(C.failover(GROUP, "c"))
    assert result["ok"]
    g = sc.group()
    assert g.active is None and g.releasing == "a" and g.handover_to == "c"
    # a has not released: promoting c now would make two actives; the state machine
    # refuses it, whoever asks.
    _, res = apply(sc.state, C.promote(GROUP, "c", g.epoch, reason="test"))
    assert not res["ok"] and res["error"] == "conflict"
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("confirm_release", "a"), ("promote", "c")]


def test_failover_refusals_leave_the_state_unchanged():
    st = build(active="a")
    assert "already the active" in refused(st, C.failover(GROUP, "a"), "conflict")
    refused(st, C.failover(GROUP, "ghost"), "unknown_member")
    refused(st, C.failover("nope", "b"), "unknown_group")
    st = run(st, C.set_health(GROUP, "b", Health.UNHEALTHY))  # quarantines b too
    for force in (False, True):
        msg = refused(st, C.failover(GROUP, "b", force=force), "not_eligible")
        assert "unhealthy" in msg
    st = run(st, C.set_health(GROUP, "c", Health.LOST))
    refused(st, C.failover(GROUP, "c", force=True), "not_eligible")
    st = run(st, C.set_health(GROUP, "b", Health.HEALTHY))  # healthy, still quarantined
    msg = refused(st, C.failover(GROUP, "b"), "not_eligible")
    assert "not yet stable" in msg and "--force" in msg
    st = run(st, C.set_maintenance("n2", True))
    refused(st, C.failover(GROUP, "b", force=True), "not_eligible")


def test_forced_failover_to_quarantined_member_clears_it_and_hands_over():
    st = build(active="a")
    st = run(st, C.set_health(GROUP, "b", Health.UNHEALTHY),
             C.set_health(GROUP, "b", Health.HEALTHY))
    assert st.groups[GROUP].members["b"].quarantined
    st, result = apply(st, C.failover(GROUP, "b", force=True))
    assert result["ok"]
    g = st.groups[GROUP]
    assert not g.members["b"].quarantined and g.releasing == "a" and g.handover_to == "b"
    assert [e.kind for e in st.events[-2:]] == ["quarantine_cleared", "demoted"]
    # A second failover while the first is in flight is refused: one handover at a time.
    refused(st, C.failover(GROUP, "c"), "conflict")


def test_failover_in_group_without_active_is_promoted_by_the_leader_stamped():
    """The command only names the successor: a promotion committed straight from it would
    carry no lease generation, and an agent claims an unstamped assignment under any
    generation, which reopens the stale re-claim gap that generations close (rule 10)."""
    sc = Scenario(build())
    sc.submit(C.set_paused(True))  # nobody is elected on its own meanwhile
    result = sc.submit(C.failover(GROUP, "c"))
    assert result["ok"]
    g = sc.group()
    assert g.active is None and g.handover_to == "c"
    assert sc.state.events[-1].kind == "failover_requested"
    assert sc.submit(C.failover(GROUP, "c"))["changed"] is False  # idempotent
    c = sc.agent("c")
    c.generation, c.leased = 0x5EED, False  # c's agent reports no running lease yet
    sc.keepalive_all()
    assert sc.step() == []  # not promoted on a lease it does not hold
    c.leased = True
    sc.advance(0.05).keepalive_all()
    cmds = sc.step()
    assert ops(cmds) == [("promote", "c")]
    assert cmds[0]["generation"] == 0x5EED


# ------------------------------------------------------------------ member reset


def test_clear_quarantine_is_member_reset():
    st = run(build(), C.set_health(GROUP, "b", Health.UNHEALTHY))
    st, result = apply(st, C.clear_quarantine(GROUP, "b"))
    assert result == {"ok": True, "changed": True}
    assert not st.groups[GROUP].members["b"].quarantined
    refused(st, C.clear_quarantine(GROUP, "ghost"), "unknown_member")


# ------------------------------------------------------------------ node remove


def test_remove_node_refused_while_active_unless_forced_then_drained_first():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    msg = refused(sc.state, C.remove_node("n1"), "conflict")
    assert "--force" in msg
    refused(sc.state, C.remove_node("n9"), "unknown_node")
    result = sc.submit(C.remove_node("n1", force=True))
    assert result["removed"] is False and result["pending"] == [GROUP]
    assert sc.group().releasing == "a" and sc.group().handover_to == "b"
    # Still releasing: a second (unforced) removal is refused, nothing is promoted.
    refused(sc.state, C.remove_node("n1"), "conflict")
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("confirm_release", "a"), ("promote", "b")]
    result = sc.submit(C.remove_node("n1"))
    assert result["removed"] is True and result["members"] == [f"{GROUP}/a"]
    assert "n1" not in sc.state.nodes and "a" not in sc.group().members
    assert sc.state.events[-1].kind == "node_removed"
    sc.advance(TTL * 3).keepalive("n2", "n3")
    assert sc.step() == []  # nothing left of n1 to fail


def test_remove_standby_node_at_once():
    st, result = apply(build(active="a"), C.remove_node("n3"))
    assert result["removed"] is True
    assert "c" not in st.groups[GROUP].members


# ------------------------------------------------------------------ group delete


def test_delete_group_refused_while_active_unless_forced_and_nobody_promoted():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    assert "--force" in refused(sc.state, C.delete_group(GROUP), "conflict")
    refused(sc.state, C.delete_group("nope"), "unknown_group")
    result = sc.submit(C.delete_group(GROUP, force=True))
    assert result["removed"] is False and result["pending"] == [GROUP]
    g = sc.group()
    assert g.deleting and g.active is None and g.releasing == "a" and g.handover_to is None
    refused(sc.state, C.promote(GROUP, "b", g.epoch, reason="x"), "conflict")
    refused(sc.state, C.failover(GROUP, "b"), "conflict")
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("confirm_release", "a")]  # and no promotion
    assert sc.step() == []
    assert state_from_dict(state_to_dict(sc.state)).groups[GROUP].deleting
    result = sc.submit(C.delete_group(GROUP))
    assert result["removed"] is True and GROUP not in sc.state.groups
    assert sc.state.events[-1].kind == "group_deleted"


def test_commands_validate():
    for cmd in (C.set_paused(True), C.failover(GROUP, "b", force=True), C.remove_node("n1"),
                C.delete_group(GROUP)):
        C.validate_command(cmd)
    bad = {**C.failover(GROUP, "b"), "force": "yes"}
    st = build()
    new, result = apply(st, bad)
    assert result["error"] == "invalid" and new is st


def test_removed_node_cannot_register_again_until_readmitted():
    st = run(build(active="a"), C.remove_node("n3"))
    assert st.removed_nodes == frozenset({"n3"})
    assert state_from_dict(state_to_dict(st)).removed_nodes == {"n3"}
    members = [{"group": GROUP, "member": "c", "priority": 80}]
    msg = refused(st, C.register_node("n3", "198.18.1.3", members), "conflict")
    assert "node readmit n3" in msg
    st, result = apply(st, C.readmit_node("n3"))
    assert result["changed"] and st.events[-1].kind == "node_readmitted"
    st = run(st, C.register_node("n3", "198.18.1.3", members))
    assert "c" in st.groups[GROUP].members and not st.removed_nodes
    assert apply(st, C.readmit_node("n3"))[1]["changed"] is False


def test_remove_node_takes_its_member_out_of_an_active_active_pool():
    st = build(group="aa")
    st = run(st, C.apply_groups([{"name": "aa", "mode": "active-active",
                                  "vip": "198.18.0.10/24"}]))
    g = st.groups["aa"]
    assert "a" in g.pool
    st = run(st, C.remove_node("n1"))
    g = st.groups["aa"]
    assert "a" not in g.pool and "a" not in g.members
    assert g.pool_version == 2 and g.pool == {"b", "c"}
    assert [e.kind for e in st.events[-3:]] == ["excluded", "member_removed", "node_removed"]
