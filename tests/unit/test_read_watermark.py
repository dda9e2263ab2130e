"""Fast-path silences counted up to the intake's read watermark (issue 14), pure.

A fast-path node's age is `watermark - last arrival`, where every datagram that arrived
before the watermark has been read and handled (fastpath.FastPathIntake.read_through):
a backlog still in the socket ages nobody, whatever the load, so these ages are vouched
for without the overloaded coordinator's blanket "only beyond several TTLs". Fake clock
throughout: the watermark is a number the test moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cluster_builders import build

from vnfha.coordinator import core, expiry
from vnfha.coordinator.leases import OVERLOADED_EXPIRY_TTLS, LeaseTable, PeerView, Report
from vnfha.coordinator.model import Health
from vnfha.coordinator.observations import Policy

TTL = 0.25
KEEPALIVE = 0.06
POLICY = Policy(ttl=TTL, stabilization=10.0)


class Watermark:
    """The intake's read watermark, moved by the test."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def report(member: str, active: int) -> list[Report]:
    return [Report("g", member, Health.HEALTHY, 1, active)]


def heard(table: LeaseTable, node: str, at: float) -> None:
    """A fast-path keepalive of `node` that arrived at `at` was handled (as
    AgentService.handle_datagram does: record, then heard_fast)."""
    member, active = ("a", 1) if node == "n1" else ("b", 0)
    table.record(node, report(member, active), at)
    table.heard_fast(node, at)


def leader(table: LeaseTable, now: float, *, quorum: int = 1, overloaded: bool = False,
           answers: Sequence[Mapping[str, float] | PeerView | None] = ()) -> core.Round:
    """One leader round over a pair (active a on n1, standby b on n2)."""
    state = build((("a", "n1", 100), ("b", "n2", 90)), active="a")
    ids = iter(range(1000))
    return core.leader_round(state, table, POLICY, now, leader_since=0.0, quorum=quorum,
                             ask=lambda stale: answers, ids=lambda: f"r{next(ids)}", at=0.0,
                             overloaded=overloaded)


def test_a_backlog_read_after_the_deadline_expires_nobody() -> None:
    """Both nodes send every 60 ms; the intake reads everything up to t=1, then stalls
    for two TTLs (the socket fills), then reads the backlog, each datagram dated by its
    arrival. Checked every 5 ms: no age above the TTL, no vote, no expiry. The same
    arrivals counted up to now (the rule before the watermark; the stall is not the
    event loop's, so there is no stall credit, and the overload meter hears nothing
    from an intake that reads nothing) expire both."""
    w = Watermark(0.0)
    exact = LeaseTable(started_at=0.0, ttl=TTL)
    exact.read_through(w)
    old = LeaseTable(started_at=0.0, ttl=TTL)
    sent = [round(k * KEEPALIVE, 6) for k in range(1, 40)]  # up to 2.34 s
    stall_from, stall_to = 1.0, 1.0 + 2 * TTL
    pending = list(sent)
    expired_old: set[str] = set()
    now = 0.0
    while now < 2.4:
        now = round(now + 0.005, 6)
        if not stall_from <= now < stall_to:
            # The intake runs: it reads and handles what arrived, then finds the socket
            # empty; the watermark is the clock before that read.
            while pending and pending[0] <= now:
                at = pending.pop(0)
                for table in (exact, old):
                    heard(table, "n1", at)
                    heard(table, "n2", at)
            w.at = now
        ages, _ = exact.vouched(["n1", "n2"], now, TTL, overloaded=True)
        assert max(ages.values(), default=0.0) <= TTL, (now, ages)
        r = leader(exact, now, overloaded=True)
        assert r.own_votes == frozenset() and r.expired == frozenset(), now
        expired_old |= leader(old, now).expired
    assert expired_old == {"n1", "n2"}, "the scenario must be one the old rule fails"


