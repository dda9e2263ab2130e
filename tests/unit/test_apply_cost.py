"""Applying a command costs what it changes, not the size of the state (issue 14).

A Raft replica replays its journal at start; at 5,000 groups most of that was the
state machine copying the whole group map once per group a command touched (a
1,000-item batch: 1,000 copies of 5,000 entries). `state_rules.own_groups` lets one
command copy the map once. These tests pin the copy count and, above all, that the
optimisation changes no value: the result equals the copy-per-change result, and
no state that existed before the command (the committed one readers hold) changes.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from vnfha.coordinator import commands as C
from vnfha.coordinator import state_machine as sm_module
from vnfha.coordinator.model import (
    ClusterState,
    Group,
    Health,
    Member,
    evolve,
    node_index,
    state_to_dict,
)
from vnfha.coordinator.state_machine import StateMachine, apply
from vnfha.coordinator.state_rules import put_group


def many_groups(n: int) -> ClusterState:
    """`n` groups, member a on node n1 and b on n2, both unknown health, no active."""
    groups = {f"g{i:04d}": Group(name=f"g{i:04d}", members={
        "a": Member(name="a", group=f"g{i:04d}", node="n1"),
        "b": Member(name="b", group=f"g{i:04d}", node="n2", priority=90)})
        for i in range(n)}
    state, result = apply(ClusterState(), C.register_node("n1", "198.18.0.1", []))
    assert result["ok"], result
    state, result = apply(state, C.register_node("n2", "198.18.0.2", []))
    assert result["ok"], result
    return evolve(state, groups=groups)


def health_batch(state: ClusterState, member: str) -> C.Command:
    return C.batch([C.set_health(g, member, Health.HEALTHY) for g in state.groups])


def frozen_view(state: ClusterState) -> list[tuple[str, int]]:
    """The identity of every group a state's map holds: changes if the map is written."""
    return [(name, id(g)) for name, g in state.groups.items()]


def count_map_copies(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Group]]:
    """Every distinct group map the state machine's put_group makes from now on (kept
    alive, so ids are never reused)."""
    maps: list[dict[str, Group]] = []

    def counting(st: ClusterState, group: Group) -> ClusterState:
        new = put_group(st, group)
        if not any(new.groups is m for m in maps):
            maps.append(new.groups)
        return new

    monkeypatch.setattr(sm_module, "_put_group", counting)
    return maps


def test_a_batch_copies_the_group_map_once(monkeypatch: pytest.MonkeyPatch) -> None:
    state = many_groups(200)
    maps = count_map_copies(monkeypatch)
    new, result = apply(state, health_batch(state, "a"))
    assert result["ok"] and result["items"] == 200, result
    assert len(maps) == 1  # the code before own_groups made 200 (one per item)
    assert all(new.groups[g].members["a"].health == Health.HEALTHY for g in new.groups)


def test_registering_many_members_copies_the_map_once(monkeypatch: pytest.MonkeyPatch) -> None:
    state = many_groups(100)
    state = evolve(state, groups={k: replace(g, members={}) for k, g in state.groups.items()})
    maps = count_map_copies(monkeypatch)
    members = [{"group": g, "member": "a", "priority": 100} for g in state.groups]
    new, result = apply(state, C.register_node("n1", "198.18.0.1", members))
    assert result["ok"], result
    assert len(maps) == 1
    assert len(new.members_on("n1")) == 100


def test_the_result_equals_copying_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same command, same start: with the scope (one copy) and without it (a copy per
    change, as before) the states are equal field by field, events and order included."""
    start = many_groups(50)
    cmds = [health_batch(start, "a"), health_batch(start, "b"),
            C.batch([C.promote(g, "a", 0, reason="seed") for g in start.groups])]
    fast = slow = start
    for cmd in cmds:
        fast, r1 = apply(fast, cmd)
        slow, r2 = sm_module._apply_valid(slow, cmd)  # outside own_groups: copies per change
        assert r1 == r2
    assert state_to_dict(fast) == state_to_dict(slow)
    assert list(fast.groups) == list(slow.groups)
    assert fast.groups["g0007"].active == "a" and fast.groups["g0007"].epoch == 1


def test_the_state_a_command_starts_from_never_changes() -> None:
    s0 = many_groups(30)
    before = frozen_view(s0)
    s1, r = apply(s0, health_batch(s0, "a"))
    assert r["ok"]
    assert frozen_view(s0) == before  # readers holding s0 see the same groups
    after_s1 = frozen_view(s1)
    s2, r = apply(s1, health_batch(s1, "b"))  # the next command: s1 is now the committed one
    assert r["ok"]
    assert frozen_view(s1) == after_s1 and frozen_view(s0) == before
    assert s2.groups is not s1.groups is not s0.groups


def test_a_refused_batch_leaves_everything_as_it_was() -> None:
    s0 = many_groups(30)
    before = frozen_view(s0)
    items = [C.set_health(g, "a", Health.HEALTHY) for g in s0.groups]
    items.append(C.set_health("g0000", "nobody", Health.HEALTHY))  # the last item is refused
    new, result = apply(s0, C.batch(items))
    assert not result["ok"] and result["error"] == "unknown_member", result
    assert new is s0 and frozen_view(s0) == before
    assert all(g.members["a"].health == Health.UNKNOWN for g in s0.groups.values())


def test_evolve_is_replace() -> None:
    state = many_groups(3)
    assert evolve(state, revision=9, paused=True) == replace(state, revision=9, paused=True)
    g = state.groups["g0001"]
    assert evolve(g, epoch=4, active="a") == replace(g, epoch=4, active="a")
    with pytest.raises(TypeError, match="no field"):
        evolve(state, revison=1)
    node_index(state)  # caches the node index on `state`
    assert "_node_index" in vars(state)
    assert "_node_index" not in vars(evolve(state))  # a cache describes one object only


def test_a_snapshot_rebuilds_only_the_groups_changed_since_the_last() -> None:
    """Incremental snapshots (issue 14): the state machine keeps each group's plain data
    keyed by the (immutable) Group object it came from; the result is the same."""
    sm = StateMachine()
    sm.restore({"state": state_to_dict(many_groups(40)), "recent": []})
    first = sm.snapshot()
    assert first["state"] == state_to_dict(sm.state)
    sm.apply(C.set_health("g0003", "a", Health.HEALTHY))
    sm.apply(C.delete_group("g0005", force=False))
    second = sm.snapshot()
    assert second["state"] == state_to_dict(sm.state)  # equal to a full rebuild
    g1, g2 = first["state"]["groups"], second["state"]["groups"]
    assert "g0005" not in g2
    assert g2["g0003"] is not g1["g0003"] and g2["g0003"]["members"]["a"]["health"] == "healthy"
    same = [n for n in g2 if g2[n] is g1[n]]
    assert len(same) == 38  # every group but the changed one (and the deleted one)
    restored = StateMachine()
    restored.restore(second)
    assert restored.state == sm.state
