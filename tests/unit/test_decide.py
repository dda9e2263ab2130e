"""`decide` driven by a fake clock: elections, lease expiry, release-before-promote."""

from __future__ import annotations

import random

import pytest
from cluster_builders import GROUP, build, run
from scenario import EPS, POLICY, STABILIZATION, TTL, Scenario, ops

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import new_rid
from vnfha.coordinator.decide import MemberReport, NodeSeen, Observations, decide
from vnfha.coordinator.model import Health, state_to_dict
from vnfha.coordinator.state_machine import apply

# --- elections ------------------------------------------------------------------------------------


def test_initial_election_highest_priority():
    sc = Scenario(build(health=None))  # registered, nothing reported yet
    assert sc.step() == []
    for m in ("a", "b", "c"):
        sc.health(m, Health.HEALTHY)
    sc.keepalive_all()
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "a", "healthy"), ("set_health", "b", "healthy"),
                         ("set_health", "c", "healthy"), ("promote", "a")]
    assert cmds[-1]["expect_epoch"] == 0
    assert sc.group().active == "a" and sc.group().epoch == 1


def test_election_tie_on_priority_breaks_on_name():
    sc = Scenario(build(members=(("zed", "n1", 100), ("bob", "n2", 100), ("al", "n3", 50))))
    sc.keepalive_all()
    assert ops(sc.step()) == [("promote", "bob")]


def test_no_election_of_unknown_unhealthy_or_maintenance_members():
    sc = Scenario(build(health=None))
    sc.health("a", Health.UNKNOWN).health("b", Health.UNHEALTHY).health("c", Health.HEALTHY)
    sc.submit(C.set_maintenance("n3", True))
    sc.keepalive_all()
    cmds = sc.step()
    assert ("promote", "a") not in ops(cmds) and all(c["op"] != "promote" for c in cmds)
    assert sc.group().active is None
    # Maintenance over: c, the only healthy member, is elected (not a or b).
    sc.submit(C.set_maintenance("n3", False))
    assert ops(sc.step()) == [("promote", "c")]


def test_election_skips_higher_priority_ineligible():
    sc = Scenario(build())
    sc.submit(C.set_maintenance("n1", True))
    sc.keepalive_all()
    assert ops(sc.step()) == [("promote", "b")]


def test_active_active_groups_get_no_election():
    st = build()
    st = run(st, C.apply_groups([{"name": GROUP, "mode": "active-active"}]))
    sc = Scenario(st)
    sc.keepalive_all()
    assert sc.step() == []


# --- lease expiry -----------------------------------------------------------------------------


def test_failover_only_after_ttl_from_last_keepalive():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    last = sc.now
    sc.advance(TTL - EPS).keepalive("n2", "n3")  # n1 silent from now on
    assert sc.step() == []
    sc.at(last + TTL).keepalive("n2", "n3")  # the coordinator's expiry is inclusive-generous
    assert sc.step() == []
    sc.at(last + TTL + EPS).keepalive("n2", "n3")
    cmds = sc.step()
    assert ops(cmds) == [("promote", "b", "replace=a")]
    assert cmds[0]["expect_epoch"] == 1
    assert sc.group().active == "b" and sc.group().epoch == 2
    assert sc.member("a").health == Health.LOST and sc.member("a").quarantined


def test_new_leader_expires_nothing_for_one_ttl():
    sc = Scenario(build(active="a"), now=50.0)  # leader since 50, no keepalives at all
    for t in (50.0, 50.0 + TTL / 2, 50.0 + TTL - EPS, 50.0 + TTL):
        sc.at(t)
        assert sc.decide() == [], t
    sc.at(50.0 + TTL + EPS)
    cmds = sc.step()
    # Nobody was heard from: all lost; the active is demoted and, its lease being over,
    # its release is confirmed at once. No promotion: no one is alive.
    assert ops(cmds) == [("set_health", "b", "lost"), ("set_health", "c", "lost"),
                         ("set_health", "a", "lost"), ("demote", "handover=None", "quarantine"),
                         ("confirm_release", "a")]
    assert "lease expired" in cmds[-1]["reason"]
    assert sc.group().active is None and sc.group().releasing is None


