"""The state machine: every op's success path and refusals, epochs, dedup, snapshots.

A refusal must leave the state untouched: `apply` returns the very same object.
"""

from __future__ import annotations

import json
import random

import pytest
from cluster_builders import GROUP, THREE, build, run

from vnfha.coordinator import commands as C
from vnfha.coordinator import state_machine as sm_mod
from vnfha.coordinator.model import ClusterState, Health, Member, state_from_dict, state_to_dict
from vnfha.coordinator.state_machine import StateMachine, apply, best_candidate, eligible


def refuse(state: ClusterState, cmd, code: str) -> dict:
    """Apply `cmd`, expect refusal `code`, and that nothing changed."""
    new, result = apply(state, cmd)
    assert result["ok"] is False, result
    assert result["error"] == code, result
    assert isinstance(result["message"], str) and result["message"]
    assert new is state
    return result


def accept(state: ClusterState, cmd) -> tuple[ClusterState, dict]:
    new, result = apply(state, cmd)
    assert result["ok"] is True, result
    assert new.revision == state.revision + 1
    return new, result


def grp(state: ClusterState, name: str = GROUP):
    return state.groups[name]


def mem(state: ClusterState, name: str, group: str = GROUP) -> Member:
    m = state.member(group, name)
    assert m is not None
    return m


def last_event(state: ClusterState):
    return state.events[-1]


# --- apply_groups -------------------------------------------------------------------------------


def test_apply_groups_creates_and_updates():
    st, _ = accept(ClusterState(), C.apply_groups([{"name": "g", "vip": "198.18.0.10/24"},
                                                   {"name": "h", "mode": "active-active"}]))
    assert set(st.groups) == {"g", "h"}
    assert grp(st).vip == "198.18.0.10/24" and grp(st).epoch == 0 and grp(st).active is None
    assert grp(st, "h").mode.value == "active-active"
    assert [e.kind for e in st.events] == ["group_created", "group_created"]
    st2, _ = accept(st, C.apply_groups([{"name": "g", "vip": "198.18.0.11/24"}]))
    assert grp(st2).vip == "198.18.0.11/24"
    assert last_event(st2).kind == "group_updated"


def test_seed_only_creates_missing_groups_and_never_changes_existing_ones():
    """Declared groups (a coordinator's config file) seed the cluster; a run-time change
    survives a restart with an older or different file (issue 15)."""
    st, _ = accept(ClusterState(), C.apply_groups([{"name": "g", "vip": "198.18.0.10/24"}]))
    st, res = accept(st, C.apply_groups([{"name": "g", "vip": "198.18.0.99/24"},
                                         {"name": "h", "vip": "198.18.0.12/24"}],
                                        seed_only=True))
    assert grp(st, "g").vip == "198.18.0.10/24"  # kept as the cluster had it
    assert grp(st, "h").vip == "198.18.0.12/24"  # missing: created
    assert res["kept"] == ["g"]
    _, res = accept(st, C.apply_groups([{"name": "g", "vip": "198.18.0.10/24"}],
                                       seed_only=True))
    assert res["kept"] == []  # same definition: nothing to report


def test_apply_groups_mode_change_refused_with_active():
    st = build(active="a")
    refuse(st, C.apply_groups([{"name": GROUP, "mode": "active-active"}]), "conflict")
    # Without an active the mode may change.
    st0 = build()
    st1, _ = accept(st0, C.apply_groups([{"name": GROUP, "mode": "active-active"}]))
    assert grp(st1).mode.value == "active-active"


def test_apply_groups_keeps_epoch_and_active():
    st = build(active="a")
    st2, _ = accept(st, C.apply_groups([{"name": GROUP, "vip": "198.18.0.99/24"}]))
    assert grp(st2).epoch == grp(st).epoch == 1
    assert grp(st2).active == "a"


# --- register_node ------------------------------------------------------------------------------


def test_register_node_adds_members_unknown_health():
    st = run(ClusterState(), C.apply_groups([{"name": GROUP}]))
    st2, _ = accept(st, C.register_node("n1", "198.18.1.1", [
        {"group": GROUP, "member": "a", "priority": 120}, {"group": GROUP, "member": "b"}]))
    assert st2.nodes["n1"].address == "198.18.1.1"
    assert not st2.nodes["n1"].maintenance
    assert mem(st2, "a").priority == 120 and mem(st2, "b").priority == 100
    assert mem(st2, "a").health == Health.UNKNOWN and not mem(st2, "a").quarantined
    assert {e.kind for e in st2.events} >= {"member_added", "node_registered"}


