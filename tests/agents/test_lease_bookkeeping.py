"""QuorumLease's cheap bookkeeping decides exactly as the plain rules it replaced.

Why: `sent` dropped old rounds by scanning every recorded round, and `announced` rebuilt
the union of the coordinators' views, on every round and every acknowledgement (most of
a 1,000-agent load generator's CPU). Both are now kept incrementally; a lease is the
safety argument's conservative clock, so the faster bookkeeping must give the same
deadlines, the same acks counted and the same rounds remembered, in every order of
calls, including rounds recorded out of order and with gaps.
"""

from __future__ import annotations

import random

import pytest

from vnfha.agents.lease import QuorumLease


class PlainLease(QuorumLease):
    """The rules as they were written before: a full scan and a union per call."""

    @property
    def announced(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for view in self._views.values():
            out |= view
        return out

    def sent(self, seq: int, at: float) -> None:
        self._sent[seq] = at
        self._acks.setdefault(seq, set())
        for old in [s for s in self._sent if s < seq - 64]:
            self._sent.pop(old, None)
            self._acks.pop(old, None)


IDS = ["c1", "c2", "c3", "c4", "c5"]


def _same(a: QuorumLease, b: QuorumLease, now: float) -> None:
    assert sorted(a._sent.items()) == sorted(b._sent.items())
    assert {k: sorted(v) for k, v in a._acks.items()} == \
        {k: sorted(v) for k, v in b._acks.items()}
    assert a.deadline() == b.deadline()
    assert a.valid(now) == b.valid(now)
    assert a.announced == b.announced
    assert a.quorum == b.quorum


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("in_order", [True, False])
def test_random_histories_keep_the_same_rounds_acks_and_deadline(seed: int,
                                                                 in_order: bool) -> None:
    rnd = random.Random(seed)
    fast, plain = QuorumLease(3, 0.25), PlainLease(3, 0.25)
    seq, now = 0, 100.0
    for _ in range(600):
        now += rnd.uniform(0.0, 0.03)
        op = rnd.random()
        if op < 0.45:
            # rounds numbered upwards with gaps; out of order (a lower or repeated
            # number) only in the second variant
            seq += rnd.choice([1, 1, 1, 2, 70]) if rnd.random() < 0.97 else 100
            if not in_order and rnd.random() < 0.15:
                s = max(0, seq - rnd.randint(0, 120))
            else:
                s = seq
            fast.sent(s, now)
            plain.sent(s, now)
        elif op < 0.9:
            s = seq - rnd.randint(0, 80)
            cid = rnd.choice(IDS)
            ttl_ms = rnd.choice([0, 250, 200])
            assert fast.acked(s, cid, ttl_ms) == plain.acked(s, cid, ttl_ms)
        elif op < 0.97:
            cid = rnd.choice(IDS)
            members = rnd.sample(IDS, rnd.randint(0, 5))
            assert fast.announce(cid, members) == plain.announce(cid, members)
        else:
            s = seq - rnd.randint(0, 5)
            assert fast.acked_since(s) == plain.acked_since(s)
            assert fast.unjustified() == plain.unjustified()
        _same(fast, plain, now)


def test_a_long_in_order_run_remembers_only_the_last_65_rounds() -> None:
    lease = QuorumLease(1, 0.25)
    for seq in range(1, 1001):
        lease.sent(seq, float(seq))
    assert sorted(lease._sent) == list(range(936, 1001))
    assert sorted(lease._acks) == list(range(936, 1001))
    assert not lease.acked(935, "c1", 250)  # forgotten: cannot be dated
    assert lease.acked(936, "c1", 250)


def test_a_round_recorded_out_of_order_is_still_dropped_when_old() -> None:
    lease = QuorumLease(1, 0.25)
    for seq in range(100, 110):
        lease.sent(seq, float(seq))
    lease.sent(50, 50.0)  # out of order: at the end of the insertion order
    lease.sent(120, 120.0)
    assert 50 not in lease._sent and 50 not in lease._acks
    assert not lease.acked(50, "c1", 250)
