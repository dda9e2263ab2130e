"""An overloaded coordinator rations its answers and says so (KeepaliveResponse
`answer_every_ms`); the agent's `FastRoutes` must not take the planned gaps for silence.

Why (issue 14, tests/integration/test_overload.py on main): under a CPU budget the
coordinators answered each standby at most every TTL/3 and the agents copied 34-39 % of
their rounds onto the gRPC stream, the path that costs the coordinator 5-10x more,
exactly while it was overloaded. On a fake clock with the agent's real `QuorumLease`:
* a coordinator that answers only the first round arriving `every` after the last one
  it answered, and says so, is sent no copy, asked for no new key, never fallen back
  from, and its answers alone keep the lease (a quorum of one), at three timing
  profiles; the same answers *without* the field are copied (what an agent without
  this change does);
* one that says so and then falls silent is copied, once the promised answer is
  overdue, and the lease comes back over gRPC;
* a promise longer than a lease is taken as one lease, and a 0 ends the rationing.
"""

from __future__ import annotations

import heapq
import math

import pytest

from vnfha.agents.fastpath import FastRoutes, routes_for
from vnfha.agents.lease import QuorumLease

# (ttl, keepalive interval): the default, the namespace lab's, test_overload.py's
PROFILES = [(0.25, 0.06), (0.3, 0.075), (1.0, 0.1)]
GRPC_RTT = 0.005
LATENCY = 0.004  # a datagram answer's round trip


class Rationing:
    """A coordinator as coordinator/fastpath.py rations a node while overloaded: it
    answers a datagram arriving at least `every` after the last one it answered, drops
    the others, and (when `says`) puts `every` in its answers. From round `silent_from`
    on it answers nothing (its socket is cut)."""

    def __init__(self, every: float, says: bool = True, silent_from: int | None = None,
                 latency: float = LATENCY) -> None:
        self.every, self.says, self.silent_from = every, says, silent_from
        self.latency = latency
        self.last = -1e9
        self.dropped: list[int] = []  # rounds dropped unread as rationed

    def answer(self, seq: int, sent: float) -> float | None:
        """When round `seq`'s datagram is answered, or None."""
        if self.silent_from is not None and seq >= self.silent_from:
            return None
        if sent - self.last < self.every:
            self.dropped.append(seq)
            return None
        self.last = sent
        return sent + self.latency


def simulate(ttl: float, interval: float, rounds: int, coordinator: Rationing,
             routes: FastRoutes | None = None
             ) -> tuple[list[int], list[float], list[int], bool, list[int]]:
    """Rounds to one coordinator (a quorum of one), round k sent at k * interval.
    Returns (the rounds copied over gRPC, the times the lease had lapsed (sampled every
    millisecond after the first answer), the rounds that asked for a new key, whether
    the route ever fell back to gRPC only, the rounds sent as datagrams)."""
    routes = routes or routes_for(1, ttl, interval)
    lease = QuorumLease(coordinators=1, ttl=ttl)
    routes.opened(0, 0.0)
    every = coordinator.every if coordinator.says else 0.0
    events: list[tuple[float, int, str]] = []
    copies: list[int] = []
    reopens: list[int] = []
    lapsed: list[float] = []
    fell_back = False
    datagrams: list[int] = []
    k = 1
    for ms in range(1, round(rounds * interval * 1000) + 1):
        now = ms / 1000
        while events and events[0][0] <= now:
            at, seq, how = heapq.heappop(events)
            if how == "udp":
                routes.answered(0, seq, at, every)
            else:
                routes.grpc_answered(0, at)
            lease.acked(seq, "c1", 0)
        if k <= rounds and k * interval <= now:
            t = k * interval
            lease.sent(k, t)
            plan = routes.plan(0, k, t)
            fell_back |= plan.fell_back
            if plan.reopen:
                reopens.append(k)
            if plan.udp:
                datagrams.append(k)
            if plan.udp and (at := coordinator.answer(k, t)) is not None:
                heapq.heappush(events, (at, k, "udp"))
            if plan.grpc:
                copies.append(k)
                heapq.heappush(events, (t + GRPC_RTT, k, "grpc"))
            k += 1
        if lease.deadline() is not None and not lease.valid(now):
            lapsed.append(now)
    return copies, lapsed, reopens, fell_back, datagrams