def test_register_node_unknown_group():
    st = build()
    refuse(st, C.register_node("n9", "x", [{"group": "nope", "member": "z"}]), "unknown_group")


def test_register_node_empty_name():
    refuse(build(), C.register_node("", "x", []), "invalid")


def test_register_node_member_hosted_by_other_node():
    st = build()
    # "b" lives on n2; n1 may not claim it.
    refuse(st, C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"},
                                                     {"group": GROUP, "member": "b"}]),
           "conflict")


def test_register_node_removes_undeclared_standby_only_when_asked():
    st = build(members=(("a", "n1", 100), ("a2", "n1", 50), ("b", "n2", 90)), active="b")
    # Without remove_undeclared: refused, nothing removed (was: silently removed).
    st1, r = apply(st, C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"}]))
    assert r["error"] == "conflict" and "g/a2" in r["message"] and st1 is st
    st2, _ = accept(st, C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"}],
                                        remove_undeclared=True))
    assert "a2" not in grp(st2).members and "a" in grp(st2).members
    assert any(e.kind == "member_removed" and e.member == "a2" for e in st2.events)


def test_register_node_with_no_members_cannot_empty_a_node():
    st = build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a")
    st2, r = apply(st, C.register_node("n2", "198.18.1.2", []))
    assert r["error"] == "conflict" and "b" in grp(st2).members


def test_rules_1_register_node_in_an_old_log_still_removes_implicitly():
    """A command without `v` (accepted before the binding existed) replays as it applied
    then, so a replica replaying an old log agrees with those that applied it first."""
    st = build(members=(("a", "n1", 100), ("a2", "n1", 50), ("b", "n2", 90)), active="b")
    old = C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"}])
    del old["v"], old["remove_undeclared"]
    st2, _ = accept(st, old)
    assert "a2" not in grp(st2).members


def test_register_node_refuses_removing_active():
    st = build(active="a")
    refuse(st, C.register_node("n1", "198.18.1.1", [], remove_undeclared=True), "conflict")


def test_register_node_refuses_removing_releasing():
    st = build(active="a")
    st = run(st, C.demote(GROUP, 1, reason="t"))
    assert grp(st).releasing == "a"
    refuse(st, C.register_node("n1", "198.18.1.1", [], remove_undeclared=True), "conflict")


def test_register_node_updates_priority_and_keeps_health_and_maintenance():
    st = build(active="a")
    st = run(st, C.set_maintenance("n2", True))
    st2, _ = accept(st, C.register_node("n2", "198.18.1.22", [
        {"group": GROUP, "member": "b", "priority": 5}]))
    assert mem(st2, "b").priority == 5
    assert mem(st2, "b").health == Health.HEALTHY
    assert st2.nodes["n2"].maintenance is True
    assert st2.nodes["n2"].address == "198.18.1.22"
    assert grp(st2).epoch == 1 and grp(st2).active == "a"


# --- set_health ---------------------------------------------------------------------------------


def test_set_health_unknown_group_and_member():
    st = build()
    refuse(st, C.set_health("nope", "a", Health.HEALTHY), "unknown_group")
    refuse(st, C.set_health(GROUP, "zz", Health.HEALTHY), "unknown_member")


@pytest.mark.parametrize("bad", [Health.UNHEALTHY, Health.LOST])
def test_set_health_failure_quarantines_and_recovery_keeps_quarantine(bad):
    st = build()
    st2, r = accept(st, C.set_health(GROUP, "b", bad, reason="check failed"))
    assert r["changed"] is True
    assert mem(st2, "b").health == bad and mem(st2, "b").quarantined
    assert last_event(st2).kind == "health_changed"
    st3, _ = accept(st2, C.set_health(GROUP, "b", Health.HEALTHY))
    assert mem(st3, "b").health == Health.HEALTHY
    assert mem(st3, "b").quarantined, "only clear_quarantine ends a quarantine"


def test_set_health_unknown_does_not_quarantine():
    st = build()
    st2, _ = accept(st, C.set_health(GROUP, "b", Health.UNKNOWN))
    assert not mem(st2, "b").quarantined


