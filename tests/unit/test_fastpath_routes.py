"""When an agent sends a keepalive as a datagram, over gRPC, or both (agents/fastpath.py).

The rule protects the lease: a round whose datagram was not answered by the next round
makes the next round go over gRPC too, so one lost datagram (or a coordinator that
forgot its key) never costs an acknowledgement; a long silence falls back to gRPC,
a merely slow coordinator does not.
"""

from __future__ import annotations

import itertools

from vnfha.agents.fastpath import (
    COPY_BACKOFF_COVERS,
    FALLBACK_MISSES,
    FALLBACK_SILENCE,
    REOPEN_AFTER_MISSES,
    FastRoutes,
    lease_cover,
    routes_for,
)

TICK = 0.06


def test_not_opened_goes_over_grpc() -> None:
    r = FastRoutes(1)
    p = r.plan(0, 1, 0.0)
    assert (p.udp, p.grpc) == (False, True)


def test_answered_rounds_go_over_udp_only() -> None:
    r = FastRoutes(1)
    r.opened(0, 0.0)
    for seq in range(1, 50):
        p = r.plan(0, seq, seq * TICK)
        assert (p.udp, p.grpc, p.reopen, p.fell_back) == (True, False, False, False)
        r.answered(0, seq, seq * TICK + 0.001)


def test_one_lost_datagram_costs_one_grpc_round() -> None:
    r = FastRoutes(1)
    r.opened(0, 0.0)
    r.plan(0, 1, 0.0)
    r.answered(0, 1, 0.001)
    assert not r.plan(0, 2, TICK).grpc  # this datagram is lost
    p = r.plan(0, 3, 2 * TICK)
    assert (p.udp, p.grpc) == (True, True)
    r.answered(0, 3, 2 * TICK + 0.001)
    assert not r.plan(0, 4, 3 * TICK).grpc


def planned(r: FastRoutes, seq: int, now: float, grpc_answers: bool = True):
    """One round to coordinator 0; its gRPC stream answers (UDP alone is blocked)."""
    p = r.plan(0, seq, now)
    if grpc_answers:
        r.grpc_answered(0, now + 0.001)
    return p


def test_silence_reopens_then_falls_back_then_probes() -> None:
    r = FastRoutes(2, retry_after=30.0)
    r.opened(0, 0.0)
    r.opened(1, 0.0)
    rounds = int(FALLBACK_SILENCE / TICK) + FALLBACK_MISSES + 2
    plans = [planned(r, seq, seq * TICK) for seq in range(1, REOPEN_AFTER_MISSES + 2)]
    r.opened(0, 0.2)  # the re-opened key is not answered either: must still fall back
    plans += [planned(r, seq, seq * TICK) for seq in range(REOPEN_AFTER_MISSES + 2, rounds)]
    assert plans[0].grpc is False  # nothing unanswered yet
    assert all(p.grpc for p in plans[1:])  # every round after a miss also over gRPC
    assert [p.reopen for p in plans].index(True) == REOPEN_AFTER_MISSES
    fell = [p.fell_back for p in plans].index(True)
    assert (fell + 1) * TICK >= FALLBACK_SILENCE and fell >= FALLBACK_MISSES
    assert all(not p.udp for p in plans[fell:])
    assert r.fallen_back(0) and not r.fallen_back(1)
    t = rounds * TICK
    assert (planned(r, 100, t).udp, r.plan(0, 101, t + 0.5).udp) == (False, False)
    r.grpc_answered(0, t + 29)
    assert not r.plan(0, 101, t + 29).udp
    probe = planned(r, 102, t + 31)
    assert (probe.udp, probe.grpc, probe.reopen) == (True, True, True)
    assert not r.plan(0, 103, t + 31 + TICK).udp  # one probe per retry period
    assert r.answered(0, 102, t + 31.1)  # the probe was answered: back on the fast path
    p = r.plan(0, 104, t + 31 + 2 * TICK)
    assert (p.udp, p.grpc) == (True, False)


def test_a_slow_coordinator_is_not_abandoned() -> None:
    """Answers that come late (overload) keep the fast path: no fallback, ever."""
    r = FastRoutes(1)
    r.opened(0, 0.0)
    for seq in range(1, 200):
        now = seq * TICK
        p = r.plan(0, seq, now)
        assert p.udp and not p.fell_back
        if seq % 5 == 0:  # one answer every five rounds, for an older round
            r.answered(0, seq - 3, now)
    assert not r.fallen_back(0)


