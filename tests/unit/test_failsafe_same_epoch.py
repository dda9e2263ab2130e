"""The same epoch after a coordinator outage (issue 16; docs/design.md "Failsafe").

An active whose agent kept its role through the outage on failsafe leases comes back
with a new lease generation while still holding the current epoch. The leader
re-stamps it at the *same* epoch; every promote/demote that would take the role away
carries the stamp it was decided on, so the state machine serialises the two exactly
as the epoch serialised the old epoch+1 re-confirmation. Pure: hand-made
observations, the real `decide` and `apply`."""

from __future__ import annotations

from cluster_builders import GROUP, build, run
from test_decide_generations import report, step

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health
from vnfha.coordinator.state_machine import apply


def _active_a() -> object:
    return run(build(), C.promote(GROUP, "a", 0, "test", generation=11))


def test_a_role_held_through_the_outage_is_restamped_at_the_same_epoch() -> None:
    st = _active_a()
    (restamp,) = step(st, report(st, "a", 12, active_epoch=1))
    assert (restamp["member"], restamp["generation"], restamp["keep_epoch"]) == ("a", 12, True)
    st = run(st, restamp)
    g = st.groups[GROUP]
    assert (g.active, g.epoch, g.active_generation) == ("a", 1, 12)
    assert st.events[-1].kind == "reconfirmed" and st.events[-1].epoch == 1
    assert step(st, report(st, "a", 12, active_epoch=1)) == []  # its stamp now


def test_a_lapse_that_dropped_the_role_still_moves_the_epoch() -> None:
    """Holding nothing (a lapse without failsafe cover, a restart): epoch+1 as before."""
    st = _active_a()
    (promote,) = step(st, report(st, "a", 12, active_epoch=0))
    assert "keep_epoch" not in promote
    assert run(st, promote).groups[GROUP].epoch == 2


def test_restamp_and_failover_decided_on_the_old_stamp_only_one_wins() -> None:
    """The leader decided a failover from an expiry confirmed while the active was on
    failsafe leases; the active's quorum lease came back meanwhile and it was
    re-stamped at the same epoch. The epoch alone no longer tells them apart: the
    stamp does. Either order leaves exactly one of them applied."""
    st = _active_a()
    (failover,) = step(st, report(st, "b", 22), expired=frozenset({"n1"}))
    assert failover["replace"] == "a" and failover["expect_generation"] == 11
    (restamp,) = step(st, report(st, "a", 12, active_epoch=1))
    for first, second, holder, epoch in ((failover, restamp, "b", 2),
                                         (restamp, failover, "a", 1)):
        won = run(st, first)
        _, result = apply(won, second)
        assert not result["ok"] and result["error"] == "stale_epoch"
        assert (won.groups[GROUP].active, won.groups[GROUP].epoch) == (holder, epoch)


def test_a_demotion_decided_on_the_old_stamp_is_refused_after_the_restamp() -> None:
    st = _active_a()
    (demote,) = [c for c in step(st, report(st, "a", 11, health=Health.UNHEALTHY))
                 if c["op"] == "demote"]
    assert demote["expect_generation"] == 11
    (restamp,) = step(st, report(st, "a", 12, active_epoch=1))
    _, result = apply(run(st, restamp), demote)
    assert not result["ok"] and result["error"] == "stale_epoch"


def test_commands_without_the_stamp_check_as_before() -> None:
    """Commands in existing logs carry no expect_generation: the epoch alone decides."""
    st = _active_a()
    _, result = apply(st, C.demote(GROUP, 1, "old log entry"))
    assert result["ok"]
    _, result = apply(st, C.demote(GROUP, 1, "decided on another stamp", expect_generation=7))
    assert not result["ok"] and result["error"] == "stale_epoch"


def test_the_agent_takes_a_same_epoch_restamp_without_any_role_change() -> None:
    """Agent side (agents/core.py): the role is held at epoch 1 on failsafe grants, the
    quorum lease is back under generation 12 while the assignment still carries 11;
    the re-stamp (epoch 1, stamp 12) arrives: no release, no claim, at any step. Had it
    not come before the grants ended, the role would drop (an earlier lease's stamp)."""
    from vnfha.agents.core import AssignmentView, MemberRole, reconcile

    key = (GROUP, "a")
    roles = {key: MemberRole(seen_epoch=1, active_epoch=1)}
    old = {key: AssignmentView(active=True, epoch=1, generation=11)}
    new = {key: AssignmentView(active=True, epoch=1, generation=12)}
    for views, kept in ((old, {key}), (new, {key}), (new, set())):
        (step_,) = reconcile(roles, views, True, {}, "test", kept, generation=12)
        assert step_.effects == () and step_.seen_epoch == 1
    (step_,) = reconcile(roles, old, True, {}, "test", set(), generation=12)
    assert [(e.kind, e.reason) for e in step_.effects] == [
        ("release", "assignment from an earlier lease")]


def test_watches_are_renewed_only_while_a_held_role_waits_for_its_stamp() -> None:
    """agents/core.py `watch_lags`: after an outage cut by packet drops a watch stream's
    backlog comes at TCP's retransmission pace; an acknowledgement from a coordinator
    that applied more than the newest snapshot makes the agent subscribe again, but
    only while a held role waits for its new stamp (no churn otherwise)."""
    from vnfha.agents.core import watch_lags

    assert watch_lags(15, 14, True)
    assert not watch_lags(14, 14, True)  # the re-stamp is not committed yet
    assert not watch_lags(15, 14, False)  # nothing waits: the watch catches up on its own


def test_grants_are_asked_for_until_the_held_role_is_restamped() -> None:
    """agents/failsafe_peer.py keeps asking while the quorum is heard only in this case:
    the role held at its assigned epoch under another generation's stamp."""
    from vnfha.agents.failsafe import awaits_restamp

    assert awaits_restamp(active_epoch=3, assigned_epoch=3, stamp=11, generation=12)
    assert not awaits_restamp(3, 3, 12, 12)  # re-stamped: the quorum lease alone holds it
    assert not awaits_restamp(3, 3, 0, 12)  # unstamped (a coordinator before generations)
    assert not awaits_restamp(0, 3, 11, 12)  # not held: failsafe never starts a role
    assert not awaits_restamp(3, 4, 11, 12)  # the epoch moved: the role is being released