@pytest.mark.parametrize(("ttl", "interval"), PROFILES)
def test_a_rationing_coordinator_that_says_so_gets_no_copies(ttl: float,
                                                            interval: float) -> None:
    """Answered at most every TTL/3 (overload.ration), with the field set: no copy, no
    new key, no fallback, and those answers alone keep the lease."""
    rounds = round(6 / interval)  # 6 s of rounds
    copies, lapsed, reopens, fell_back, _ = simulate(ttl, interval, rounds,
                                                     Rationing(ttl / 3))
    assert copies == [] and reopens == [] and not fell_back
    assert lapsed == []


@pytest.mark.parametrize(("ttl", "interval"), PROFILES[:2])
def test_the_same_gaps_without_the_field_are_copied(ttl: float, interval: float) -> None:
    """The control: what an agent is left with when the coordinator does not say it
    rations (a coordinator before this field, or an agent ignoring it): the gaps look
    like lost datagrams, and rounds go over the costlier gRPC stream. (At TTL 1 s the
    copy silence, 0.74 s, is longer than a rationed gap, 0.4 s: there the copies came
    from answers queued too long, which the intake's rationing itself prevents.)"""
    rounds = round(6 / interval)
    copies, _, _, _, _ = simulate(ttl, interval, rounds, Rationing(ttl / 3, says=False))
    assert len(copies) > rounds // 10, (len(copies), rounds)


@pytest.mark.parametrize(("ttl", "interval"), PROFILES)
def test_a_rationing_coordinator_that_falls_silent_is_still_copied(ttl: float,
                                                                   interval: float) -> None:
    """It says it answers every TTL/3, then answers nothing from round 20 on: once its
    next answer is overdue (the copy silence widened by `every`) every round that still
    goes to it (one per `every`: it said it rations us) is copied, and the gRPC answers
    hold the lease from then on."""
    coordinator = Rationing(ttl / 3, silent_from=20)
    copies, lapsed, _, _, datagrams = simulate(ttl, interval, 80, coordinator)
    assert copies, "a silent coordinator must still get its rounds over gRPC"
    first = copies[0]
    routes = routes_for(1, ttl, interval)
    last_answer = coordinator.last + LATENCY
    # the first round sent after the promised answer is overdue (a paced one: up to
    # `every` later)
    assert first * interval <= last_answer + routes.copy_silence + 2 * ttl / 3 + interval
    assert copies == [k for k in datagrams if k >= first]
    assert not [t for t in lapsed if t > (first + 1) * interval]


def test_a_promise_longer_than_a_lease_counts_as_one_lease() -> None:
    """An answer_every_ms beyond the lease cover (a wrong or hostile value from an
    authenticated coordinator) must not stop the copies for good: it is taken as one
    lease cover, and the silence after it is copied."""
    ttl, interval = PROFILES[0]
    routes = routes_for(1, ttl, interval)
    routes.opened(0, 0.0)
    routes.plan(0, 1, interval)
    routes.answered(0, 1, interval + LATENCY, every=3600.0)
    seq, t, copied_at = 1, interval, None
    while copied_at is None and seq < 100:
        seq += 1
        t += interval
        if routes.plan(0, seq, t).grpc:
            copied_at = t
    assert copied_at is not None
    # silent for the copy silence and the (capped) promise, then the next round that
    # goes to it: one promise later at most
    assert copied_at - interval <= routes.copy_silence + 2 * routes.cover + 2 * interval


def test_an_answer_without_the_field_ends_the_rationing() -> None:
    """The overload is over: the next answer carries 0, and a silence is copied after the
    ordinary copy silence again."""
    ttl, interval = PROFILES[0]
    routes = routes_for(1, ttl, interval)
    routes.opened(0, 0.0)
    routes.plan(0, 1, interval)
    routes.answered(0, 1, interval + LATENCY, every=ttl / 3)
    routes.plan(0, 2, 2 * interval)
    routes.answered(0, 2, 2 * interval + LATENCY, every=0.0)
    plans = [routes.plan(0, seq, seq * interval) for seq in range(3, 8)]
    first = next(i for i, p in enumerate(plans, start=3) if p.grpc)
    assert (first - 2) * interval <= routes.copy_silence + interval