def test_a_coordinator_silent_on_both_paths_keeps_getting_datagrams() -> None:
    """Issue 16: a coordinator that answers neither datagrams nor gRPC is unreachable,
    not behind a UDP filter: no fallback, a datagram every round (with gRPC), so the
    first round after it returns is answered at once, not after a TCP back-off."""
    r = FastRoutes(1, retry_after=30.0)
    r.opened(0, 0.0)
    r.grpc_answered(0, 0.0)
    plans = [planned(r, seq, seq * TICK, grpc_answers=False) for seq in range(1, 600)]
    assert not r.fallen_back(0) and not any(p.fell_back for p in plans)
    assert all(p.udp for p in plans)
    # Copied too, one copy at a time: nothing answers them, so each waits a lease
    # cover, then twice as long as the last, up to COPY_BACKOFF_COVERS covers.
    copies = [seq * TICK for seq, p in enumerate(plans, start=1) if p.grpc]
    gaps = [b - a for a, b in itertools.pairwise(copies)]
    assert copies[0] == 2 * TICK and len(gaps) >= 5
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps))  # backing off
    assert all(g <= COPY_BACKOFF_COVERS * r.cover + TICK for g in gaps)
    assert gaps[-1] >= COPY_BACKOFF_COVERS * r.cover
    r.answered(0, 599, 600 * TICK)  # it is back: the datagram of the last round answered
    p = r.plan(0, 600, 600 * TICK)
    assert (p.udp, p.grpc) == (True, False)


def test_a_new_stream_after_an_outage_gets_the_next_copy_at_once() -> None:
    """The coordinator was down long enough for the copies to back off to
    COPY_BACKOFF_COVERS covers, and its stream broke; a new stream to it (it may be
    back) gets the next round's copy at once, not up to 16 covers later: until a new
    fast-path key is in, only that copy can bring the lease back."""
    r = FastRoutes(1, retry_after=30.0)
    r.opened(0, 0.0)
    plans = [r.plan(0, seq, seq * TICK) for seq in range(1, 400)]
    copies = [seq for seq, p in enumerate(plans, start=1) if p.grpc]
    assert copies[-1] < 399 - 3  # backed off: the last rounds went as datagrams alone
    seq = 400
    assert not r.plan(0, seq, seq * TICK).grpc
    r.stream_started(0)
    p = r.plan(0, seq + 1, (seq + 1) * TICK)
    assert (p.udp, p.grpc) == (True, True)
    # Unanswered on the new stream too: the back-off starts over from one cover.
    held = [r.plan(0, s, s * TICK).grpc for s in range(seq + 2, seq + 2 + 3)]
    assert held == [False, False, False]
    assert r.plan(0, seq + 5, (seq + 1) * TICK + r.cover).grpc


def test_fallen_back_and_then_silent_on_grpc_too_sends_datagrams_again() -> None:
    """UDP was blocked (gRPC-only), then the coordinator becomes unreachable altogether:
    each round carries a datagram again, and its answer ends the fallback."""
    r = FastRoutes(1, retry_after=30.0)
    r.opened(0, 0.0)
    seq = 0
    while not r.fallen_back(0):
        seq += 1
        planned(r, seq, seq * TICK)
    t = seq * TICK
    assert not planned(r, seq + 1, t + TICK).udp  # gRPC answers: gRPC only
    quiet = [r.plan(0, seq + 2 + k, t + 2 * TICK + FALLBACK_SILENCE + k * TICK)
             for k in range(5)]
    assert all(p.udp and p.grpc and not p.reopen for p in quiet)
    assert r.answered(0, seq + 6, t + 3 + FALLBACK_SILENCE)  # back, on the fast path