def test_set_health_same_value_is_no_change():
    st = build()
    st2, r = apply(st, C.set_health(GROUP, "b", Health.HEALTHY))
    assert r == {"ok": True, "changed": False}
    assert st2.groups == st.groups and st2.events == st.events


def test_set_health_unknown_value_invalid():
    cmd = C.set_health(GROUP, "b", Health.HEALTHY)
    cmd["health"] = "sick"
    refuse(build(), cmd, "invalid")


# --- promote ------------------------------------------------------------------------------------


def test_promote_success():
    st = build()
    st2, r = accept(st, C.promote(GROUP, "b", 0, reason="election"))
    assert r["epoch"] == 1
    assert grp(st2).active == "b" and grp(st2).epoch == 1
    ev = last_event(st2)
    assert (ev.kind, ev.member, ev.epoch, ev.node) == ("promoted", "b", 1, "n2")


def test_promote_refusals_unknown():
    st = build()
    refuse(st, C.promote("nope", "a", 0, reason="t"), "unknown_group")
    refuse(st, C.promote(GROUP, "zz", 0, reason="t"), "unknown_member")


@pytest.mark.parametrize("expect", [1, 5, -1])
def test_promote_stale_epoch(expect):
    refuse(build(), C.promote(GROUP, "a", expect, reason="t"), "stale_epoch")


def test_promote_stale_epoch_after_change():
    st = build(active="a")  # epoch 1
    refuse(st, C.promote(GROUP, "b", 0, reason="t", ), "stale_epoch")
    refuse(st, C.demote(GROUP, 0, reason="t"), "stale_epoch")


def test_promote_while_active_refused():
    st = build(active="a")
    refuse(st, C.promote(GROUP, "b", 1, reason="t"), "conflict")


def test_promote_replace_of_current_active():
    st = build(active="a")
    cmd = C.promote(GROUP, "b", 1, reason="active lost")
    cmd["replace"] = "a"
    st2, r = accept(st, cmd)
    assert r["epoch"] == 2
    g = grp(st2)
    assert g.active == "b" and g.epoch == 2 and g.releasing is None
    assert mem(st2, "a").health == Health.LOST and mem(st2, "a").quarantined
    assert "replacing a" in last_event(st2).reason


def test_promote_replace_of_wrong_member_refused():
    st = build(active="a")
    cmd = C.promote(GROUP, "b", 1, reason="t")
    cmd["replace"] = "c"  # not the active
    refuse(st, cmd, "conflict")


def test_promote_replace_self_refused():
    """Promoting the active "replacing" itself would bump the epoch without a change of
    active and leave a LOST, quarantined member active."""
    st = build(active="a")
    cmd = C.promote(GROUP, "a", 1, reason="t")
    cmd["replace"] = "a"
    refuse(st, cmd, "conflict")


def test_promote_replace_ineligible_target_refused_and_old_active_untouched():
    st = build(active="a")
    st = run(st, C.set_health(GROUP, "b", Health.UNHEALTHY))
    cmd = C.promote(GROUP, "b", 1, reason="t")
    cmd["replace"] = "a"
    refuse(st, cmd, "not_eligible")
    assert mem(st, "a").health == Health.HEALTHY


def test_promote_while_releasing_refused():
    st = run(build(active="a"), C.demote(GROUP, 1, reason="t"))
    g = grp(st)
    assert g.releasing == "a" and g.active is None and g.epoch == 2
    refuse(st, C.promote(GROUP, "b", 2, reason="t"), "conflict")
    # After the release the promotion goes through.
    st = run(st, C.confirm_release(GROUP, "a", 2, reason="agent confirmed"))
    st2, r = accept(st, C.promote(GROUP, "b", 2, reason="t"))
    assert r["epoch"] == 3 and grp(st2).active == "b"


def _unhealthy(st):
    return run(st, C.set_health(GROUP, "b", Health.UNHEALTHY))


def _quarantined(st):
    st = run(st, C.set_health(GROUP, "b", Health.UNHEALTHY), C.set_health(GROUP, "b",
                                                                         Health.HEALTHY))
    assert mem(st, "b").health == Health.HEALTHY and mem(st, "b").quarantined
    return st


def _maintenance(st):
    return run(st, C.set_maintenance("n2", True))


def _unknown(st):
    return run(st, C.set_health(GROUP, "b", Health.UNKNOWN))