def test_new_leader_measures_from_leadership_not_old_keepalive():
    """A keepalive timestamp older than leader_since counts as leader_since."""
    st = build(active="a")
    obs = Observations(leader_since=200.0, nodes={
        n: NodeSeen(last_keepalive=150.0) for n in ("n1", "n2", "n3")})
    assert decide(st, obs, 200.0 + TTL, POLICY, ids=new_rid, at=0.0) == []
    assert decide(st, obs, 200.0 + TTL + EPS, POLICY, ids=new_rid, at=0.0) != []


def test_new_leader_fails_over_silent_active_after_one_ttl():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(1.0)
    sc.new_leader()
    start = sc.now
    sc.advance(TTL - EPS).keepalive("n2", "n3")
    assert sc.step() == []
    sc.at(start + TTL + EPS).keepalive("n2", "n3")
    assert ops(sc.step()) == [("promote", "b", "replace=a")]


def test_quorum_word_keeps_a_silent_node_alive():
    """With several coordinators, a node this leader has not heard from is still alive
    while a majority has not expired it (the agent renews with any of them)."""
    sc = Scenario(build(active="a"))
    sc.quorum_expired = frozenset()
    sc.keepalive_all()
    sc.advance(TTL * 3).keepalive("n2", "n3")
    assert sc.step() == []
    assert sc.group().active == "a"
    sc.quorum_expired = frozenset({"n1"})
    assert ops(sc.step()) == [("promote", "b", "replace=a")]


def test_quorum_expired_does_not_override_own_fresh_view():
    sc = Scenario(build(active="a"))
    sc.quorum_expired = frozenset({"n1", "n2", "n3"})
    sc.keepalive_all()
    sc.advance(TTL - EPS).keepalive("n1")
    assert ops(sc.step()) == [], "heard from n1 within TTL: alive whatever others say"


def test_stabilization_needs_our_own_fresh_report():
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a"))
    sc.quorum_expired = frozenset()
    sc.keepalive_all()
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    sc.step()
    sc.advance(1.0).health("b", Health.HEALTHY).keepalive_all()
    back = sc.now
    sc.step()
    sc.at(back + STABILIZATION + 1.0).keepalive("n1")  # n2 alive by quorum word only
    assert sc.step() == []
    assert sc.member("b").quarantined
    sc.keepalive("n2")
    assert ops(sc.step()) == [("clear_quarantine", "b")]


def test_lost_active_with_healthy_standby_is_one_command():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(TTL + EPS).keepalive("n2", "n3")
    cmds = sc.step()
    assert len(cmds) == 1
    cmd = cmds[0]
    assert (cmd["op"], cmd["member"], cmd["replace"], cmd["expect_epoch"]) == (
        "promote", "b", "a", 1)


def test_lost_active_prefers_best_standby_alive():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(TTL + EPS).keepalive("n3")  # b's node went silent too
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "b", "lost"), ("promote", "c", "replace=a")]


def test_lost_active_without_standby_demotes_then_elects_later():
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a"))
    sc.health("b", Health.UNKNOWN)  # b's VNFC is still starting
    sc.keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "unknown")]
    sc.advance(TTL + EPS).keepalive("n2")
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "a", "lost"), ("demote", "handover=None", "quarantine"),
                         ("confirm_release", "a")]
    g = sc.group()
    assert (g.active, g.releasing, g.epoch) == (None, None, 2)
    sc.advance(1.0).keepalive("n2")
    assert sc.step() == []
    sc.health("b", Health.HEALTHY)
    sc.advance(0.5).keepalive("n2")
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "b", "healthy"), ("promote", "b")]
    assert cmds[-1]["expect_epoch"] == 2 and sc.group().epoch == 3


# --- demotion waits for the release --------------------------------------------------------------


def _unhealthy_active() -> Scenario:
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(0.5)
    sc.health("a", Health.UNHEALTHY)
    sc.keepalive_all(sync=False)
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "a", "unhealthy"), ("demote", "handover=b", "quarantine")]
    g = sc.group()
    assert (g.active, g.releasing, g.releasing_epoch, g.handover_to) == (None, "a", 2, "b")
    return sc


def test_unhealthy_active_no_promote_on_stale_report():
    sc = _unhealthy_active()
    for _ in range(5):  # many keepalives, all from before the agent saw epoch 2
        sc.advance(TTL / 3).keepalive("n1", sync=False).keepalive("n2", "n3")
        assert sc.step() == []
    assert sc.group().active is None and sc.group().releasing == "a"