def test_a_busy_coordinator_that_answers_in_late_bursts_is_not_rekeyed() -> None:
    """Issue 14: overloaded, a coordinator answers late and in bursts (its intake reads
    a backlog), so two rounds in a row pass without an answer while it still knows our
    key. A new key then throws away every answer sealed under the old one and every
    datagram still queued under it: the pair's active in the overload test re-keyed
    every 1-2 s and lost its lease. Such a coordinator gets a new key only once its
    silence outlasts a lease cover."""
    ttl, interval = 1.0, 0.1
    r = routes_for(1, ttl, interval)
    r.opened(0, 0.0)
    r.plan(0, 1, interval)
    r.answered(0, 1, interval + 0.09)  # already busy: an answer later than slow_answers
    plans = []
    for seq in range(2, 301):
        now = seq * interval
        plans.append(r.plan(0, seq, now))
        if seq % 4 == 1:  # every fourth round, the last four answered at once, late
            for old in range(seq - 3, seq + 1):
                r.answered(0, old, now + 0.09)
    assert not any(p.reopen for p in plans)
    assert all(p.udp and not p.fell_back for p in plans)
    # Then it falls silent for good (it restarted and forgot the key): a new key once
    # the silence outlasts the cover, and only one for that silence.
    quiet = [r.plan(0, seq, seq * interval) for seq in range(301, 331)]
    asked = [k for k, p in enumerate(quiet) if p.reopen]
    assert len(asked) == 1
    last_answer = 297 * interval + 0.09  # the last burst's
    assert (301 + asked[0]) * interval - last_answer >= lease_cover(ttl)


def test_an_unanswered_fresh_coordinator_is_rekeyed_after_two_misses() -> None:
    """A coordinator whose answers were prompt and then stop (it restarted and forgot
    our key) is asked for a new key after REOPEN_AFTER_MISSES rounds, not a cover."""
    r = routes_for(1, 1.0, 0.1)
    r.opened(0, 0.0)
    for seq in range(1, 11):
        r.plan(0, seq, seq * 0.1)
        r.answered(0, seq, seq * 0.1 + 0.002)
    plans = [r.plan(0, seq, seq * 0.1) for seq in range(11, 20)]
    assert [p.reopen for p in plans].index(True) == REOPEN_AFTER_MISSES
    assert sum(p.reopen for p in plans) == 1


def test_copies_answered_over_grpc_go_every_round() -> None:
    """UDP is blocked and gRPC answers each copy at once: the copy rule's one-at-a-time
    never holds a round back (the lease needs them all until the fallback)."""
    r = FastRoutes(1, retry_after=30.0)
    r.opened(0, 0.0)
    plans = []
    for seq in range(1, 12):  # before the fallback (FALLBACK_SILENCE)
        plans.append(planned(r, seq, seq * TICK))
    assert not r.fallen_back(0)
    assert all(p.grpc for p in plans[1:])


def test_an_unanswered_copy_holds_back_the_next_until_an_answer() -> None:
    """A copy is out and nothing answers it: the next rounds go as datagrams alone;
    an answer on either route lets the next copy go at once."""
    r = FastRoutes(1, retry_after=30.0)
    r.opened(0, 0.0)
    assert not r.plan(0, 1, TICK).grpc
    assert r.plan(0, 2, 2 * TICK).grpc  # round 1 unanswered: copied
    held = [r.plan(0, seq, seq * TICK) for seq in (3, 4)]
    assert all(p.udp and not p.grpc for p in held)  # within a cover of that copy
    r.grpc_answered(0, 4 * TICK + 0.01)
    assert r.plan(0, 5, 5 * TICK).grpc


def test_a_coordinator_whose_answers_came_late_is_not_fallen_back_from_in_a_stall() -> None:
    """Its datagram answers came late (overload), then it answers none for two seconds
    while its gRPC stream still answers our copies: no fallback (gRPC-only rounds would
    cost it 5-10x more for RETRY_AFTER; the overload test's real active fell back
    after such a stall and lapsed for 20 s, issue 14), and once the silence outlasts a
    lease cover the copies carry every round."""
    r = FastRoutes(1, retry_after=30.0)
    r.opened(0, 0.0)
    r.plan(0, 1, TICK)
    r.answered(0, 1, TICK + 0.2)  # four intervals late
    plans = [planned(r, seq, seq * TICK) for seq in range(2, 40)]
    assert not r.fallen_back(0) and not any(p.fell_back for p in plans)
    assert all(p.udp for p in plans)
    copied = [p.grpc for p in plans]
    first = copied.index(True)
    heard = TICK + 0.2
    assert all(copied[first:]) and (first + 2) * TICK - heard <= r.cover + TICK
