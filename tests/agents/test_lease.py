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


def test_a_majority_answering_different_rounds_holds_the_lease() -> None:
    """An overloaded coordinator answers a node only every so often (rationing), so
    three of them rarely answer the same round. Each acknowledgement is its own
    promise: the lease runs from the newest time a majority each heard a round sent
    at or after. (Counting only rounds a majority acknowledged in common held no lease
    here at all.)"""
    q = lease()
    for seq, at in ((1, 10.0), (2, 10.1), (3, 10.2), (4, 10.3)):
        q.sent(seq, at)
    assert not q.acked(1, "c1", 1000)  # c1 answers round 1 only
    assert q.acked(2, "c2", 1000)  # c2 round 2: c1 and c2 heard rounds sent >= 10.0
    assert q.deadline() == pytest.approx(10.9)
    assert q.acked(3, "c3", 1000)  # c2 and c3 heard rounds sent >= 10.1
    assert q.deadline() == pytest.approx(11.0)
    assert q.acked(4, "c1", 1000)
    assert q.deadline() == pytest.approx(11.1)  # c1 (10.3) and c3 (10.2)


def test_no_majority_that_could_expire_the_node_lies_before_the_lease_ends() -> None:
    """The safety argument checked exhaustively on random acknowledgement patterns: for
    every majority of the cluster (the coordinators whose votes could expire the node),
    one of them acknowledged a round sent at or after the time the lease is dated from,
    so it reports the node heard no earlier than that; and the lease is dated from the
    latest such time (nothing looser, nothing stricter)."""
    import itertools
    import random

    rng = random.Random(14)
    for _ in range(2_000):
        n = rng.choice((3, 5))
        ids = [f"c{i}" for i in range(1, n + 1)]
        q = QuorumLease(coordinators=n, ttl=1.0, drift=0.0, margin=0.0)
        rounds = rng.randint(1, 12)
        for seq in range(1, rounds + 1):
            q.sent(seq, seq * 0.1)
        newest: dict[str, float] = {}
        for _ack in range(rng.randint(0, 3 * n)):
            seq, cid = rng.randint(1, rounds), rng.choice(ids)
            q.acked(seq, cid, 1000)
            newest[cid] = max(newest.get(cid, 0.0), seq * 0.1)
        majority = n // 2 + 1
        majorities = list(itertools.combinations(ids, majority))
        if q.deadline() is None:
            assert len(newest) < majority
            continue
        base = q.deadline() - 1.0
        for voters in majorities:  # safe: every expiring majority holds a witness
            assert max(newest.get(c, -1.0) for c in voters) >= base - 1e-9
        # tight: some majority all heard rounds sent at or after `base`
        assert any(min(newest.get(c, -1.0) for c in voters) >= base - 1e-9
                   for voters in majorities)
