"""The majority-confirmed expiry rule (coordinator/expiry.py), pure."""

from __future__ import annotations

from vnfha.coordinator import expiry

TTL = 1.0


def test_grace_start_is_the_later_of_leading_and_serving_plus_ttl() -> None:
    assert expiry.grace_start(10.0, 2.0, TTL) == 10.0
    assert expiry.grace_start(10.0, 12.0, TTL) == 13.0


def test_nothing_is_stale_during_the_grace_but_every_age_is_asked() -> None:
    asked: list[str] = []

    def age(n: str) -> float:
        asked.append(n)
        return 5.0

    assert expiry.stale(["a", "b"], age, TTL, now=10.5, since=10.0) == []
    assert asked == ["a", "b"]
    assert expiry.stale(["a", "b"], age, TTL, now=11.5, since=10.0) == ["a", "b"]
    assert expiry.stale(["a"], lambda n: TTL, TTL, now=20.0, since=0.0) == []  # not > ttl


def test_a_majority_must_confirm_and_silent_peers_vote_for_nobody() -> None:
    tally = expiry.votes(["a", "b"], [{"a": 2.0, "b": 0.5}, None], TTL)
    assert tally == {"a": 2, "b": 1}
    assert expiry.confirmed(tally, quorum=2) == frozenset({"a"})
    assert expiry.confirmed(expiry.votes(["a"], [{}, {}], TTL), quorum=2) == frozenset()


def test_wake_in() -> None:
    assert expiry.wake_in(0.05, None, 0.0, False) == 0.05
    assert expiry.wake_in(0.05, 0.01, 0.0, False) == 0.012
    assert expiry.wake_in(0.05, None, 0.0, True) == 0.005