def _lost(st):
    return run(st, C.set_health(GROUP, "b", Health.LOST))


@pytest.mark.parametrize("make_ineligible", [_unhealthy, _quarantined, _maintenance, _unknown,
                                             _lost])
def test_promote_ineligible_target(make_ineligible):
    st = make_ineligible(build())
    assert eligible(st, mem(st, "b")) is not None
    refuse(st, C.promote(GROUP, "b", 0, reason="t"), "not_eligible")
    # c is still fine
    accept(st, C.promote(GROUP, "c", 0, reason="t"))


def test_promote_member_never_reported_is_not_eligible():
    st = build(health=None)
    refuse(st, C.promote(GROUP, "a", 0, reason="t"), "not_eligible")


def test_promote_clears_handover():
    st = run(build(active="a"), C.switchover(GROUP, "c"))
    assert grp(st).handover_to == "c"
    st = run(st, C.confirm_release(GROUP, "a", 2, reason="t"),
             C.promote(GROUP, "c", 2, reason="planned switchover"))
    assert grp(st).handover_to is None and grp(st).active == "c" and grp(st).epoch == 3


# --- demote / confirm_release -------------------------------------------------------------------


def test_demote_success():
    st = build(active="a")
    st2, r = accept(st, C.demote(GROUP, 1, reason="unhealthy", handover_to="c", quarantine=True))
    g = grp(st2)
    assert r["epoch"] == 2
    assert (g.active, g.releasing, g.releasing_epoch, g.handover_to, g.epoch) == (
        None, "a", 2, "c", 2)
    assert mem(st2, "a").quarantined
    ev = last_event(st2)
    assert (ev.kind, ev.member, ev.epoch) == ("demoted", "a", 2)


def test_demote_without_quarantine_keeps_member_eligible_flag():
    st2, _ = accept(build(active="a"), C.demote(GROUP, 1, reason="maintenance"))
    assert not mem(st2, "a").quarantined


def test_demote_refusals():
    st = build(active="a")
    refuse(st, C.demote("nope", 1, reason="t"), "unknown_group")
    refuse(st, C.demote(GROUP, 0, reason="t"), "stale_epoch")
    refuse(build(), C.demote(GROUP, 0, reason="t"), "conflict")  # no active


def test_confirm_release_success_keeps_epoch():
    st = run(build(active="a"), C.demote(GROUP, 1, reason="t"))
    st2, _ = accept(st, C.confirm_release(GROUP, "a", 2, reason="agent confirmed"))
    g = grp(st2)
    assert g.releasing is None and g.epoch == 2 and g.active is None
    assert last_event(st2).kind == "released"


def test_confirm_release_refusals():
    st = run(build(active="a"), C.demote(GROUP, 1, reason="t"))
    refuse(st, C.confirm_release("nope", "a", 2, reason="t"), "unknown_group")
    refuse(st, C.confirm_release(GROUP, "a", 1, reason="t"), "stale_epoch")
    refuse(st, C.confirm_release(GROUP, "b", 2, reason="t"), "conflict")
    refuse(build(active="a"), C.confirm_release(GROUP, "a", 1, reason="t"), "conflict")


# --- clear_quarantine ---------------------------------------------------------------------------


def test_clear_quarantine():
    st = _quarantined(build())
    st2, r = accept(st, C.clear_quarantine(GROUP, "b"))
    assert r["changed"] is True and not mem(st2, "b").quarantined
    assert eligible(st2, mem(st2, "b")) is None
    _, r = apply(st2, C.clear_quarantine(GROUP, "b"))
    assert r == {"ok": True, "changed": False}
    refuse(st, C.clear_quarantine("nope", "b"), "unknown_group")
    refuse(st, C.clear_quarantine(GROUP, "zz"), "unknown_member")


# --- switchover ---------------------------------------------------------------------------------


def test_switchover_auto_target_is_best_standby():
    st = build(active="a")
    st2, r = accept(st, C.switchover(GROUP, None))
    g = grp(st2)
    assert r["epoch"] == 2
    assert (g.active, g.releasing, g.handover_to, g.epoch) == (None, "a", "b", 2)
    assert not mem(st2, "a").quarantined, "a planned switchover is not a failure"


