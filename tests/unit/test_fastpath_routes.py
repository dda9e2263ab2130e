"""When an agent sends a keepalive as a datagram, over gRPC, or both (agents/fastpath.py).

The rule protects the lease: a round whose datagram was not answered by the next round
makes the next round go over gRPC too, so one lost datagram (or a coordinator that
forgot its key) never costs an acknowledgement; repeated silence falls back to gRPC.
"""

from __future__ import annotations

from vnfha.agents.fastpath import FALLBACK_MISSES, REOPEN_AFTER_MISSES, FastRoutes


def test_not_opened_goes_over_grpc() -> None:
    r = FastRoutes(1)
    p = r.plan(0, 1, 0.0)
    assert (p.udp, p.grpc) == (False, True)


def test_answered_rounds_go_over_udp_only() -> None:
    r = FastRoutes(1)
    r.opened(0)
    for seq in range(1, 50):
        p = r.plan(0, seq, seq * 0.06)
        assert (p.udp, p.grpc, p.reopen, p.fell_back) == (True, False, False, False)
        r.answered(0, seq)


def test_one_lost_datagram_costs_one_grpc_round() -> None:
    r = FastRoutes(1)
    r.opened(0)
    r.plan(0, 1, 0.0)
    r.answered(0, 1)
    assert not r.plan(0, 2, 0.06).grpc  # this datagram is lost
    p = r.plan(0, 3, 0.12)
    assert (p.udp, p.grpc) == (True, True)
    r.answered(0, 3)
    assert not r.plan(0, 4, 0.18).grpc


def test_silence_reopens_then_falls_back_then_probes() -> None:
    r = FastRoutes(2, retry_after=30.0)
    r.opened(0)
    r.opened(1)
    plans = [r.plan(0, seq, seq * 0.06) for seq in range(1, FALLBACK_MISSES + 2)]
    assert plans[0].grpc is False  # nothing unanswered yet
    assert all(p.grpc for p in plans[1:])  # every round after a miss also over gRPC
    assert [p.reopen for p in plans].index(True) == REOPEN_AFTER_MISSES
    r.opened(0)  # a fresh key that is not answered either must still end in fallback
    assert plans[-1].fell_back and not plans[-1].udp
    assert r.fallen_back(0) and not r.fallen_back(1)
    t = (FALLBACK_MISSES + 2) * 0.06
    assert (r.plan(0, 100, t).udp, r.plan(0, 101, t + 29).udp) == (False, False)
    probe = r.plan(0, 102, t + 31)
    assert (probe.udp, probe.grpc, probe.reopen) == (True, True, True)
    assert not r.plan(0, 103, t + 31.06).udp  # one probe per retry period
    assert r.answered(0, 102)  # the probe was answered: back on the fast path
    p = r.plan(0, 104, t + 31.12)
    assert (p.udp, p.grpc) == (True, False)
