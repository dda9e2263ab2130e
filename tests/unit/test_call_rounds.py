"""`CallRounds` (agents/session.py): the rounds of one Keepalive call. gRPC reads a
stream's requests on a thread of its own that stays in the iterator after the call ends;
closing the rounds must end that reader, so a broken call neither lingers as a thread
nor takes a round meant for the next call."""

from __future__ import annotations

import threading

from vnfha.agents.session import ROUNDS_POLL, CallRounds
from vnfha.v1 import agent_pb2


def req(seq: int) -> agent_pb2.KeepaliveRequest:
    return agent_pb2.KeepaliveRequest(node="vm1", seq=seq)


def reader(rounds: CallRounds, got: list[int]) -> threading.Thread:
    t = threading.Thread(target=lambda: got.extend(r.seq for r in rounds), daemon=True)
    t.start()
    return t


def test_closing_ends_a_reader_blocked_on_an_empty_call() -> None:
    rounds, got = CallRounds(), []
    t = reader(rounds, got)
    rounds.put(req(1))
    deadline = threading.Event()
    for _ in range(100):  # bounded: the reader takes round 1 within a second
        if got:
            break
        deadline.wait(0.01)
    assert got == [1]
    rounds.close()
    t.join(timeout=2 * ROUNDS_POLL)
    assert not t.is_alive()
    assert got == [1]


def test_a_closed_call_takes_no_round_meant_for_the_next() -> None:
    old, new = CallRounds(), CallRounds()
    old_got: list[int] = []
    t = reader(old, old_got)
    old.close()
    t.join(timeout=2 * ROUNDS_POLL)
    new.put(req(7))
    assert next(iter(new)).seq == 7
    new.close()
    assert old_got == [] and not t.is_alive()


def test_a_full_call_keeps_the_newest_rounds_and_still_closes() -> None:
    rounds = CallRounds(size=2)
    for seq in range(1, 6):
        rounds.put(req(seq))
    rounds.close()  # the queue is full: the reader notices the flag instead
    assert list(r.seq for r in rounds) == []  # closed before it read: nothing goes
    fresh = CallRounds(size=2)
    for seq in range(1, 6):
        fresh.put(req(seq))
    it = iter(fresh)
    assert [next(it).seq, next(it).seq] == [4, 5]
    fresh.close()
    t = threading.Thread(target=lambda: list(it), daemon=True)
    t.start()
    t.join(timeout=2 * ROUNDS_POLL + 0.5)
    assert not t.is_alive()