def test_unhealthy_active_no_promote_while_agent_still_holds_role():
    sc = _unhealthy_active()
    sc.advance(0.1)
    a = sc.agent("a")
    a.seen_epoch, a.active_epoch = 2, 1  # saw the demotion, VIP not dropped yet
    sc.keepalive("n1", sync=False).keepalive("n2", "n3")
    assert sc.step() == []


def test_unhealthy_active_promote_after_release_confirmed():
    sc = _unhealthy_active()
    sc.advance(0.1).keepalive("n1")  # agent processed epoch 2 and let go
    assert (sc.agent("a").seen_epoch, sc.agent("a").active_epoch) == (2, 0)
    cmds = sc.step()
    assert ops(cmds) == [("confirm_release", "a"), ("promote", "b")]
    assert cmds[0]["reason"] == "agent confirmed"
    assert cmds[1]["expect_epoch"] == 2
    assert sc.group().active == "b" and sc.group().epoch == 3


def test_unhealthy_active_promote_after_its_lease_expires():
    sc = _unhealthy_active()
    last_n1 = sc.now
    sc.advance(TTL - EPS).keepalive("n2", "n3")  # n1 silent, never confirms
    assert sc.step() == []
    sc.at(last_n1 + TTL + EPS).keepalive("n2", "n3")
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "a", "lost"), ("confirm_release", "a"),
                         ("promote", "b")]
    assert cmds[1]["reason"] == "lease expired"


def test_agent_reporting_lost_for_live_active_does_not_skip_release():
    """LOST means 'lease expired'. A live agent that says LOST (a bug, or a wire value
    passed through) still holds its lease, so the coordinator must wait for the
    release rather than replace the active in one step."""
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(0.5)
    sc.health("a", Health.LOST)
    sc.keepalive_all(sync=False)
    cmds = sc.step()
    assert all(not c.get("replace") for c in cmds), ops(cmds)
    assert "promote" not in [c["op"] for c in cmds]
    assert sc.group().releasing == "a"


# --- planned switchover and maintenance ---------------------------------------------------------


@pytest.mark.parametrize(("to", "expected"), [("c", "c"), (None, "b")])
def test_planned_switchover_release_then_promote(to, expected):
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.switchover(GROUP, to))
    assert sc.group().handover_to == expected
    sc.advance(0.2).keepalive("n1", sync=False).keepalive("n2", "n3")
    assert sc.step() == []
    sc.advance(0.2).keepalive("n1")
    cmds = sc.step()
    assert ops(cmds) == [("confirm_release", "a"), ("promote", expected)]
    assert cmds[1]["reason"] == "planned switchover"
    g = sc.group()
    assert (g.active, g.epoch, g.handover_to) == (expected, 3, None)
    assert not sc.member("a").quarantined
    sc.advance(1.0).keepalive_all()
    assert sc.step() == []  # no flapping back to the higher-priority a


def test_switchover_target_failed_meanwhile_falls_back_to_best():
    """The chosen target failed before the old active let go: the best eligible member
    gets the role instead, which may be the released old active itself (it is healthy
    and not quarantined: a planned switchover is not a failure)."""
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.switchover(GROUP, "c"))
    sc.health("c", Health.UNHEALTHY)
    sc.advance(0.2).keepalive_all()
    cmds = sc.step()
    assert ops(cmds) == [("set_health", "c", "unhealthy"), ("confirm_release", "a"),
                         ("promote", "a")]
    assert cmds[-1]["reason"] == "no active member"
    assert sc.group().epoch == 3 and sc.group().handover_to is None
    # With a unavailable too, b is next.
    sc2 = Scenario(build(active="a"))
    sc2.keepalive_all()
    sc2.submit(C.switchover(GROUP, "c"))
    sc2.submit(C.set_maintenance("n1", True))
    sc2.health("c", Health.UNHEALTHY)
    sc2.advance(0.2).keepalive_all()
    assert ops(sc2.step()) == [("set_health", "c", "unhealthy"), ("confirm_release", "a"),
                               ("promote", "b")]


def test_maintenance_on_active_node_hands_over():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.submit(C.set_maintenance("n1", True))
    cmds = sc.step()
    assert ops(cmds) == [("demote", "handover=b", "keep")]
    assert not sc.member("a").quarantined
    sc.advance(0.2).keepalive("n1", sync=False)
    assert sc.step() == []
    sc.advance(0.2).keepalive("n1")
    assert ops(sc.step()) == [("confirm_release", "a"), ("promote", "b")]
    sc.submit(C.set_maintenance("n1", False))
    sc.advance(0.2).keepalive_all()
    assert sc.step() == []
    assert sc.group().active == "b"