def test_switchover_auto_skips_ineligible():
    st = run(build(active="a"), C.set_health(GROUP, "b", Health.UNHEALTHY))
    st2, _ = accept(st, C.switchover(GROUP, None))
    assert grp(st2).handover_to == "c"


def test_switchover_explicit_target():
    st2, _ = accept(build(active="a"), C.switchover(GROUP, "c"))
    assert grp(st2).handover_to == "c" and grp(st2).releasing == "a"


def test_switchover_refusals():
    st = build(active="a")
    refuse(st, C.switchover("nope", None), "unknown_group")
    refuse(st, C.switchover(GROUP, "zz"), "unknown_member")
    refuse(st, C.switchover(GROUP, "a"), "conflict")  # to self
    refuse(build(), C.switchover(GROUP, "b"), "conflict")  # no active
    refuse(run(st, C.set_health(GROUP, "b", Health.UNHEALTHY)), C.switchover(GROUP, "b"),
           "not_eligible")
    refuse(run(st, C.set_maintenance("n3", True)), C.switchover(GROUP, "c"), "not_eligible")
    lonely = build(members=(("a", "n1", 100),), active="a")
    refuse(lonely, C.switchover(GROUP, None), "not_eligible")


def test_switchover_refused_while_releasing():
    st = run(build(active="a"), C.switchover(GROUP, "b"))
    refuse(st, C.switchover(GROUP, "c"), "conflict")


def test_switchover_refused_for_active_active_group():
    st = build(group="aa")
    st = run(st, C.apply_groups([{"name": "aa", "mode": "active-active"}]))
    st = run(st, C.promote("aa", "a", 0, reason="t"))
    refuse(st, C.switchover("aa", "b"), "conflict")


# --- set_maintenance ----------------------------------------------------------------------------


def test_set_maintenance():
    st = build()
    st2, r = accept(st, C.set_maintenance("n1", True))
    assert r["changed"] is True and st2.nodes["n1"].maintenance
    assert last_event(st2).kind == "maintenance_on"
    _, r = apply(st2, C.set_maintenance("n1", True))
    assert r == {"ok": True, "changed": False}
    st3, _ = accept(st2, C.set_maintenance("n1", False))
    assert not st3.nodes["n1"].maintenance and last_event(st3).kind == "maintenance_off"
    refuse(st, C.set_maintenance("n9", True), "unknown_node")


# --- malformed commands -------------------------------------------------------------------------


def _without(cmd, key):
    return {k: v for k, v in cmd.items() if k != key}


