"""Why a member of an active-active pool is out of service, as `vnfha status` shows it:
built from states made by the real state machine (no hand-made pools)."""

from __future__ import annotations

from dataclasses import replace

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import ClusterState, Health, Recovery
from vnfha.coordinator.service.status_view import Excluded, excluded_members
from vnfha.coordinator.state_machine import apply


def ok(state: ClusterState, cmd: dict) -> ClusterState:
    new, result = apply(state, cmd)
    assert result["ok"] is True, result
    return new


def pool_of_three() -> ClusterState:
    """api-1..3 in service at version 3 (one admission each)."""
    st = ok(ClusterState(), C.apply_groups([{"name": "api", "mode": "active-active"}]))
    for i in (1, 2, 3):
        st = ok(st, C.register_node(f"vm{i}", "127.0.0.1",
                                    [{"group": "api", "member": f"api-{i}"}]))
        st = ok(st, C.set_health("api", f"api-{i}", Health.HEALTHY))
    for i in (1, 2, 3):
        st = ok(st, C.pool_admit("api", f"api-{i}", i - 1, reason="healthy: in service"))
    assert st.groups["api"].pool_version == 3
    return st


def test_in_service_members_are_not_listed() -> None:
    st = pool_of_three()
    assert excluded_members(st, st.groups["api"]) == []


def test_reason_and_version_from_the_exclusion_and_what_blocks_rejoining() -> None:
    st = pool_of_three()
    st = ok(st, C.set_health("api", "api-2", Health.LOST))
    st = ok(st, C.pool_exclude("api", "api-2", 3, reason="member api-2 lease expired (node vm2)"))
    st = ok(st, C.set_maintenance("vm3", True))
    st = ok(st, C.pool_exclude("api", "api-3", 4, reason="node vm3 in maintenance",
                               recover=False))
    assert excluded_members(st, st.groups["api"]) == [
        Excluded(member="api-2", node="vm2", version=4,
                 reason="member api-2 lease expired (node vm2)",
                 blocked_by="member 'api-2' is lost"),
        Excluded(member="api-3", node="vm3", version=5, reason="node vm3 in maintenance",
                 blocked_by="node 'vm3' is in maintenance")]


def test_the_latest_exclusion_wins_after_a_rejoin() -> None:
    st = pool_of_three()
    st = ok(st, C.pool_exclude("api", "api-1", 3, reason="first failure"))
    st = ok(st, C.pool_admit("api", "api-1", 4, reason="back"))
    st = ok(st, C.pool_exclude("api", "api-1", 5, reason="second failure"))
    [x] = excluded_members(st, st.groups["api"])
    assert (x.member, x.version, x.reason) == ("api-1", 6, "second failure")
    # committed healthy, not quarantined: nothing blocks it; it rejoins when heard healthy
    assert x.blocked_by == ""


def test_without_the_event_an_open_recovery_still_says_why() -> None:
    st = pool_of_three()
    st = ok(st, C.pool_exclude("api", "api-2", 3, reason="member api-2 reported unhealthy"))
    st = ok(st, C.set_maintenance("vm3", True))
    st = ok(st, C.pool_exclude("api", "api-3", 4, reason="node vm3 in maintenance",
                               recover=False))
    forgotten = replace(st, events=())  # the exclusions have left the kept history
    g = forgotten.groups["api"]
    # api-3 keeps an old, closed recovery from an earlier failure: it must not be
    # mistaken for the reason of the current (maintenance) exclusion
    g = replace(g, recoveries={**g.recoveries, "api-3": Recovery(
        member="api-3", node="vm3", failure=1, reason="old failure", status="succeeded")})
    x2, x3 = excluded_members(forgotten, g)
    assert (x2.version, x2.reason) == (4, "member api-2 reported unhealthy")
    assert (x3.version, x3.reason) == (0, "")
    assert x3.blocked_by == "node 'vm3' is in maintenance"


def test_a_member_never_in_service_has_no_reason_but_a_blocker() -> None:
    st = pool_of_three()
    st = ok(st, C.register_node("vm4", "127.0.0.1", [{"group": "api", "member": "api-4"}]))
    [x] = excluded_members(st, st.groups["api"])
    assert x == Excluded(member="api-4", node="vm4", version=0, reason="",
                         blocked_by="member 'api-4' is unknown")