def test_a_rationing_coordinator_is_not_fallen_back_from() -> None:
    """Its last answer said it rations us: it is overloaded, not cut off from UDP, and
    gRPC-only rounds would cost it 5-10x more. Falling silent, it gets copies (the lease
    comes back over gRPC), but its rounds still go as datagrams too."""
    ttl, interval = PROFILES[2]
    copies, _, _, fell_back, datagrams = simulate(ttl, interval, 100,
                                                  Rationing(ttl / 3, silent_from=20))
    assert not fell_back
    assert copies and copies == [k for k in datagrams if k >= copies[0]]


@pytest.mark.parametrize(("ttl", "interval"), PROFILES)
def test_a_rationing_coordinator_is_sent_only_what_it_answers(ttl: float,
                                                             interval: float) -> None:
    """It answers a datagram arriving TTL/3 after the last one it answered and drops
    the rest unread: once it said so, the agent sends it only the rounds it answers
    (about one in `every / interval`), and the lease still never lapses. An agent
    sending every round made it read, and drop, two to three datagrams for each one
    it answered (issue 14: 5,445 rationed drops a second against 1,486 answers)."""
    rounds = round(6 / interval)
    coordinator = Rationing(ttl / 3)
    copies, lapsed, _, _, datagrams = simulate(ttl, interval, rounds, coordinator)
    assert copies == [] and lapsed == []
    assert coordinator.dropped == [], coordinator.dropped
    per_answer = math.ceil((ttl / 3 - interval / 4) / interval)  # rounds apart
    assert len(datagrams) <= rounds / per_answer + 2, (len(datagrams), rounds)


def test_the_full_rate_comes_back_with_an_answer_that_does_not_ration() -> None:
    """The overload is over: the answer carries 0, and every round is a datagram again."""
    ttl, interval = PROFILES[0]
    routes = routes_for(1, ttl, interval)
    routes.opened(0, 0.0)
    routes.plan(0, 1, interval)
    routes.answered(0, 1, interval + LATENCY, every=ttl / 3)
    assert routes.plan(0, 2, 2 * interval).skip  # within the promise
    assert routes.plan(0, 3, 3 * interval).udp
    routes.answered(0, 3, 3 * interval + LATENCY, every=0.0)
    assert all(routes.plan(0, k, k * interval).udp for k in range(4, 10))


def simulate_grpc(ttl: float, interval: float, rounds: int, coordinator: Rationing,
                  udp_blocked: bool = False
                  ) -> tuple[list[int], list[float], int | None]:
    """Rounds over gRPC to one coordinator whose stream rations us as `coordinator`
    says (coordinator/service/agent.py: it reads every message, answers one arriving a
    ration after the last it answered, drops the rest). Without `udp_blocked` the route
    is never opened (no fast path: disabled, or no key); with it a key is opened but no
    datagram is ever answered, so the route falls back to gRPC only. Returns (the rounds
    sent over gRPC, the times the lease had lapsed, the round that fell back)."""
    routes = routes_for(1, ttl, interval)
    lease = QuorumLease(coordinators=1, ttl=ttl)
    if udp_blocked:
        routes.opened(0, 0.0)
    every = coordinator.every if coordinator.says else 0.0
    events: list[tuple[float, int]] = []
    sent: list[int] = []
    lapsed: list[float] = []
    fell_back: int | None = None
    k = 1
    for ms in range(1, round(rounds * interval * 1000) + 1):
        now = ms / 1000
        while events and events[0][0] <= now:
            at, seq = heapq.heappop(events)
            routes.grpc_answered(0, at, seq, every)
            lease.acked(seq, "c1", 0)
        if k <= rounds and k * interval <= now:
            t = k * interval
            lease.sent(k, t)
            plan = routes.plan(0, k, t)
            if plan.fell_back and fell_back is None:
                fell_back = k
            if plan.grpc:
                sent.append(k)
                if (at := coordinator.answer(k, t)) is not None:
                    heapq.heappush(events, (at, k))
            k += 1
        if lease.deadline() is not None and not lease.valid(now):
            lapsed.append(now)
    return sent, lapsed, fell_back