# --- no flapping ------------------------------------------------------------------------------


def test_failed_member_needs_stabilization_before_election():
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a"))
    sc.keepalive_all()
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "unhealthy")]
    assert sc.member("b").quarantined
    sc.advance(1.0).health("b", Health.HEALTHY).keepalive_all()
    back = sc.now
    assert ops(sc.step()) == [("set_health", "b", "healthy")]
    # The active dies now: b is healthy but not yet stable, so it is not a standby.
    sc.advance(TTL + EPS).keepalive("n2")
    assert ops(sc.step()) == [("set_health", "a", "lost"),
                              ("demote", "handover=None", "quarantine"),
                              ("confirm_release", "a")]
    while sc.now + TTL / 3 < back + STABILIZATION:
        sc.advance(TTL / 3).keepalive("n2")
        assert sc.step() == [], sc.now - back
    sc.at(back + STABILIZATION - EPS).keepalive("n2")
    assert sc.step() == []
    sc.at(back + STABILIZATION).keepalive("n2")
    cmds = sc.step()
    assert ops(cmds) == [("clear_quarantine", "b"), ("promote", "b")]


def test_flapping_member_restarts_its_stabilization():
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a"))
    sc.keepalive_all()
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    sc.step()
    sc.advance(1.0).health("b", Health.HEALTHY).keepalive_all()
    sc.step()
    sc.advance(STABILIZATION / 2).health("b", Health.UNHEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "unhealthy")]
    sc.advance(1.0).health("b", Health.HEALTHY).keepalive_all()
    again = sc.now
    sc.step()
    sc.advance(STABILIZATION - 1.0).keepalive_all()  # stable long enough for the first run
    assert sc.step() == []
    assert sc.member("b").quarantined
    sc.at(again + STABILIZATION).keepalive_all()
    assert ops(sc.step()) == [("clear_quarantine", "b")]


def test_lost_member_returning_is_quarantined_until_stable():
    sc = Scenario(build(active="a"))
    sc.keepalive_all()
    sc.advance(TTL + EPS).keepalive("n2", "n3")
    assert ops(sc.step()) == [("promote", "b", "replace=a")]
    sc.advance(5.0)
    # a's agent restarts: unknown at first, then its VNFC is healthy from now on.
    sc.health("a", Health.UNKNOWN).health("a", Health.HEALTHY)
    sc.keepalive_all()
    back = sc.now
    assert ops(sc.step()) == [("set_health", "a", "healthy")]
    assert sc.member("a").quarantined
    sc.at(back + STABILIZATION).keepalive_all()
    assert ops(sc.step()) == [("clear_quarantine", "a")]
    assert sc.group().active == "b", "a stable member does not take the role back"


def test_no_stabilization_without_healthy_since():
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a"))
    sc.keepalive_all()
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    sc.step()
    sc.health("b", Health.HEALTHY)
    sc.agent("b").healthy_since = None
    sc.advance(STABILIZATION * 3).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "healthy")]
    assert sc.member("b").quarantined


# --- properties -------------------------------------------------------------------------------


def test_decide_is_pure():
    st = build(active="a")
    before = state_to_dict(st)
    # Only b's node is heard (and b reports healthy): a and c are lost.
    obs = Observations(leader_since=0.0, nodes={"n2": NodeSeen(
        last_keepalive=9.0, members={(GROUP, "b"): MemberReport(health=Health.HEALTHY)})})
    a = decide(st, obs, 10.0, POLICY, ids=iter(["r1", "r2"]).__next__, at=1234.5)
    b = decide(st, obs, 10.0, POLICY, ids=iter(["r1", "r2"]).__next__, at=1234.5)
    assert ops(a) == [("set_health", "c", "lost"), ("promote", "b", "replace=a")]
    # Whole commands, request ids and clocks included: no hidden uuid or clock inside.
    assert a == b
    assert [(c["rid"], c["at"]) for c in a] == [("r1", 1234.5), ("r2", 1234.5)]
    assert state_to_dict(st) == before, "decide must not touch the state it was given"