def test_a_silent_node_expires_a_ttl_after_its_last_arrival_plus_the_watermarks_lag() -> None:
    """n1 crashes after its keepalive at t=1; n2 goes on. The watermark trails the
    clock by `lag`. n1 is expired exactly when the watermark passes 1 + TTL, overloaded
    or not (before: an overloaded coordinator waited OVERLOADED_EXPIRY_TTLS TTLs), and
    the leader's wake is computed for that moment."""
    lag = 0.004
    w = Watermark(0.0)
    table = LeaseTable(started_at=0.0, ttl=TTL)
    table.read_through(w)
    for k in range(1, 17):
        heard(table, "n1", k * 0.0625)  # last at 1.0
    t = 1.0
    while t < 1.0 + TTL + 0.1:
        heard(table, "n2", t)
        t += KEEPALIVE
    due = 1.0 + TTL + lag
    before, after = due - 0.001, due + 0.001
    w.at = before - lag
    assert table.next_expiry(TTL, before) is not None
    assert abs((table.next_expiry(TTL, before) or 0) - due) < 1e-9
    assert leader(table, before, overloaded=True).expired == frozenset()
    w.at = after - lag
    r = leader(table, after, overloaded=True)
    assert r.expired == frozenset({"n1"}) and r.own_votes == frozenset({"n1"})
    assert [(c["op"], c.get("member")) for c in r.commands] == [("promote", "b")]
    assert OVERLOADED_EXPIRY_TTLS * TTL > after - 1.0, "sooner than the blanket rule"


def test_a_frozen_intake_vouches_for_nothing_and_leaves_the_expiry_to_the_peers() -> None:
    """The intake thread stopped reading at t=1: this coordinator cannot tell who is
    silent, so it vouches for nobody; it still asks the peers about nodes it has not
    heard for a TTL (its watermark lags by more than one), and a majority of them
    decides. If every coordinator is frozen, nothing expires (we cannot tell)."""
    w = Watermark(1.0)
    table = LeaseTable(started_at=0.0, ttl=TTL)
    table.read_through(w)
    heard(table, "n1", 0.99)
    heard(table, "n2", 0.99)
    now = 3.0
    assert table.vouched(["n1"], now, TTL, overloaded=False)[0]["n1"] <= TTL
    assert table.suspect_ages(["n1"], now, TTL)["n1"] > TTL
    both = {"n1": 2.0, "n2": 2.0}
    r = leader(table, now, quorum=2, answers=[both, both])
    assert sorted(r.stale) == ["n1", "n2"] and r.own_votes == frozenset()
    assert r.expired == frozenset({"n1", "n2"}), "two peers are a majority of three"
    r = leader(table, now, quorum=2, answers=[both, {"n1": 0.01, "n2": 0.01}])
    assert r.expired == frozenset(), "one peer alone is not; this one cannot vote"
    frozen = {"n1": 0.01, "n2": 0.01}
    assert leader(table, now, quorum=2, answers=[frozen, frozen]).expired == frozenset()


