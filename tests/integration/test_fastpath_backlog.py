"""The fast-path intake reports how long datagrams waited in its socket (issue 14).

Its thread reads past the gRPC event loop, so the loop-lag heartbeat cannot see a
backlog there; before this, a coordinator taking twice the keepalives it could read on
the fast path never reported overload (no refusal of new nodes, nothing on /readyz).
Real UDP socket on loopback, the real intake thread and kernel receive stamps."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from support import wait_for

from vnfha.coordinator import fastwire as W
from vnfha.coordinator.fastpath import FastPathIntake, Issued
from vnfha.v1 import agent_pb2

WAIT = 0.3


def _recording(expected: int = 0) -> tuple[list[int], threading.Event,
                                           Callable[[agent_pb2.KeepaliveRequest, float],
                                                    agent_pb2.KeepaliveResponse]]:
    """A handler that answers every keepalive and records its seq; the event is set
    once `expected` of them were handled (never, for 0)."""
    handled: list[int] = []
    done = threading.Event()

    def handler(req: agent_pb2.KeepaliveRequest, arrived: float) -> agent_pb2.KeepaliveResponse:
        handled.append(req.seq)
        if len(handled) == expected:
            done.set()
        return agent_pb2.KeepaliveResponse(seq=req.seq)

    return handled, done, handler


def n1_datagrams(intake: FastPathIntake) -> Callable[[int], bytes]:
    """Open a session for node n1; its keepalive for a round, sealed under that key."""
    issued = intake.open_session("n1")
    key = W.SessionKey(issued.key_id, issued.key)

    def datagram(seq: int) -> bytes:
        payload = agent_pb2.KeepaliveRequest(node="n1", seq=seq).SerializeToString()
        return key.seal(W.KIND_KEEPALIVE, seq, payload)
    return datagram


def test_the_intake_reports_the_wait_of_a_backlog_it_reads_late() -> None:
    def handler(req: agent_pb2.KeepaliveRequest, arrived: float) -> agent_pb2.KeepaliveResponse:
        return agent_pb2.KeepaliveResponse(seq=req.seq)

    reports: list[tuple[float, float]] = []
    got = threading.Event()
    intake = FastPathIntake("127.0.0.1", 0, handler)

    def queued(now: float, waited: float) -> None:
        reports.append((now, waited))
        got.set()

    intake.on_queued = queued
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            for _ in range(3):  # not authentic: dropped, but read, and waited all the same
                tx.sendto(b"x" * 40, ("127.0.0.1", intake.port))
            time.sleep(WAIT)  # nobody reads: they wait in the socket
            intake.start()
            assert got.wait(10), "no batch reported"
        finally:
            intake.stop()
    assert intake.arrivals is not None, "kernel receive stamps are available on Linux"
    assert max(w for _, w in reports) >= WAIT * 0.9, reports


def test_datagrams_that_waited_past_the_limit_are_dropped_unread() -> None:
    """Overloaded, the socket holds a backlog: what waited more than `stale_after` is
    dropped before it is decrypted or answered (counted `stale`), so the backlog drains
    at the cost of a read and what is answered is fresh."""
    handled: list[float] = []
    fresh = threading.Event()

    def handler(req: agent_pb2.KeepaliveRequest, arrived: float) -> agent_pb2.KeepaliveResponse:
        handled.append(arrived)
        fresh.set()
        return agent_pb2.KeepaliveResponse(seq=req.seq)

    intake = FastPathIntake("127.0.0.1", 0, handler, stale_after=WAIT / 3)
    datagram = n1_datagrams(intake)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            for seq in range(1, 6):
                tx.sendto(datagram(seq), ("127.0.0.1", intake.port))
            time.sleep(WAIT)  # they wait past the limit
            intake.start()
            deadline = time.monotonic() + 10
            while intake.dropped["stale"] < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert handled == [] and intake.dropped["stale"] == 5, intake.dropped
            at = time.monotonic()
            tx.sendto(datagram(6), ("127.0.0.1", intake.port))  # a fresh one is answered
            assert fresh.wait(10)
        finally:
            intake.stop()
    assert len(handled) == 1 and handled[0] >= at - 0.01


def test_a_node_holding_an_active_role_is_answered_even_when_stale() -> None:
    """Actives first: a lapse there costs a failover, so their datagrams past
    `stale_after` are handled anyway (dated by their arrival, as always)."""
    handled, done, handler = _recording(3)

    intake = FastPathIntake("127.0.0.1", 0, handler, stale_after=WAIT / 3)
    intake.holds_active = lambda node: node == "n1"
    issued = intake.open_session("n1")
    key = W.SessionKey(issued.key_id, issued.key)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            for seq in range(1, 4):
                payload = agent_pb2.KeepaliveRequest(node="n1", seq=seq).SerializeToString()
                tx.sendto(key.seal(W.KIND_KEEPALIVE, seq, payload), ("127.0.0.1", intake.port))
            time.sleep(WAIT)
            intake.start()
            assert done.wait(10), (handled, intake.dropped)
        finally:
            intake.stop()
    assert handled == [1, 2, 3] and intake.dropped["stale"] == 0


def test_an_actives_datagram_no_answer_could_help_is_dropped_as_stale() -> None:
    """...up to `actives_stale_after` (a TTL on a coordinator): past it the agent's
    lease, counted from the round's sending for less than a TTL, gains nothing from an
    answer, and answering it costs a fresh one (under the overload test the intakes
    answered the pair's active 1.1-2.2 s late while its lease ran out). Its arrival is
    still noted (`shed_marks`): dropped is not silent."""
    handled, _, handler = _recording()
    fresh = threading.Event()

    def answer(req: agent_pb2.KeepaliveRequest, arrived: float) -> agent_pb2.KeepaliveResponse:
        if req.seq == 9:
            fresh.set()
        return handler(req, arrived)

    intake = FastPathIntake("127.0.0.1", 0, answer, stale_after=WAIT / 6,
                            actives_stale_after=WAIT / 3)
    intake.holds_active = lambda node: node == "n1"
    datagram = n1_datagrams(intake)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            for seq in range(1, 4):
                tx.sendto(datagram(seq), ("127.0.0.1", intake.port))
            time.sleep(WAIT)  # past both limits
            intake.start()
            deadline = time.monotonic() + 10
            while intake.dropped["stale"] < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert handled == [] and intake.dropped["stale"] == 3, intake.dropped
            assert "n1" in intake.shed_marks()[1]
            tx.sendto(datagram(9), ("127.0.0.1", intake.port))  # a fresh one is answered
            assert fresh.wait(10)
        finally:
            intake.stop()
    assert handled == [9]


def test_not_overloaded_a_late_datagram_is_handled_not_dropped() -> None:
    """A passing stall is not overload: what waited in it is handled, dated by its
    arrival, so no node's record ages by the stall."""
    handled, done, handler = _recording(2)

    intake = FastPathIntake("127.0.0.1", 0, handler, stale_after=WAIT / 3)
    intake.overloaded = lambda now: False
    issued = intake.open_session("n1")
    key = W.SessionKey(issued.key_id, issued.key)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            for seq in (1, 2):
                payload = agent_pb2.KeepaliveRequest(node="n1", seq=seq).SerializeToString()
                tx.sendto(key.seal(W.KIND_KEEPALIVE, seq, payload), ("127.0.0.1", intake.port))
            time.sleep(WAIT)
            intake.start()
            assert done.wait(10), (handled, intake.dropped)
        finally:
            intake.stop()
    assert handled == [1, 2] and intake.dropped["stale"] == 0


RATION = 0.2


def _sealer_for(issued: Issued, node: str) -> Callable[[int], bytes]:
    """Seals node `node`'s keepalive round `seq` under the key `issued`."""
    key = W.SessionKey(issued.key_id, issued.key)

    def datagram(seq: int) -> bytes:
        payload = agent_pb2.KeepaliveRequest(node=node, seq=seq).SerializeToString()
        return key.seal(W.KIND_KEEPALIVE, seq, payload)

    return datagram


def _sealer(intake: FastPathIntake, node: str) -> Callable[[int], bytes]:
    return _sealer_for(intake.open_session(node), node)


def test_overloaded_a_standby_is_answered_at_most_every_ration() -> None:
    """Shed before it queues: while overloaded, a node with no active role is answered
    at most every `ration` (by the intake's clock, as it reads), the datagrams between
    are dropped before decryption and counted `rationed`; the active's node is answered
    every time. Each node sends a datagram every 20 ms for a second."""
    handled: dict[str, list[float]] = {"standby": [], "active": []}

    def handler(req: agent_pb2.KeepaliveRequest, arrived: float) -> agent_pb2.KeepaliveResponse:
        handled[req.node].append(arrived)
        return agent_pb2.KeepaliveResponse(seq=req.seq)

    intake = FastPathIntake("127.0.0.1", 0, handler, ration=RATION)
    intake.overloaded = lambda now: True
    intake.holds_active = lambda node: node == "active"
    standby = _sealer(intake, "standby")
    active = _sealer(intake, "active")
    sent = 50
    started = time.monotonic()
    intake.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for seq in range(1, sent + 1):  # bounded: 50 rounds, one second
                tx.sendto(standby(seq), ("127.0.0.1", intake.port))
                tx.sendto(active(seq), ("127.0.0.1", intake.port))
                time.sleep(0.02)
        deadline = time.monotonic() + 10
        while (len(handled["standby"]) + intake.dropped["rationed"] < sent
               or len(handled["active"]) < sent) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        intake.stop()
    reading = time.monotonic() - started  # every read happened within this
    times = handled["standby"]
    assert len(handled["active"]) == sent, intake.dropped
    assert len(times) + intake.dropped["rationed"] == sent, (len(times), intake.dropped)
    # answers at least RATION apart, all within `reading`
    assert 1 <= len(times) <= reading / RATION + 1, (len(times), reading)
    assert intake.dropped["rationed"] >= sent // 2, intake.dropped


def test_a_forged_datagram_does_not_use_up_a_nodes_answer() -> None:
    """Rationing is decided from the clear header, which anyone can copy; only a
    datagram that was authenticated and answered starts the ration. A forgery under the
    node's key id, arriving when its answer is due, is refused (`unauthenticated`) and
    the node's own datagram right behind it is answered."""
    handled, _done, handler = _recording()

    intake = FastPathIntake("127.0.0.1", 0, handler, ration=RATION)
    intake.overloaded = lambda now: True
    datagram = _sealer(intake, "n1")
    forged = bytearray(datagram(1000))
    forged[-1] ^= 0xFF  # the tag no longer holds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(bytes(forged), ("127.0.0.1", intake.port))
        tx.sendto(datagram(1), ("127.0.0.1", intake.port))
        tx.sendto(datagram(2), ("127.0.0.1", intake.port))  # within the ration
        intake.start()
        try:
            deadline = time.monotonic() + 10
            while (intake.dropped["rationed"] < 1 or not handled) \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            intake.stop()
    assert handled == [1], (handled, intake.dropped)
    assert intake.dropped["unauthenticated"] == 1 and intake.dropped["rationed"] == 1


def test_not_overloaded_nothing_is_rationed() -> None:
    """Rationing is for overload only: otherwise every keepalive is answered."""
    handled, done, handler = _recording(5)

    intake = FastPathIntake("127.0.0.1", 0, handler, ration=RATION)
    intake.overloaded = lambda now: False
    datagram = _sealer(intake, "n1")
    intake.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for seq in range(1, 6):
                tx.sendto(datagram(seq), ("127.0.0.1", intake.port))
        assert done.wait(10), (handled, intake.dropped)
    finally:
        intake.stop()
    assert handled == [1, 2, 3, 4, 5] and intake.dropped["rationed"] == 0


def test_an_active_whose_datagrams_wait_too_long_is_rationed_too() -> None:
    """Actives first, but not without bound: when even an active's datagrams wait in the
    socket longer than `actives_within`, answering each one would let the backlog grow
    until every answer is too late; it is answered once per ration instead."""
    handled, _done, handler = _recording()

    intake = FastPathIntake("127.0.0.1", 0, handler, ration=RATION, actives_within=WAIT / 3)
    intake.overloaded = lambda now: True
    intake.holds_active = lambda node: True
    datagram = _sealer(intake, "n1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for seq in range(1, 6):
            tx.sendto(datagram(seq), ("127.0.0.1", intake.port))
        time.sleep(WAIT)  # nobody reads: they wait past actives_within
        intake.start()
        try:
            deadline = time.monotonic() + 10
            while len(handled) + intake.dropped["rationed"] < 5 \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            intake.stop()
    assert handled == [1] and intake.dropped["rationed"] == 4, (handled, intake.dropped)
    assert intake.dropped["stale"] == 0


def _read_queued(intake: FastPathIntake, accounted: Callable[[], int], count: int) -> None:
    """Start the intake on what waits in its socket and stop it once `count` datagrams
    are accounted for (handled or dropped)."""
    intake.start()
    try:
        wait_for(lambda: accounted() >= count, 10, what=f"{count} datagrams read")
    finally:
        intake.stop()


def test_the_ration_counts_between_arrivals_not_reads() -> None:
    """An agent sends a rationed node's rounds a ration apart (agents/fastpath.py). A
    coordinator that reads them late, in one batch after a stall, must still answer
    each: they arrived a ration apart. Counted between reads, all but the first were
    "too soon" after it and were dropped, and the node's answers came two rations
    apart or worse exactly while the coordinator was slowest (issue 14)."""
    handled, _done, handler = _recording()

    intake = FastPathIntake("127.0.0.1", 0, handler, ration=RATION)
    intake.overloaded = lambda now: True
    intake.holds_active = lambda node: False
    datagram = _sealer(intake, "n1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for seq in range(1, 4):  # a ration and a bit apart; nobody reads yet
            tx.sendto(datagram(seq), ("127.0.0.1", intake.port))
            time.sleep(RATION + 0.05)
        _read_queued(intake, lambda: len(handled) + intake.dropped["rationed"], 3)
    assert handled == [1, 2, 3], (handled, intake.dropped)
    assert intake.dropped["rationed"] == 0


def test_a_new_key_does_not_drop_the_rounds_queued_under_the_old_one() -> None:
    """An agent whose answers are late asks for a new key; its rounds already waiting
    in the coordinator's socket under the old key are answered, not dropped as unknown
    (issue 14). The old key ends with the first datagram under the new one, and a key
    replaced before it was used takes its predecessor with it (two keys at most)."""
    handled, _done, handler = _recording()
    intake = FastPathIntake("127.0.0.1", 0, handler)
    old = _sealer_for(intake.open_session("n1"), "n1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(old(1), ("127.0.0.1", intake.port))  # queued: nobody reads yet
        new = _sealer_for(intake.open_session("n1"), "n1")
        tx.sendto(new(2), ("127.0.0.1", intake.port))
        tx.sendto(old(3), ("127.0.0.1", intake.port))  # after the new key was used
        _read_queued(intake, lambda: len(handled) + intake.dropped["unknown_key"], 3)
    assert handled == [1, 2], (handled, intake.dropped)
    assert intake.dropped["unknown_key"] == 1
    assert intake.sessions() == 1
    # three keys in a row, the middle one never used: the first goes with it
    intake2 = FastPathIntake("127.0.0.1", 0, handler)
    try:
        for _ in range(3):
            intake2.open_session("n2")
        assert intake2.sessions() == 2
    finally:
        intake2.stop()
