"""The majority-confirmed expiry rule (coordinator/expiry.py), pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cluster_builders import build

from vnfha.coordinator import core, expiry
from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import Health
from vnfha.coordinator.observations import Policy

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


def _round(answers: Sequence[Mapping[str, float] | None], now: float
           ) -> tuple[core.Round, list[list[str]]]:
    """One leader round over a healthy active on n1 (and a standby on n2), n1 silent
    since t=1 and n2 heard at `now`; `answers` is what the two peers say."""
    state = build((("a", "n1", 100), ("b", "n2", 90)), active="a")
    leases = LeaseTable(started_at=0.0, ttl=TTL)
    leases.record("n1", [Report("g", "a", Health.HEALTHY, 1, 1)], 1.0)
    leases.record("n2", [Report("g", "b", Health.HEALTHY, 1, 0)], now)
    asked: list[list[str]] = []

    def ask(stale: list[str]) -> Sequence[Mapping[str, float] | None]:
        asked.append(stale)
        return answers

    ids = iter(range(100))
    r = core.leader_round(state, leases, Policy(ttl=TTL, stabilization=10.0), now,
                          leader_since=0.0, quorum=2, ask=ask,
                          ids=lambda: f"r{next(ids)}", at=0.0)
    return r, asked


def test_leader_round_asks_only_about_stale_nodes_and_needs_a_majority() -> None:
    r, asked = _round([{"n1": 0.1}, None], now=1.5)  # n1 heard 0.5 s ago: not stale
    assert asked == [] and r.commands == []
    r, asked = _round([{"n1": 0.1}, None], now=3.0)  # stale here; nobody agrees
    assert asked == [["n1"]] and r.expired == frozenset() and r.commands == []
    r, asked = _round([{"n1": 2.0}, None], now=3.0)  # one peer agrees: a majority
    assert r.expired == frozenset({"n1"})
    assert [(c["op"], c.get("member"), c.get("replace")) for c in r.commands] == [
        ("promote", "b", "a")]
