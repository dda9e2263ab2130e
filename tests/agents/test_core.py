"""The agent's sans-IO core (agents/core.py): the role rule and its effects, pure."""

from __future__ import annotations

from vnfha.agents import core
from vnfha.agents.core import AssignmentView, MemberRole

K = ("g", "a")
G = 77  # the agent's current lease generation


def kinds(steps: list[core.MemberStep]) -> list[tuple[str, int]]:
    return [(e.kind, e.epoch) for s in steps for e in s.effects]


def test_claims_only_with_assignment_and_lease() -> None:
    roles = {K: MemberRole()}
    active = {K: AssignmentView(active=True, epoch=3)}
    assert kinds(core.reconcile(roles, active, True, {}, "x", generation=G)) == [("claim", 3)]
    assert kinds(core.reconcile(roles, active, False, {}, "x", generation=G)) == []
    assert kinds(core.reconcile(roles, {K: AssignmentView(False, 3)}, True, {}, "x",
                                generation=G)) == []
    assert kinds(core.reconcile(roles, active, True, {K: "hung hook"}, "x", generation=G)) == []


def test_lease_end_releases_with_reason() -> None:
    steps = core.reconcile({K: MemberRole(3, 3)}, {K: AssignmentView(True, 3)}, False, {}, "t",
                           generation=G)
    (effect,) = steps[0].effects
    assert (effect.kind, effect.epoch, effect.reason) == ("release", 3, "lease expired")


def test_a_held_role_promoted_again_moves_to_the_new_epoch_without_a_release() -> None:
    """The same member promoted again while it acts (a re-confirmation under a new lease
    generation): holding the old epoch up to this step was justified, and the new one
    is justified from it on, so the VIP stays (no gap for clients); the VNFC is told
    the new epoch, which fences the old one."""
    steps = core.reconcile({K: MemberRole(3, 3)}, {K: AssignmentView(True, 5)}, True, {}, "t",
                           generation=G)
    assert kinds(steps) == [("claim", 5)]
    assert steps[0].seen_epoch == 5


def test_a_new_epoch_under_another_lease_still_releases() -> None:
    """Not this lease's promotion: the held role ends and nothing is claimed."""
    steps = core.reconcile({K: MemberRole(3, 3)},
                           {K: AssignmentView(True, 5, generation=G + 1)}, True, {}, "t",
                           generation=G)
    assert kinds(steps) == [("release", 3)]


def test_older_epoch_than_seen_is_never_claimed() -> None:
    """A lagging coordinator's snapshot cannot bring back a role already demoted."""
    steps = core.reconcile({K: MemberRole(7, 0)}, {K: AssignmentView(True, 6)}, True, {}, "t",
                           generation=G)
    assert kinds(steps) == [] and steps[0].seen_epoch == 7


def test_effect_order_keeps_vip_after_guards_and_vnfc_first_on_release() -> None:
    claim = core.role_change_steps(True)
    assert claim.index("guardian_hold") < claim.index("add_vip") < claim.index("notify_vnfc")
    assert claim.index("kernel_hold") < claim.index("add_vip")
    release = core.role_change_steps(False)
    assert release[0] == "notify_vnfc"
    assert release.index("kernel_release") < release.index("remove_vip")


def test_small_rules() -> None:
    assert core.wake_at(10.0, 4.0, 1.0) == 4.0
    assert core.wake_at(10.0, 0.5, 1.0) == 10.0
    assert core.wake_at(10.0, None, 1.0) == 10.0
    assert core.may_hold(5.0, 4.9) and not core.may_hold(5.0, 5.0)
    assert not core.may_hold(None, 0.0)
    assert core.history_reset(3, 10) and not core.history_reset(10, 10)
    assert core.newer_snapshot(11, 10) and not core.newer_snapshot(10, 10)
    assert not core.report_healthy("blocked", True) and core.report_healthy(None, True)
    views = {K: AssignmentView(False, 4)}
    assert not core.handed_over([("g", "a", "b", 4)], views)
    assert core.handed_over([("g", "a", "b", 3)], views)
    assert core.handed_over([("g", "a", "", 9)], views)
    assert core.release_all({K: MemberRole(2, 2), ("g", "b"): MemberRole(2, 0)}, "stop") == [
        core.RoleEffect("release", "g", "a", 2, "stop")]


def test_watchdog_blames_the_ticker_only_when_the_process_ran() -> None:
    assert core.watchdog(now=10.0, last_wake=9.9, period=0.1, beat=9.95, bound=2.0) == "ok"
    assert core.watchdog(now=10.0, last_wake=9.9, period=0.1, beat=7.0, bound=2.0) == "stalled"
    # Woke 5 s late itself: the whole process was frozen; not the ticker's fault.
    assert core.watchdog(now=10.0, last_wake=5.0, period=0.1, beat=5.0, bound=2.0) == "frozen"


def test_claims_only_an_assignment_stamped_with_the_current_generation() -> None:
    """The gap the simulator found: after a lapse (a new generation) an assignment given
    to the earlier lease is never acted on, whatever the lease and epoch say."""
    roles = {K: MemberRole(3, 0)}
    mine = {K: AssignmentView(True, 3, generation=G)}
    older = {K: AssignmentView(True, 3, generation=G - 1)}
    unstamped = {K: AssignmentView(True, 3)}  # a coordinator from before generations
    assert kinds(core.reconcile(roles, mine, True, {}, "x", generation=G)) == [("claim", 3)]
    assert kinds(core.reconcile(roles, older, True, {}, "x", generation=G)) == []
    assert kinds(core.reconcile(roles, unstamped, True, {}, "x", generation=G)) == [("claim", 3)]


def test_a_role_held_across_a_lapse_is_released_under_the_new_generation() -> None:
    """A frozen agent never reconciled during its lapse: the renewal releases, not keeps."""
    steps = core.reconcile({K: MemberRole(3, 3)}, {K: AssignmentView(True, 3, generation=G)},
                           True, {}, "lease renewed", generation=G + 1)
    (effect,) = steps[0].effects
    assert (effect.kind, effect.epoch, effect.reason) == (
        "release", 3, "assignment from an earlier lease")


def test_every_acquisition_starts_a_generation() -> None:
    assert core.starts_generation(None, 5.0, 1.0)  # the first lease
    assert core.starts_generation(0.9, 5.0, 1.0)  # after a lapse (even an unobserved one)
    assert core.starts_generation(1.0, 5.0, 1.0)  # the deadline itself is outside
    assert not core.starts_generation(1.1, 5.0, 1.0)  # a running lease extended
    assert not core.starts_generation(None, 0.5, 1.0)  # a late ack: still no lease
    assert not core.starts_generation(0.5, None, 1.0)  # a recount that removed it
