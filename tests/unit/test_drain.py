"""A stopped agent is a handover (drain_node), not a failure: decide and the state machine."""

from __future__ import annotations

from cluster_builders import GROUP, build, run
from scenario import TTL, Scenario, ops

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health, state_from_dict, state_to_dict
from vnfha.coordinator.state_machine import apply


def test_drain_hands_over_and_promotes_on_release_without_quarantine():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    result = sc.submit(C.drain_node("n1"))
    assert result["handovers"] == [{"group": GROUP, "member": "a", "to": "b", "epoch": 2}]
    g = sc.group()
    assert g.active is None and g.releasing == "a" and g.handover_to == "b"
    assert sc.state.nodes["n1"].stopped
    # n1 has not released yet: nothing is promoted (release before promote).
    sc.advance(0.1).keepalive("n1", sync=False)
    assert sc.step() == []
    # n1 reports the release: b at once, in the same step.
    sc.advance(0.05).keepalive("n1")
    assert ops(sc.step()) == [("confirm_release", "a"), ("promote", "b")]
    # n1's agent has exited: its lease runs out, which is no failure.
    sc.advance(TTL * 3).keepalive("n2", "n3")
    assert sc.step() == []
    a = sc.member("a")
    assert a.health == Health.HEALTHY and not a.quarantined
    assert sc.group().active == "b"


def test_stopped_node_is_not_eligible_until_it_registers_again():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.drain_node("n1"))
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("confirm_release", "a"), ("promote", "b")]
    # b fails: c is next, not a (higher priority, but stopped).
    sc.advance(0.1).health("b", Health.UNHEALTHY).keepalive("n2", "n3")
    sc.step()
    sc.advance(0.05).keepalive("n2", "n3")
    sc.step()
    assert sc.group().active == "c"
    # n1's agent starts again, long after its lease ran out. Registered but not yet
    # heard: still stopped, and still no failure (no LOST, no quarantine).
    sc.advance(TTL * 3).keepalive("n2", "n3")
    sc.step()
    members = [{"group": GROUP, "member": "a", "priority": 100}]
    sc.submit(C.register_node("n1", "198.18.1.1", members, remove_undeclared=True))
    assert sc.state.nodes["n1"].stopped and sc.state.nodes["n1"].rejoining
    assert sc.step() == []
    assert not sc.member("a").quarantined and sc.member("a").health == Health.HEALTHY
    # Heard: running again, and a standby (no preemption).
    sc.advance(0.05).keepalive_all()
    assert ops(sc.step()) == [("node_started",)]
    assert not sc.state.nodes["n1"].stopped
    assert sc.state.events[-1].kind == "node_started"
    assert sc.group().active == "c"


def test_drain_without_eligible_standby_demotes_without_successor():
    st = build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a")
    st = run(st, C.set_health(GROUP, "b", Health.UNHEALTHY))
    st, result = apply(st, C.drain_node("n1"))
    assert result["ok"]
    assert result["handovers"] == [{"group": GROUP, "member": "a", "to": "", "epoch": 2}]
    assert st.groups[GROUP].handover_to is None and st.groups[GROUP].releasing == "a"


def test_drain_during_switchover_in_flight_adds_no_second_demotion():
    st = build(active="a")
    st = run(st, C.switchover(GROUP, "b"))
    epoch = st.groups[GROUP].epoch
    st, result = apply(st, C.drain_node("n1"))
    assert result["ok"] and result["handovers"] == []
    g = st.groups[GROUP]
    assert g.epoch == epoch and g.releasing == "a" and g.handover_to == "b"


def test_drain_of_a_standby_node_marks_it_stopped_only():
    st = build(active="a")
    st, result = apply(st, C.drain_node("n2"))
    assert result["ok"] and result["handovers"] == []
    assert st.nodes["n2"].stopped and st.groups[GROUP].active == "a"
    # Kept in snapshots.
    assert state_from_dict(state_to_dict(st)).nodes["n2"].stopped


def test_drain_of_unknown_node_is_refused():
    st = build()
    _, result = apply(st, C.drain_node("nope"))
    assert not result["ok"] and result["error"] == "unknown_node"


def test_a_lost_member_of_a_running_node_is_still_quarantined():
    """The exemption is for stopped nodes only: a crash stays a failure."""
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(TTL * 2).keepalive("n1", "n2")
    sc.step()
    c = sc.member("c")
    assert c.health == Health.LOST and c.quarantined


def test_node_started_needs_a_registration_after_the_stop():
    """The draining agent's own last keepalives must not undo the stop."""
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.drain_node("n1"))
    sc.advance(0.05).keepalive_all()
    sc.step()
    assert sc.state.nodes["n1"].stopped
    _, result = apply(sc.state, C.node_started("n1"))
    assert not result["ok"] and result["error"] == "conflict"


def test_active_active_member_of_a_stopped_node_leaves_the_pool_without_recovery():
    st = build()
    st = run(st, C.apply_groups([{"name": GROUP, "mode": "active-active"}]))
    sc = Scenario(st)
    sc.keepalive_all()
    sc.step()
    assert "c" in sc.group().pool
    sc.submit(C.drain_node("n3"))
    cmds = sc.step()
    assert [(c["op"], c.get("member")) for c in cmds] == [("pool_exclude", "c")]
    assert "c" not in sc.group().pool and "c" not in sc.group().recoveries
    # Its agent has exited: no LOST, no recovery; back once registered and heard.
    sc.advance(TTL * 3).keepalive("n1", "n2")
    assert sc.step() == []
    members = [{"group": GROUP, "member": "c", "priority": 80}]
    sc.submit(C.register_node("n3", "198.18.1.3", members, remove_undeclared=True))
    sc.advance(0.05).keepalive_all()
    assert [(c["op"], c.get("member")) for c in sc.step()] == [("node_started", None),
                                                              ("pool_admit", "c")]