@pytest.mark.parametrize(("ttl", "interval"), PROFILES)
def test_a_stream_that_rations_is_sent_only_what_it_answers(ttl: float,
                                                           interval: float) -> None:
    """No fast path: every round goes over gRPC, where an overloaded coordinator reads
    each one (65 us) and answers one a ration (113 us). Once its answers say it rations
    us, it is sent only the rounds it answers, about one in `every / interval`, and the
    lease never lapses. An agent sending every round cost it two to four reads per
    answer (issue 14: bench/overload.py's gRPC transport at 61x its capacity)."""
    rounds = round(6 / interval)
    coordinator = Rationing(ttl / 3, latency=GRPC_RTT)
    sent, lapsed, _ = simulate_grpc(ttl, interval, rounds, coordinator)
    assert lapsed == []
    assert coordinator.dropped == [], coordinator.dropped
    per_answer = math.ceil((ttl / 3 - interval / 4) / interval)
    assert len(sent) <= rounds / per_answer + 2, (len(sent), rounds)


def test_a_stream_that_stops_rationing_gets_every_round_again() -> None:
    """The control and the way back: answers without the field (not overloaded, or a
    coordinator before it) get every round, so pacing is only ever what it promised."""
    ttl, interval = PROFILES[0]
    rounds = round(3 / interval)
    sent, lapsed, _ = simulate_grpc(ttl, interval, rounds,
                                    Rationing(ttl / 3, says=False, latency=GRPC_RTT))
    assert sent == list(range(1, rounds + 1)) and lapsed == []
    routes = routes_for(1, ttl, interval)
    routes.plan(0, 1, interval)
    routes.grpc_answered(0, interval + GRPC_RTT, 1, every=ttl / 3)
    assert routes.plan(0, 2, 2 * interval).skip  # within the promise
    assert routes.plan(0, 3, 3 * interval).grpc
    routes.grpc_answered(0, 3 * interval + GRPC_RTT, 3, every=0.0)
    assert all(routes.plan(0, k, k * interval).grpc for k in range(4, 10))


@pytest.mark.parametrize(("ttl", "interval"), PROFILES)
def test_a_fallen_back_route_is_paced_on_its_stream(ttl: float, interval: float) -> None:
    """UDP is blocked, gRPC gets through: the route falls back to gRPC only, and there a
    coordinator that rations us is sent only what it answers, while the lease holds."""
    rounds = round(8 / interval)
    coordinator = Rationing(ttl / 3, latency=GRPC_RTT)
    sent, lapsed, fell_back = simulate_grpc(ttl, interval, rounds, coordinator,
                                            udp_blocked=True)
    assert fell_back is not None
    after = [k for k in coordinator.dropped if k > fell_back]
    assert after == [], after
    settled = (fell_back + 1) * interval + ttl
    assert not [t for t in lapsed if t > settled]
    per_answer = math.ceil((ttl / 3 - interval / 4) / interval)
    assert len([k for k in sent if k > fell_back]) <= (rounds - fell_back) / per_answer + 2


class ReadInBatches(Rationing):
    """A stream whose event loop reads in passes `every_pass` apart (a loaded loop): a
    round is dated, and rationed, at the pass that reads it, not when it was sent, so a
    round sent a ration after the last answered one can be read less than a ration after
    it, and is dropped."""

    def __init__(self, every: float, every_pass: float, phase: float) -> None:
        super().__init__(every, latency=GRPC_RTT)
        self.every_pass, self.phase = every_pass, phase

    def answer(self, seq: int, sent: float) -> float | None:
        read = math.ceil((sent - self.phase) / self.every_pass) * self.every_pass + self.phase
        if read - self.last < self.every:
            self.dropped.append(seq)
            return None
        self.last = read
        return read + self.latency


@pytest.mark.parametrize("phase", [k / 1000 for k in range(0, 60, 6)])
def test_a_paced_round_read_too_soon_is_followed_at_once(phase: float) -> None:
    """The stream dates rounds when its loop reads them. At the default timing, read in
    passes 60 ms apart, a paced round is sometimes read within the ration of the last
    answered one and dropped; the next round must then go at the next tick, not a ration
    after the dropped one, or that coordinator's answers come more than a lease apart
    and the lease lapses (at 2 of these 10 phases with the hold counted from the last
    round sent, as for datagrams; at none with every round sent, nor with this rule. At
    70 ms passes all three lapse: no pacing rule helps there)."""
    ttl, interval = PROFILES[0]
    rounds = round(4 / interval)
    coordinator = ReadInBatches(ttl / 3, every_pass=0.06, phase=phase)
    _, lapsed, _ = simulate_grpc(ttl, interval, rounds, coordinator)
    assert lapsed == [], (phase, coordinator.dropped[:5], lapsed[:3])