def test_grpc_arrivals_keep_the_stall_credit_and_the_overload_rule() -> None:
    """A node whose last keepalive came over gRPC is aged up to now less the event
    loop's stall, and an overloaded coordinator vouches for it only beyond several
    TTLs; a fast-path one is vouched for exactly. A peer's answer says "overloaded"
    (discount all of it) only when none of its ages is exact."""
    stalled = [0.0]
    w = Watermark(0.0)
    table = LeaseTable(started_at=0.0, ttl=TTL, stall=lambda now: stalled[0])
    table.read_through(w)
    heard(table, "n1", 1.0)
    heard(table, "n2", 0.7)
    table.record("n2", report("b", 0), 1.05)  # then only over gRPC: aged up to now
    w.at = 1.0  # the intake read nothing since
    stalled[0] = 0.1
    assert table.age("n1", 1.5) == 0.0
    assert abs(table.age("n2", 1.5) - (0.45 - 0.1)) < 1e-9
    w.at = 1.4
    ages, exact = table.vouched(["n1", "n2"], 1.5, TTL, overloaded=True)
    assert exact and abs(ages["n1"] - 0.4) < 1e-9 and ages["n2"] <= TTL
    long = 1.05 + 0.1 + OVERLOADED_EXPIRY_TTLS * TTL + 0.01
    ages, _ = table.vouched(["n2"], long, TTL, overloaded=True)
    assert ages["n2"] > OVERLOADED_EXPIRY_TTLS * TTL, "a long silence is still vouched for"
    ages, exact = table.vouched(["n2"], 1.5, TTL, overloaded=True)
    assert ages["n2"] <= TTL and not exact
    # Votes as a leader counts them, whatever its version: the ages capped at one TTL
    # vote for nobody, so the flag changes nothing for a mixed answer.
    assert expiry.votes(["n1", "n2"], [PeerView(ages={"n1": 0.4, "n2": TTL})], TTL,
                        own_ages={}) == {"n1": 1, "n2": 0}


def test_a_datagram_shed_unhandled_is_not_a_known_silence() -> None:
    """Overloaded, the intake drops datagrams that waited too long (read, not handled,
    not acknowledged). The watermark passes them, but their sender was not silent: a
    node whose key one of them carried, last heard before it arrived, is aged as before
    the watermark (up to now, with the overload rule), until one of its datagrams is
    handled again."""
    w, shed = Watermark(0.0), Watermark(float("-inf"))
    table = LeaseTable(started_at=0.0, ttl=TTL)
    table.read_through(w, lambda: (float("-inf"), {"n1": shed.at}))
    heard(table, "n1", 1.0)
    heard(table, "n2", 1.0)
    w.at, shed.at = 1.5, 1.45  # n1's later datagrams were among those shed
    assert table.vouched(["n2"], 1.5, TTL, overloaded=True) == ({"n2": 0.5}, True), \
        "another node's shed datagrams do not make n2's silence inexact"
    ages, exact = table.vouched(["n1"], 1.5, TTL, overloaded=True)
    assert ages["n1"] <= TTL and not exact, "not vouched for while overloaded"
    assert "n1" not in leader(table, 1.5, overloaded=True).expired
    heard(table, "n1", 1.46)  # one of its datagrams is handled again
    w.at = 1.5
    ages, exact = table.vouched(["n1"], 1.5, TTL, overloaded=True)
    assert exact and abs(ages["n1"] - 0.04) < 1e-9


def test_a_round_copied_to_grpc_keeps_the_silence_exact_and_bounds_it() -> None:
    """An agent copies a round to gRPC when an answer is late: that arrival, read later
    by the event loop, bounds the age too (never above now minus the last arrival
    acknowledged, by either path), and the node stays exact. A node that has lived on
    gRPC for more than a TTL after its last datagram (its fast path broken) is aged by
    its gRPC arrivals, with the overload rule."""
    w = Watermark(1.0)
    table = LeaseTable(started_at=0.0, ttl=TTL)
    table.read_through(w)
    heard(table, "n1", 1.0)
    table.record("n1", report("a", 1), 1.03)  # the same round, over gRPC, read late
    w.at = 1.3
    ages, exact = table.vouched(["n1"], 1.31, TTL, overloaded=True)
    assert exact and abs(ages["n1"] - 0.28) < 1e-9
    w.at = 1.33
    r = leader(table, 1.33 + 0.001, overloaded=True)
    assert r.expired == frozenset({"n1"}), "a TTL after the copy's arrival, not 4 TTLs"
    heard(table, "n2", 1.0)
    for t in (1.1, 1.2, 1.3):  # then only over gRPC
        table.record("n2", report("b", 0), t)
    w.at = 1.5
    ages, exact = table.vouched(["n2"], 1.5, TTL, overloaded=True)
    assert not exact and ages["n2"] <= TTL