class _World:
    """Agents with their own conservative leases, for the split-brain checker.

    An agent acts as active for group g while (a) the last state it processed said so
    and (b) its lease, renewed by each acknowledged keepalive, has not run out.
    """

    LEASE = 0.9  # agent lease = TTL * LEASE after the keepalive was sent (< coordinator's)

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.sent: dict[str, float] = {}  # node -> last keepalive (any leader)

    def expire_leases(self) -> None:
        """An agent whose lease ran out has demoted itself: it holds nothing until it
        processes a state that makes it active again (DESIGN §3)."""
        sc = self.sc
        for node, sent in self.sent.items():
            if sc.now >= sent + TTL * self.LEASE:
                for m in sc.state.members_on(node):
                    sc.agent(m.name, m.group).active_epoch = 0

    def acting(self, group: str) -> list[str]:
        sc = self.sc
        out = []
        for m in sc.state.groups[group].members.values():
            a = sc.agent(m.name, group)
            sent = self.sent.get(m.node)
            if a.active_epoch and sent is not None and sc.now < sent + TTL * self.LEASE:
                out.append(m.name)
        return out


@pytest.mark.parametrize("seed", range(8))
def test_random_world_commands_accepted_and_no_split_brain(seed):
    """Random failures, recoveries, silences, leader changes and admin commands.
    After every step: every emitted command was accepted in order, decide is idempotent
    (Scenario.step), and at no instant do two agents of a group act as active."""
    rng = random.Random(seed)
    members = (("a", "n1", 100), ("b", "n2", 90), ("c", "n3", 80), ("d", "n3", 70))
    sc = Scenario(build(members=members, health=None))
    world = _World(sc)
    nodes = ["n1", "n2", "n3"]
    silent: set[str] = set()
    promotions = 0
    for _ in range(1500):
        sc.advance(rng.choice([0.05, 0.2, 0.5, 1.0, TTL / 2]))
        r = rng.random()
        if r < 0.05:
            sc.new_leader()
        elif r < 0.08:
            to = rng.choice([None, "a", "b", "c", "d"])
            st, _ = apply(sc.state, C.switchover(GROUP, to))
            sc.state = st
        elif r < 0.11:
            st, _ = apply(sc.state, C.set_maintenance(rng.choice(nodes), rng.random() < 0.5))
            sc.state = st
        for m, _n, _p in members:
            if rng.random() < 0.05:
                sc.health(m, rng.choice([Health.HEALTHY, Health.HEALTHY, Health.UNHEALTHY,
                                         Health.UNKNOWN, Health.LOST]))
        world.expire_leases()
        for n in nodes:
            if rng.random() < 0.04:
                silent.symmetric_difference_update({n})
            if n not in silent and rng.random() < 0.8:
                sc.keepalive(n, sync=rng.random() < 0.6)
                world.sent[n] = sc.now
        # The checker runs before and after the leader's decisions, at this instant.
        assert len(world.acting(GROUP)) <= 1, (sc.now, world.acting(GROUP))
        cmds = sc.step()
        promotions += sum(c["op"] == "promote" for c in cmds)
        assert len(world.acting(GROUP)) <= 1
        # Agents that keep talking soon learn the outcome; the checker keeps holding
        # those that do not until their own lease ends.
        g = sc.group()
        assert g.active is None or g.releasing is None
    assert promotions >= 10, "the random world must exercise failovers"


def test_commands_from_decide_apply_in_order_on_fresh_copy():
    """What decide proposes against a state is exactly what the state machine accepts,
    in order, even when several rules fire in one call."""
    st = build(health=None)
    obs = Observations(leader_since=0.0, nodes={})
    cmds = decide(st, obs, TTL + 1.0, POLICY, ids=new_rid, at=0.0)  # everyone lost
    assert ops(cmds) == [("set_health", "a", "lost"), ("set_health", "b", "lost"),
                         ("set_health", "c", "lost")]
    for c in cmds:
        st, r = apply(st, c)
        assert r["ok"], r
    assert decide(st, obs, TTL + 1.0, POLICY, ids=new_rid, at=0.0) == []


