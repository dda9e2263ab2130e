"""Lease generations on the leader's side (decide rule 9, docs/design.md §3): every
promotion is stamped with its agent's reported generation, only a member under a
running lease is elected, and an active whose agent reports a new generation while
holding nothing is promoted again. Pure: hand-made observations, the real `apply`."""

from __future__ import annotations

import pytest
from cluster_builders import GROUP, build, run

from vnfha.coordinator import commands as C
from vnfha.coordinator.decide import MemberReport, NodeSeen, Observations, decide
from vnfha.coordinator.model import ClusterState, Health, state_from_dict, state_to_dict
from vnfha.coordinator.observations import Policy
from vnfha.coordinator.state_machine import apply

POLICY = Policy(ttl=3.0, stabilization=10.0)
NOW = 100.0
NODES = {"a": "n1", "b": "n2", "c": "n3"}
_ids = iter(range(1_000_000))


def report(state: ClusterState, member: str, generation: int, leased: bool = True,
           active_epoch: int = 0, health: Health = Health.HEALTHY) -> tuple[str, NodeSeen]:
    g = state.groups[GROUP]
    return NODES[member], NodeSeen(last_keepalive=NOW, members={(GROUP, member): MemberReport(
        health=health, seen_epoch=g.epoch, active_epoch=active_epoch,
        healthy_since=NOW - 1000.0, generation=generation, leased=leased)})


def step(state: ClusterState, *seen: tuple[str, NodeSeen],
         expired: frozenset[str] | None = None) -> list[C.Command]:
    nodes = dict(seen)
    for member, node in NODES.items():  # the others: standbys heard, not expired
        if node not in nodes and node not in (expired or ()):
            nodes[node] = report(state, member, 50 + len(nodes))[1]
    obs = Observations(leader_since=NOW - 10.0, nodes=nodes, quorum_expired=expired)
    return decide(state, obs, NOW, POLICY, ids=lambda: f"r{next(_ids)}", at=0.0)


def test_election_stamps_the_reported_generation() -> None:
    st = build()
    cmds = step(st, report(st, "a", 11), report(st, "b", 22), report(st, "c", 33))
    assert [c["op"] for c in cmds] == ["promote"]
    (promote,) = [c for c in cmds if c["op"] == "promote"]
    assert (promote["member"], promote["generation"]) == ("a", 11)
    st = run(st, *cmds)
    assert (st.groups[GROUP].active, st.groups[GROUP].active_generation) == ("a", 11)


def test_the_best_member_is_promoted_once_its_agent_has_a_lease() -> None:
    """Stamped with a generation that has no lease yet, the promotion would only wait
    for a re-confirmation: it waits for the leased report instead, and the choice of
    member does not change (the lower-priority b, leased first, is not taken). A
    legacy agent (generation 0) is elected as before."""
    st = build()
    cmds = step(st, report(st, "a", 11, leased=False), report(st, "b", 22),
                report(st, "c", 33))
    assert [c for c in cmds if c["op"] == "promote"] == []
    cmds = step(st, report(st, "a", 12), report(st, "b", 22), report(st, "c", 33))
    assert [(c["member"], c["generation"]) for c in cmds if c["op"] == "promote"] == [
        ("a", 12)]
    legacy = step(st, report(st, "a", 0, leased=False), report(st, "b", 22, leased=False),
                  report(st, "c", 33, leased=False))
    assert [(c["member"], c.get("generation")) for c in legacy if c["op"] == "promote"] == [
        ("a", None)]


def test_failover_waits_for_the_successors_lease_not_demotes() -> None:
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    assert step(st, report(st, "b", 22, leased=False), report(st, "c", 33),
                expired=frozenset({"n1"})) == []


def test_failover_stamps_the_successor() -> None:
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    cmds = step(st, report(st, "b", 22), report(st, "c", 33), expired=frozenset({"n1"}))
    (promote,) = cmds
    assert (promote["member"], promote["replace"], promote["generation"]) == ("b", "a", 22)


def test_an_active_under_a_new_generation_holding_nothing_is_promoted_again() -> None:
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    cmds = step(st, report(st, "a", 12))
    (promote,) = cmds
    assert (promote["op"], promote["member"], promote["expect_epoch"], promote["generation"],
            promote["reconfirm"]) == ("promote", "a", 1, 12, True)
    st = run(st, promote)
    g = st.groups[GROUP]
    assert (g.active, g.epoch, g.active_generation) == ("a", 2, 12)
    assert st.events[-1].kind == "promoted" and "new lease" in st.events[-1].reason
    assert step(st, report(st, "a", 12)) == []  # its stamp now: nothing more


@pytest.mark.parametrize("why, kwargs", [
    ("same generation: the watch has not brought it yet", {"generation": 11}),
    ("no lease yet under the new generation", {"generation": 12, "leased": False}),
    ("a legacy agent", {"generation": 0}),
])
def test_no_reconfirmation(why: str, kwargs: dict) -> None:
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    assert step(st, report(st, "a", **kwargs)) == [], why


def test_an_active_holding_the_current_epoch_under_a_new_generation_is_promoted_again(
        ) -> None:
    """Failsafe leases keep a role across a lapse of the quorum lease; when the quorum
    is back the agent has a new generation and still holds the current epoch: it is
    re-confirmed at once, before those leases end (and a report sent between the new
    lease and the release of a stale role gets the same, one round earlier)."""
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    (promote,) = step(st, report(st, "a", 12, active_epoch=1))
    assert (promote["member"], promote["generation"], promote["reconfirm"]) == ("a", 12, True)


def test_an_unstamped_promotion_is_left_alone() -> None:
    """A promotion from before generations (stamp 0) is acted on by any agent."""
    st = run(build(), C.promote(GROUP, "a", 0, "test"))
    assert step(st, report(st, "a", 12)) == []


def test_reconfirmation_and_failover_race_on_the_epoch_only_one_wins() -> None:
    """The leader decided a failover from a confirmed expiry; the active's agent renewed
    under a new generation meanwhile and was re-confirmed: both expect epoch 1."""
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    (failover,) = step(st, report(st, "b", 22), expired=frozenset({"n1"}))
    (reconfirm,) = step(st, report(st, "a", 12))
    for first, second, holder in ((failover, reconfirm, "b"), (reconfirm, failover, "a")):
        won = run(st, first)
        _, result = apply(won, second)
        assert not result["ok"] and won.groups[GROUP].active == holder


def test_reconfirm_only_the_active() -> None:
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=11))
    _, result = apply(st, C.promote(GROUP, "b", 1, "x", generation=5, reconfirm=True))
    assert not result["ok"] and result["error"] == "conflict"
    assert "not the active" in result["message"]


def test_generation_is_validated_and_persisted() -> None:
    st = run(build(), C.promote(GROUP, "a", 0, "test", generation=2**63 - 1))
    assert state_from_dict(state_to_dict(st)).groups[GROUP].active_generation == 2**63 - 1
    old = state_to_dict(run(build(), C.promote(GROUP, "a", 0, "test")))
    assert "active_generation" not in old["groups"][GROUP]  # unchanged for unstamped states
    for bad in (-1, 2**64, True, "7"):
        with pytest.raises(C.InvalidCommand):
            C.validate_command({**C.promote(GROUP, "a", 0, "x"), "generation": bad})
