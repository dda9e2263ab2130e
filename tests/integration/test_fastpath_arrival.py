"""A fast-path keepalive is dated by when it arrived, not by when the intake read it.

A real UDP socket on loopback and the real intake thread (coordinator/fastpath.py);
the handler records the arrival time it is given. Before the kernel receive stamps
(coordinator/rxclock.py), a datagram that waited in the socket while the intake was
busy (a slow batch, a starved thread) was dated at its read: a live node looked silent
for as long as the coordinator lagged, which is how overload lapsed every lease
(issue 14)."""

from __future__ import annotations

import socket
import threading
import time

from vnfha.coordinator import fastwire as W
from vnfha.coordinator.fastpath import FastPathIntake
from vnfha.v1 import agent_pb2

WAIT = 0.4  # how long datagrams wait unread


class Recorder:
    def __init__(self, slow_first: float = 0.0) -> None:
        self.calls: list[tuple[int, float]] = []  # (seq, arrival given)
        self.done = threading.Event()
        self._slow_first = slow_first

    def __call__(self, req: agent_pb2.KeepaliveRequest,
                 arrived: float) -> agent_pb2.KeepaliveResponse:
        self.calls.append((req.seq, arrived))
        if len(self.calls) == 1 and self._slow_first:
            time.sleep(self._slow_first)  # the intake is busy: the next one waits
        if len(self.calls) >= 2:
            self.done.set()
        return agent_pb2.KeepaliveResponse(seq=req.seq,
                                           result=agent_pb2.KEEPALIVE_RESULT_ACK)


def send(sock: socket.socket, key: W.SessionKey, port: int, seq: int) -> float:
    payload = agent_pb2.KeepaliveRequest(node="n1", seq=seq).SerializeToString()
    at = time.monotonic()
    sock.sendto(key.seal(W.KIND_KEEPALIVE, seq, payload), ("127.0.0.1", port))
    return at


def test_a_backlog_read_late_is_dated_by_its_arrival() -> None:
    rec = Recorder()
    intake = FastPathIntake("127.0.0.1", 0, rec)
    issued = intake.open_session("n1")
    key = W.SessionKey(issued.key_id, issued.key)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            sent = [send(tx, key, intake.port, 1), send(tx, key, intake.port, 2)]
            time.sleep(WAIT)  # nobody reads: the datagrams wait in the socket
            started = time.monotonic()
            intake.start()
            assert rec.done.wait(10), rec.calls
        finally:
            intake.stop()
    assert [seq for seq, _ in rec.calls] == [1, 2]
    for (_, arrived), at in zip(rec.calls, sent, strict=True):
        # dated when it arrived (a few ms after sending), not when read (>= WAIT later)
        assert at <= arrived < at + WAIT / 2 < started, (at, arrived, started)


def test_a_datagram_queued_behind_a_slow_one_is_not_aged_by_it() -> None:
    rec = Recorder(slow_first=WAIT)
    intake = FastPathIntake("127.0.0.1", 0, rec)
    issued = intake.open_session("n1")
    key = W.SessionKey(issued.key_id, issued.key)
    intake.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            send(tx, key, intake.port, 1)
            time.sleep(0.05)  # the intake is now busy with the first one
            at = send(tx, key, intake.port, 2)
            assert rec.done.wait(10), rec.calls
        finally:
            intake.stop()
    arrived = rec.calls[1][1]
    assert at <= arrived < at + WAIT / 2, (at, arrived)