MALFORMED = {
    "non-dict": "promote g a",
    "list": [("op", "promote")],
    "none": None,
    "unknown op": {"op": "elect", "rid": "r1"},
    "missing op": {"rid": "r1"},
    "missing rid": _without(C.promote(GROUP, "b", 0, reason="t"), "rid"),
    "empty rid": {**C.promote(GROUP, "b", 0, reason="t"), "rid": ""},
    "int rid": {**C.promote(GROUP, "b", 0, reason="t"), "rid": 7},
    "missing field": _without(C.promote(GROUP, "b", 0, reason="t"), "expect_epoch"),
    "epoch as str": {**C.promote(GROUP, "b", 0, reason="t"), "expect_epoch": "0"},
    "epoch as float": {**C.promote(GROUP, "b", 0, reason="t"), "expect_epoch": 0.0},
    "epoch as bool": {**C.promote(GROUP, "b", 0, reason="t"), "expect_epoch": False},
    "demote epoch as bool": {**C.demote(GROUP, 1, reason="t"), "expect_epoch": True},
    "group as int": {**C.promote(GROUP, "b", 0, reason="t"), "group": 1},
    "maintenance on as int": {**C.set_maintenance("n1", True), "on": 1},
    "switchover to as int": {**C.switchover(GROUP, None), "to": 3},
    "bad health": {**C.set_health(GROUP, "b", Health.HEALTHY), "health": "meh"},
    "groups not list": {**C.apply_groups([]), "groups": {"name": "g"}},
    "group without name": C.apply_groups([{"vip": "x"}]),
    "group bad mode": C.apply_groups([{"name": "g", "mode": "n+m"}]),
    "group vip not str": C.apply_groups([{"name": "g", "vip": 5}]),
    "member not dict": C.register_node("n1", "x", ["a"]),
    "member without group": C.register_node("n1", "x", [{"member": "a"}]),
    "priority as bool": C.register_node("n1", "x", [{"group": GROUP, "member": "a",
                                                     "priority": True}]),
    "priority as str": C.register_node("n1", "x", [{"group": GROUP, "member": "a",
                                                    "priority": "1"}]),
    "at as str": {**C.set_maintenance("n1", True), "at": "yesterday"},
    "at as None": {**C.set_maintenance("n1", True), "at": None},
    "replace as list": {**C.promote(GROUP, "b", 1, reason="t"), "replace": ["a"]},
    "handover_to as int": {**C.demote(GROUP, 1, reason="t"), "handover_to": 2},
    "quarantine as str": {**C.demote(GROUP, 1, reason="t"), "quarantine": "no"},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_command_invalid(name):
    st = build(active="a")
    refuse(st, MALFORMED[name], "invalid")
    # and the StateMachine wrapper neither raises nor changes anything
    sm = StateMachine()
    sm.state = st
    r = sm.apply(MALFORMED[name])
    assert r["ok"] is False and r["error"] == "invalid"
    assert sm.state is st


def test_validate_command_returns_valid_command_unchanged():
    cmd = C.promote(GROUP, "b", 0, reason="t")
    assert C.validate_command(cmd) is cmd


# --- helpers --------------------------------------------------------------------------------


def test_best_candidate_priority_then_name_excluding_releasing():
    st = build(members=(("b", "n1", 100), ("a", "n2", 100), ("c", "n3", 200)))
    assert best_candidate(st, grp(st)).name == "c"
    assert best_candidate(st, grp(st), exclude="c").name == "a"  # tie on priority: name
    st = run(st, C.promote(GROUP, "c", 0, reason="t"), C.demote(GROUP, 1, reason="t"))
    assert best_candidate(st, grp(st)).name == "a", "releasing member is never a candidate"


# --- epochs: property-style random walk -----------------------------------------------------------

MEMBERS = {"g1": ("a", "b", "c"), "g2": ("x", "y")}
NODE_OF = {"a": "n1", "b": "n2", "c": "n3", "x": "n1", "y": "n4"}


def _random_command(rng: random.Random, st: ClusterState):
    gname = rng.choice([*MEMBERS, *MEMBERS, *MEMBERS, "nope"])
    g = st.groups.get(gname)
    names = [*MEMBERS.get(gname, ("a",)), "zz"]
    epoch = g.epoch if g is not None else 0
    # Mostly the right epoch (so changes happen), sometimes stale or from the future.
    exp = rng.choice([epoch] * 6 + [epoch - 1, epoch + 1, 0])
    op = rng.choice(["set_health"] * 4 + ["promote"] * 4 + ["demote"] * 2 + [
        "confirm_release"] * 2 + ["clear_quarantine"] * 2 + ["switchover", "set_maintenance",
                                  "register_node", "apply_groups", "malformed"])
    if op == "set_health":
        health = rng.choice([Health.HEALTHY] * 4 + list(Health))
        return C.set_health(gname, rng.choice(names), health)
    if op == "promote":
        cmd = C.promote(gname, rng.choice(names), exp, reason="fuzz")
        if rng.random() < 0.4:
            cmd["replace"] = rng.choice([*names, g.active if g else None])
        return cmd
    if op == "demote":
        return C.demote(gname, exp, reason="fuzz", handover_to=rng.choice([None, *names]),
                        quarantine=rng.random() < 0.5)
    if op == "confirm_release":
        who = g.releasing if g is not None and g.releasing and rng.random() < 0.7 else \
            rng.choice(names)
        return C.confirm_release(gname, who, exp, reason="fuzz")
    if op == "clear_quarantine":
        return C.clear_quarantine(gname, rng.choice(names))
    if op == "switchover":
        return C.switchover(gname, rng.choice([None, *names]))
    if op == "set_maintenance":
        return C.set_maintenance(rng.choice(["n1", "n2", "n3", "n4", "n9"]), rng.random() < 0.3)
    if op == "register_node":
        node = rng.choice(["n1", "n2", "n3", "n4"])
        hosted = [(gn, m) for gn, ms in MEMBERS.items() for m in ms if NODE_OF[m] == node]
        keep = [(gn, m) for gn, m in hosted if rng.random() < 0.8]
        if rng.random() < 0.1:  # try to steal a member from another node
            keep.append(("g1", "b" if node != "n2" else "a"))
        return C.register_node(node, f"198.18.2.{rng.randrange(4)}",
                               [{"group": gn, "member": m, "priority": rng.choice([50, 100])}
                                for gn, m in keep])
    if op == "apply_groups":
        return C.apply_groups([{"name": rng.choice(list(MEMBERS)),
                                "mode": rng.choice(["active-standby", "active-active"])}])
    bad = rng.choice(list(MALFORMED.values()))
    if isinstance(bad, dict) and isinstance(bad.get("rid"), str) and bad["rid"]:
        bad = {**bad, "rid": C.new_rid()}  # a fresh request, not a retry
    return bad


def _initial() -> ClusterState:
    st = ClusterState()
    for gname, ms in MEMBERS.items():
        st = build(members=[(m, NODE_OF[m], 100 - i) for i, m in enumerate(ms)], group=gname,
                   state=st)
    return st


def _check_step(old: ClusterState, new: ClusterState, cmd, result) -> None:
    if not result["ok"]:
        assert new is old, (cmd, result)
        return
    assert new.revision == old.revision + 1
    assert new.next_event_seq >= old.next_event_seq
    assert set(old.groups) <= set(new.groups), "groups are never removed"
    for name, ng in new.groups.items():
        og = old.groups.get(name)
        # At most one member acting: a demoted active blocks every promotion until it
        # has released, so `active` and `releasing` are never both set.
        assert ng.active is None or ng.releasing is None, ng
        assert ng.active is None or ng.active in ng.members, ng
        assert ng.releasing is None or ng.releasing in ng.members, ng
        assert ng.epoch >= 0
        if og is None:
            assert ng.epoch == 0 and ng.active is None
            continue
        assert ng.epoch >= og.epoch, "epoch went backwards"
        # The epoch moves by exactly one iff the active member changes.
        assert ng.epoch - og.epoch in (0, 1), (cmd, og, ng)
        assert (ng.epoch != og.epoch) == (ng.active != og.active), (cmd, og, ng)
        if ng.active is not None and ng.active != og.active:
            # A fresh active was eligible by committed facts when it was granted.
            assert cmd["op"] == "promote" and cmd["group"] == name
            assert og.releasing is None
            assert eligible(old, og.members[ng.active]) is None
            assert mem(new, ng.active, name).health == Health.HEALTHY
            if og.active is not None:
                assert cmd.get("replace") == og.active
                old_active = ng.members[og.active]
                assert old_active.health == Health.LOST and old_active.quarantined
        if ng.releasing != og.releasing:
            if ng.releasing is not None:  # demote: the old active, at the new epoch
                assert ng.releasing == og.active and ng.releasing_epoch == ng.epoch
                assert ng.active is None
            else:  # confirm_release: nobody becomes active in the same step
                assert cmd["op"] == "confirm_release" and ng.epoch == og.epoch
                assert ng.active is None
    if cmd["op"] in ("promote", "demote", "switchover"):
        g = cmd["group"]
        assert new.groups[g].epoch == old.groups[g].epoch + 1
        assert result["epoch"] == new.groups[g].epoch


@pytest.mark.parametrize("seed", range(6))
def test_random_walk_epoch_invariants(seed):
    rng = random.Random(seed)
    st = _initial()
    sm = StateMachine()
    sm.state = st
    applied = refused_count = 0
    epochs_seen = {g: [0] for g in MEMBERS}
    for _ in range(3000):
        cmd = _random_command(rng, st)
        new, result = apply(st, cmd)
        _check_step(st, new, cmd, result)
        # The StateMachine wrapper reaches the same state as the pure function.
        assert sm.apply(cmd) == result
        assert sm.state == new
        applied += result["ok"]
        refused_count += not result["ok"]
        st = new
        for g in MEMBERS:
            epochs_seen[g].append(st.groups[g].epoch)
    # The walk must actually exercise promotions and refusals to mean anything.
    assert applied > 500 and refused_count > 500
    for g, seq in epochs_seen.items():
        assert seq == sorted(seq)
        assert seq[-1] >= 10, f"group {g} saw too few changes of active ({seq[-1]})"
    # A long history round-trips through a snapshot.
    sm2 = StateMachine()
    sm2.restore(json.loads(json.dumps(sm.snapshot())))
    assert sm2.state == sm.state


# --- StateMachine: dedup and snapshots ----------------------------------------------------------


def test_state_machine_applies_rid_once():
    sm = StateMachine()
    sm.state = build()
    cmd = C.promote(GROUP, "a", 0, reason="t")
    first = sm.apply(cmd)
    assert first == {"ok": True, "epoch": 1}
    rev = sm.state.revision
    state = sm.state
    again = sm.apply(dict(cmd))
    assert again == {**first, "duplicate": True}
    assert sm.state is state and sm.state.revision == rev
    # A different rid with the same content is a new command (and now stale).
    other = sm.apply({**cmd, "rid": C.new_rid()})
    assert other["ok"] is False and other["error"] == "stale_epoch"


def test_state_machine_refusal_is_remembered_too():
    sm = StateMachine()
    sm.state = build()
    cmd = C.promote(GROUP, "a", 7, reason="t")
    r1 = sm.apply(cmd)
    assert r1["error"] == "stale_epoch"
    # Even after the epoch would match, the same rid returns the decided outcome.
    sm.state = build(state=ClusterState())
    r2 = sm.apply(cmd)
    assert r2 == {**r1, "duplicate": True}


def test_state_machine_dedup_window_evicts_oldest(monkeypatch):
    monkeypatch.setattr(sm_mod, "DEDUP_WINDOW", 3)
    sm = StateMachine()
    sm.state = build()
    cmds = [C.set_maintenance("n1", i % 2 == 0) for i in range(5)]
    for c in cmds:
        sm.apply(c)
    assert "duplicate" in sm.apply(cmds[-1])
    assert "duplicate" not in sm.apply(cmds[0])


def _busy_machine() -> StateMachine:
    sm = StateMachine()
    for cmd in [C.apply_groups([{"name": GROUP, "vip": "198.18.0.10/24"},
                                {"name": "aa", "mode": "active-active"}])]:
        sm.apply(cmd)
    sm.apply(C.register_node("n1", "198.18.1.1", [{"group": GROUP, "member": "a"}]))
    sm.apply(C.register_node("n2", "198.18.1.2", [{"group": GROUP, "member": "b",
                                                   "priority": 7}]))
    sm.apply(C.set_health(GROUP, "a", Health.HEALTHY))
    sm.apply(C.set_health(GROUP, "b", Health.UNHEALTHY))
    sm.apply(C.promote(GROUP, "a", 0, reason="t"))
    sm.apply(C.set_maintenance("n2", True))
    sm.apply(C.switchover(GROUP, None))  # refused: b not eligible
    sm.apply(C.demote(GROUP, 1, reason="t", handover_to="b", quarantine=True))
    assert sm.state.groups[GROUP].releasing == "a"
    return sm


@pytest.mark.parametrize("through_json", [False, True])
def test_snapshot_restore_round_trip(through_json):
    sm = _busy_machine()
    snap = sm.snapshot()
    if through_json:
        snap = json.loads(json.dumps(snap))
    sm2 = StateMachine()
    sm2.restore(snap)
    assert sm2.state == sm.state
    assert state_from_dict(state_to_dict(sm.state)) == sm.state
    # The request-id memory survives too: a retried command is still a duplicate.
    last_rid_cmd = C.set_maintenance("n2", False)
    r = sm.apply(last_rid_cmd)
    sm3 = StateMachine()
    sm3.restore(json.loads(json.dumps(sm.snapshot())) if through_json else sm.snapshot())
    assert sm3.apply(last_rid_cmd) == {**r, "duplicate": True}
    assert sm3.state == sm.state


def test_restore_then_continue_matches_original():
    sm = _busy_machine()
    sm2 = StateMachine()
    sm2.restore(json.loads(json.dumps(sm.snapshot())))
    follow = [C.confirm_release(GROUP, "a", 2, reason="t"), C.set_maintenance("n2", False),
              C.set_health(GROUP, "b", Health.HEALTHY), C.clear_quarantine(GROUP, "b"),
              C.promote(GROUP, "b", 2, reason="t")]
    for c in follow:
        assert sm.apply(c) == sm2.apply(c)
    assert sm.state == sm2.state
    assert sm.state.groups[GROUP].active == "b" and sm.state.groups[GROUP].epoch == 3


def test_three_member_builder_sanity():
    st = build(active="a")
    assert [m for m, _, _ in THREE] == sorted(grp(st).members)
    assert grp(st).epoch == 1