def test_new_leader_grace_does_not_revive_stale_reports():
    """Regression (seen in the demo): a leader that had just taken over counted a
    dead node's old 'healthy' report as current during its one-TTL grace and
    flipped the member from LOST back to healthy. The grace only stops expiry."""
    st = build(active="b")
    st, _ = apply(st, C.set_health(GROUP, "a", Health.LOST))
    now = 100.0
    obs = Observations(leader_since=now - 0.1, nodes={
        "n1": NodeSeen(last_keepalive=now - 5.0,
                       members={(GROUP, "a"): MemberReport(health=Health.HEALTHY)}),
        "n2": NodeSeen(last_keepalive=now - 0.05,
                       members={(GROUP, "b"): MemberReport(health=Health.HEALTHY,
                                                           seen_epoch=1, active_epoch=1)}),
    })
    cmds = decide(st, obs, now, POLICY, ids=new_rid, at=0.0)
    assert [c for c in cmds if c.get("member") == "a"] == []


def test_member_without_a_fresh_report_is_never_elected():
    st = build()  # no active yet
    now = 100.0
    stale = Observations(leader_since=0.0, nodes={
        n: NodeSeen(last_keepalive=now - 2 * TTL,
                    members={(GROUP, m): MemberReport(health=Health.HEALTHY)})
        for n, m in (("n1", "a"), ("n2", "b"), ("n3", "c"))}, quorum_expired=frozenset())
    cmds = decide(st, stale, now, POLICY, ids=new_rid, at=0.0)
    assert [c for c in cmds if c["op"] == "promote"] == []


# --- a clean start: a new member's first results ----------------------------------------------


def test_fresh_cluster_first_unhealthy_is_not_a_failure():
    """Issue 15: at first start the checks fail until the VNFC is up. That is a start, not
    a failure: no quarantine, and the first member reported healthy is elected at once."""
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), health=None))
    sc.health("a", Health.UNHEALTHY).health("b", Health.UNHEALTHY).keepalive_all()
    assert sc.step() == []  # nothing to record: still "unknown", i.e. never healthy
    assert sc.member("a").health == Health.UNKNOWN and not sc.member("a").quarantined
    sc.advance(1.0).health("b", Health.HEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "healthy"), ("promote", "b")]
    sc.advance(1.0).health("a", Health.HEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "a", "healthy")]
    assert not sc.member("a").quarantined and not sc.member("b").quarantined
    # a is a standby at once: the active failing hands over to it without a wait.
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "unhealthy"),
                              ("demote", "handover=a", "quarantine")]


def test_never_healthy_member_is_never_elected():
    """The rule must not make an unhealthy member eligible: alone, reporting unhealthy
    for far longer than the stabilization time, it is never promoted."""
    sc = Scenario(build(members=(("a", "n1", 100),), health=None))
    sc.health("a", Health.UNHEALTHY)
    for _ in range(int(3 * STABILIZATION / (TTL / 3))):
        sc.advance(TTL / 3).keepalive_all()
        assert sc.step() == []
    assert sc.group().active is None and sc.member("a").health == Health.UNKNOWN


def test_member_that_was_healthy_once_is_quarantined_on_failure():
    """Only a member never reported healthy is exempt: once healthy, a failure counts."""
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), health=None))
    sc.health("a", Health.HEALTHY).health("b", Health.HEALTHY).keepalive_all()
    assert ops(sc.step())[-1] == ("promote", "a")
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "unhealthy")]
    assert sc.member("b").quarantined


def test_new_member_whose_node_goes_silent_is_lost_and_quarantined():
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), health=None))
    sc.health("a", Health.UNHEALTHY).health("b", Health.HEALTHY).keepalive_all()
    assert ops(sc.step()) == [("set_health", "b", "healthy"), ("promote", "b")]
    sc.advance(TTL + EPS).keepalive("n2")
    assert ops(sc.step()) == [("set_health", "a", "lost")]
    assert sc.member("a").quarantined


def test_stable_event_carries_the_group_epoch():
    """Issue 15: `stable` events always said epoch=0; like health_changed they carry the
    epoch of the group at the time, so an operator can place them among promotions."""
    sc = Scenario(build(members=(("a", "n1", 100), ("b", "n2", 90)), active="a"))
    sc.keepalive_all()
    sc.advance(1.0).health("b", Health.UNHEALTHY).keepalive_all()
    sc.step()
    sc.advance(1.0).health("b", Health.HEALTHY).keepalive_all()
    sc.step()
    sc.advance(STABILIZATION).keepalive_all()
    assert ops(sc.step()) == [("clear_quarantine", "b")]
    stable = [e for e in sc.state.events if e.kind == "stable"]
    assert [(e.member, e.epoch) for e in stable] == [("b", sc.group().epoch)]
    assert sc.group().epoch == 1
