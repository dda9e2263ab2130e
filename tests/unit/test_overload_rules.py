"""Graceful overload, the pure parts (issue 14): the loop-lag meter, the stall credit
in the lease table, and the expiry vote that discounts an overloaded coordinator."""

from __future__ import annotations

import pytest

from vnfha.coordinator.leases import (
    OVERLOADED_EXPIRY_TTLS,
    LeaseTable,
    PeerView,
    confirmed_expired,
    expiry_votes,
)
from vnfha.coordinator.overload import LoopLag

TTL = 0.25


def beats(meter: LoopLag, start: float, count: int, lag: float) -> float:
    """`count` heartbeats each `lag` late; returns the time of the last."""
    t = start
    for _ in range(count):
        t += meter.period + lag
        meter.beat(t, lag)
    return t


def test_a_stall_in_progress_counts_before_the_heartbeat_reports_it():
    m = LoopLag(threshold=0.05, hold=1.0)
    t = beats(m, 0.0, 10, 0.0)
    assert m.stalled(t) == 0.0
    # The loop froze right after that beat: 0.4 s later it has not run again.
    assert m.stalled(t + 0.4) == pytest.approx(0.4 - m.period - m.tolerance)
    assert m.overloaded(t + 0.4), "a stall of 8 thresholds is overload at once"
    # When the heartbeat finally runs it books the same stall: the clock is continuous.
    m.beat(t + 0.4, 0.4 - m.period)
    assert m.stalled(t + 0.4) == pytest.approx(0.4 - m.period - m.tolerance)


def test_the_stall_clock_never_goes_back_and_never_outruns_time():
    m = LoopLag(threshold=0.05, hold=1.0)
    t, last = 0.0, 0.0
    for lag in [0.0, 0.03, 0.2, 0.0, 0.001, 0.5, 0.0]:
        for probe in (t + 0.005, t + m.period + lag):
            s = m.stalled(probe)
            assert last <= s <= probe
            last = s
        t += m.period + lag
        m.beat(t, lag)


def test_overload_needs_a_sustained_lag_and_is_held_then_clears():
    m = LoopLag(threshold=0.05, hold=1.0)
    t = beats(m, 0.0, 50, 0.002)
    assert not m.overloaded(t) and m.reason(t) is None
    t = beats(m, t, 1, 0.06)  # one late beat: noise, not overload
    assert not m.overloaded(t)
    t = beats(m, t, 60, 0.08)  # late on average for ~5 s
    assert m.overloaded(t)
    assert "overloaded" in (m.reason(t) or "")
    t = beats(m, t, 10, 0.0)
    assert m.overloaded(t), "held for `hold` after the lag last exceeded the threshold"
    t = beats(m, t, 200, 0.0)
    assert not m.overloaded(t)


def test_a_lagging_loop_ages_no_node():
    """Keepalives that waited unread while our loop stalled were sent in time: the stall
    is not the node's silence (the old table aged every node by it)."""
    stalled = [0.0]
    table = LeaseTable(started_at=0.0, stall=lambda now: stalled[0])
    table.record("n1", [], 10.0)
    stalled[0] = 0.3  # the loop could not run for 0.3 s of what followed
    assert table.age("n1", 10.4) == pytest.approx(0.1)
    assert table.ages(["n1"], 10.4)["n1"] == pytest.approx(0.1)
    obs = table.observations(0.0, None, 10.4)
    assert obs.fresh("n1", 10.4, TTL)
    table.record("n1", [], 10.5)  # heard again: the credit starts over
    assert table.age("n1", 10.6) == pytest.approx(0.1)


def test_without_a_stall_the_table_ages_as_before():
    table = LeaseTable(started_at=0.0)
    table.record("n1", [], 10.0)
    assert table.age("n1", 10.4) == pytest.approx(0.4)
    assert table.age("never-heard", 5.0) == 0.0


def test_expiry_needs_a_majority_of_voters_that_are_not_overloaded():
    stale = ["n1"]
    fine = PeerView(ages={"n1": 0.3})
    busy = PeerView(ages={"n1": 0.3}, overloaded=True)
    assert confirmed_expired(expiry_votes(stale, TTL, False, {"c2": fine}), 2) == {"n1"}
    # An overloaded peer's figures measure its own lag: no vote for 0.3 s of silence.
    assert confirmed_expired(expiry_votes(stale, TTL, False, {"c2": busy}), 2) == set()
    # Nor does an overloaded leader count itself.
    assert confirmed_expired(expiry_votes(stale, TTL, True, {"c2": fine},
                                          {"n1": 0.3}), 2) == set()
    # Two healthy peers still make the majority without the overloaded leader.
    assert confirmed_expired(expiry_votes(stale, TTL, True, {"c2": fine, "c3": fine},
                                          {"n1": 0.3}), 2) == {"n1"}
    assert confirmed_expired(expiry_votes(stale, TTL, False, {"c2": None}), 2) == set()


def test_an_overloaded_coordinator_still_vouches_for_a_long_silence():
    """A busy machine must still fail a crashed node over, later, not never."""
    long = OVERLOADED_EXPIRY_TTLS * TTL + 0.01
    busy = PeerView(ages={"n1": long}, overloaded=True)
    votes = expiry_votes(["n1"], TTL, True, {"c2": busy}, {"n1": long})
    assert confirmed_expired(votes, 2) == {"n1"}


def test_a_backlog_in_the_fast_path_socket_is_overload_but_not_a_stall():
    """The fast path's intake thread reads past the event loop: the loop can run on time
    while datagrams wait in the socket. Their wait (kernel stamps) is overload; it is not
    credited as a stall (those arrivals are dated correctly already)."""
    m = LoopLag(threshold=0.05, hold=1.0)
    t = beats(m, 0.0, 20, 0.0)
    assert not m.overloaded(t)
    for _ in range(100):  # 1 s of batches that each waited 80 ms, the loop on time
        m.queued(t, 0.08)
        t = beats(m, t, 1, 0.0)
    assert m.overloaded(t), "a sustained backlog in the socket is overload"
    assert "keepalives are read" in (m.reason(t) or "")
    assert m.stalled(t) == 0.0, "and no node's silence is credited for it"
    # A sample older than QUEUE_FRESH says nothing (no datagrams: no backlog).
    t = beats(m, t + 0.2, 200, 0.0)
    assert not m.overloaded(t)
    # One batch that waited more than twice the threshold: overload at once.
    m.queued(t, 0.11)
    t = beats(m, t, 1, 0.0)
    assert m.overloaded(t)
