"""Whose lapse: the load generator's late round, or a late answer. Pure accounting.

Why: one Python process simulates every agent in bench/scale.py, and a round it sends
late shortens the lease that round renews, so some lapses are the generator's. They
stay lapses (`lapse_events_by_arrival`), but are counted apart
(`lapse_events_by_arrival_generator`) when the renewing round, sent at its slot with
its answer as quick, would have arrived before the lease ran out. No sockets: the
answers are handed to `LoadGen._acked` as the transport would.
"""

from __future__ import annotations

import time

import loadgen
import pytest

from vnfha.agents.lease import QuorumLease
from vnfha.v1 import agent_pb2

TTL, INTERVAL = 0.25, 0.06
COVER = TTL * (1 - 0.01) - 0.05  # what one acknowledged round holds (agents/lease.py)


class NoTransport:
    """LoadGen needs a transport object; these tests never send."""


def setup() -> tuple[loadgen.LoadGen, loadgen.Sim, float]:
    lg = loadgen.LoadGen(["127.0.0.1:1"], INTERVAL, TTL,
                         transport=NoTransport())  # type: ignore[arg-type]
    s = loadgen.Sim(0, "ln00000", loadgen.hosted(0, 2, None),
                    QuorumLease(coordinators=1, ttl=TTL), [])
    base = time.monotonic() - 5.0  # every time below is in the past: a real arrival
    lg.w.started = base - 1.0
    return lg, s, base


def ack(seq: int) -> agent_pb2.KeepaliveResponse:
    return agent_pb2.KeepaliveResponse(seq=seq, coordinator_id="c1", ttl_ms=250,
                                       result=agent_pb2.KEEPALIVE_RESULT_ACK)


def round_(s: loadgen.Sim, seq: int, slot: float, sent: float) -> None:
    """Round `seq` of node s, due at `slot`, sent at `sent` (as LoadGen._send notes)."""
    s.lease.sent(seq, sent)
    s.late[seq & loadgen.LATE_MASK] = max(0.0, sent - slot)


def test_a_round_sent_late_whose_answer_was_quick_is_the_generators_lapse() -> None:
    lg, s, base = setup()
    round_(s, 1, base, base)
    lg._acked(s, ack(1), base + 0.001)
    assert s.lease.deadline() == pytest.approx(base + COVER)
    # rounds 2.. went nowhere while the generator stalled; round 2 left 0.3 s late and
    # its answer came 1 ms later: after the lease had run out, but in time had the
    # round left at its slot
    round_(s, 2, base + INTERVAL, base + INTERVAL + 0.3)
    lg._acked(s, ack(2), base + INTERVAL + 0.301)
    w = lg.w
    assert w.lapse_events_arrival == 1 and w.lapsed_arrival == {0}
    assert w.lapse_events_generator == 1 and w.lapsed_generator == {0}
    assert lg.window()["lapse_events_by_arrival_answer"] == 0


def test_a_round_sent_on_time_whose_answer_came_late_is_the_answers_lapse() -> None:
    lg, s, base = setup()
    round_(s, 1, base, base)
    lg._acked(s, ack(1), base + 0.001)
    round_(s, 2, base + INTERVAL, base + INTERVAL)  # on time
    lg._acked(s, ack(2), base + COVER + 0.05)  # answered after the lease ran out
    w = lg.w
    assert w.lapse_events_arrival == 1
    assert w.lapse_events_generator == 0 and not w.lapsed_generator
    r = lg.window()
    assert r["lapse_events_by_arrival"] == 1 and r["lapse_events_by_arrival_answer"] == 1


def test_a_late_round_that_would_still_have_come_too_late_is_the_answers() -> None:
    lg, s, base = setup()
    round_(s, 1, base, base)
    lg._acked(s, ack(1), base + 0.001)
    # 10 ms late, answered 0.3 s after it left: on time it would still have been late
    round_(s, 2, base + INTERVAL, base + INTERVAL + 0.01)
    lg._acked(s, ack(2), base + INTERVAL + 0.31)
    assert lg.w.lapse_events_arrival == 1 and lg.w.lapse_events_generator == 0


def test_renewals_in_time_are_no_lapse_at_all() -> None:
    lg, s, base = setup()
    for seq in range(1, 20):
        slot = base + (seq - 1) * INTERVAL
        round_(s, seq, slot, slot + 0.002)
        lg._acked(s, ack(seq), slot + 0.004)
    assert lg.w.lapse_events_arrival == 0 and lg.w.lapse_events_generator == 0
    assert lg.w.acked == 19
