"""The agent's quorum lease counted against the announced cluster membership (pure)."""

from __future__ import annotations

import pytest

from vnfha.agents.lease import QuorumLease

FIVE = ["c1", "c2", "c3", "c4", "c5"]
THREE = ["c1", "c2", "c3"]


def lease(listed: int = 3) -> QuorumLease:
    return QuorumLease(coordinators=listed, ttl=1.0, drift=0.0, margin=0.1)


def test_majority_of_own_list_without_announcements() -> None:
    q = lease()
    q.sent(1, 10.0)
    assert not q.acked(1, "c1", 1000)
    assert q.acked(1, "c2", 1000)
    assert q.deadline() == pytest.approx(10.9)
    assert q.valid(10.5) and not q.valid(10.9)


def test_stale_list_after_growth_needs_the_new_majority() -> None:
    """Listed 3, cluster announces 5: two acks (old majority) hold nothing."""
    q = lease(3)
    q.sent(1, 10.0)
    assert q.announce("c1", FIVE)
    q.acked(1, "c1", 1000)
    q.announce("c2", FIVE)
    q.acked(1, "c2", 1000)
    assert q.quorum == 3
    assert q.deadline() is None and not q.valid(10.1)
    q.acked(1, "c3", 1000)  # all three listed ones: a majority of five, justified
    assert q.valid(10.1)


def test_growth_announced_later_revokes_a_deadline_granted_under_the_old_quorum() -> None:
    q = lease(3)
    q.sent(1, 10.0)
    q.acked(1, "c1", 1000)
    q.acked(1, "c2", 1000)
    assert q.valid(10.1)
    assert q.announce("c1", FIVE)
    assert not q.valid(10.1)
    assert q.deadline() is None


def test_revocation_keeps_rounds_that_still_meet_the_new_quorum() -> None:
    q = lease(3)
    q.sent(1, 10.0)
    for c in THREE:
        q.acked(1, c, 1000)
    q.sent(2, 10.2)
    q.acked(2, "c1", 1000)
    q.acked(2, "c2", 1000)
    assert q.deadline() == pytest.approx(11.1)
    q.announce("c3", FIVE)
    assert q.deadline() == pytest.approx(10.9)  # round 1 (3 acks), not round 2 (2 acks)


def test_subset_list_is_unjustified_and_says_why() -> None:
    q = lease(2)
    assert q.unjustified() is None
    q.announce("c1", FIVE)
    why = q.unjustified()
    assert why is not None and "lists 2" in why and "announces 5" in why and "needs 3" in why


def test_acks_from_outside_the_announced_set_do_not_count() -> None:
    q = lease(3)
    q.announce("c1", THREE)
    q.sent(1, 10.0)
    q.acked(1, "c1", 1000)
    assert not q.counts("x9")
    assert not q.acked(1, "x9", 1000)  # a coordinator of another cluster, listed by mistake
    assert not q.valid(10.1)
    assert q.acked(1, "c2", 1000)


def test_own_list_larger_than_announced_set_wins() -> None:
    q = lease(5)
    q.announce("c1", THREE)
    assert q.quorum == 3
    q.sent(1, 10.0)
    q.acked(1, "c1", 1000)
    assert not q.acked(1, "c2", 1000)


def test_union_of_differing_views_during_a_rolling_change() -> None:
    q = lease(3)
    q.announce("c1", THREE)
    q.announce("c4", ["c1", "c2", "c4", "c5", "c6"])
    assert q.announced == frozenset(["c1", "c2", "c3", "c4", "c5", "c6"])
    assert q.quorum == 4


def test_repeated_announcement_changes_nothing() -> None:
    q = lease(3)
    assert q.announce("c1", THREE)
    assert not q.announce("c1", THREE)
    assert not q.announce("c2", THREE)  # same union, same quorum
    assert not q.announce("c2", [])  # an old coordinator says nothing


def test_acked_since_needs_a_quorum_on_a_round_sent_at_or_after_seq() -> None:
    """A drain waits for this before exiting: the round reporting the release is in."""
    q = lease()
    q.sent(1, 10.0)
    q.acked(1, "c1", 1000)
    q.acked(1, "c2", 1000)
    q.sent(2, 10.1)
    assert not q.acked_since(2)  # round 1's quorum says nothing of round 2
    q.acked(2, "c3", 1000)
    assert not q.acked_since(2)  # one ack is not a majority
    q.acked(2, "c1", 1000)
    assert q.acked_since(2) and q.acked_since(1) and not q.acked_since(3)
