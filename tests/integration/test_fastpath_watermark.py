"""A stalled fast-path intake makes no live node look silent (issue 14).

A real UDP socket on loopback, the real intake thread and kernel receive stamps, a
lease table fed the way AgentService.handle_datagram feeds it. Four nodes keep
sending; once, the handler blocks for two TTLs, so the socket fills behind it. With
fast-path silences counted up to the intake's read watermark, no age exceeds the
longest gap between two of a node's datagrams, so nobody is reported stale. The same
arrivals aged up to now, with the event loop's stall credit and the overload meter as
before the watermark, report every node silent for most of the stall: the event loop
did not stall, and the meter hears of the backlog only once the intake reads again
(before the watermark this test failed: the old rule voted every node stale).
"""

from __future__ import annotations

import socket
import threading
import time

from vnfha.coordinator import fastwire as W
from vnfha.coordinator.fastpath import FastPathIntake
from vnfha.coordinator.leases import OVERLOADED_EXPIRY_TTLS, LeaseTable
from vnfha.coordinator.overload import for_ttl
from vnfha.v1 import agent_pb2

TTL = 0.25
INTERVAL = 0.05  # between two rounds of the four nodes
ROUNDS = 32  # 1.6 s of keepalives
STALL_AT_ROUND = 10
NODES = ("n1", "n2", "n3", "n4")


def test_a_stalled_intake_reports_no_live_node_stale() -> None:
    meter = for_ttl(TTL)  # the overload meter, as the coordinator wires it
    exact = LeaseTable(started_at=time.monotonic(), ttl=TTL)
    old = LeaseTable(started_at=time.monotonic(), ttl=TTL, stall=meter.stalled)
    stall = threading.Event()  # set by the sender: block on the next datagram
    stalled: list[float] = []  # when the handler blocked, and for how long

    def handler(req: agent_pb2.KeepaliveRequest,
                arrived: float) -> agent_pb2.KeepaliveResponse:
        for table in (exact, old):
            table.record(req.node, [], arrived)
        exact.heard_fast(req.node, arrived)  # only `exact` knows the watermark
        if stall.is_set() and not stalled:
            t0 = time.monotonic()
            time.sleep(2 * TTL)  # the intake is busy: the socket fills behind it
            stalled.extend([t0, time.monotonic() - t0])
        return agent_pb2.KeepaliveResponse(seq=req.seq, result=agent_pb2.KEEPALIVE_RESULT_ACK)

    intake = FastPathIntake("127.0.0.1", 0, handler)
    intake.on_queued = meter.queued
    exact.read_through(lambda: intake.read_through, intake.shed_marks)
    keys = {n: W.SessionKey(i.key_id, i.key)
            for n, i in ((n, intake.open_session(n)) for n in NODES)}
    sends: dict[str, list[tuple[float, float]]] = {n: [] for n in NODES}
    done = threading.Event()

    def sender() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for seq in range(1, ROUNDS + 1):
                if seq == STALL_AT_ROUND:
                    stall.set()
                for n in NODES:
                    body = agent_pb2.KeepaliveRequest(node=n, seq=seq).SerializeToString()
                    before = time.monotonic()
                    tx.sendto(keys[n].seal(W.KIND_KEEPALIVE, seq, body),
                              ("127.0.0.1", intake.port))
                    sends[n].append((before, time.monotonic()))
                time.sleep(INTERVAL)
        done.set()

    def heartbeat() -> None:
        # The event loop's probe, for the old rule: the loop is modelled punctual (only
        # the intake stalls), so a busy test machine that wakes this thread late does
        # not turn into an overload that the scenario does not contain.
        while not done.is_set():
            time.sleep(meter.period)
            meter.beat(time.monotonic(), 0.0)

    worst: dict[str, float] = dict.fromkeys(NODES, 0.0)
    old_voted: set[str] = set()
    threads = [threading.Thread(target=f, daemon=True) for f in (sender, heartbeat)]
    intake.start()
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while not all(exact.last_seen(n) is not None for n in NODES):
            assert time.monotonic() < deadline, "the first round was never handled"
            time.sleep(0.001)
        while not done.is_set():
            assert time.monotonic() < deadline, "the sender did not finish"
            now = time.monotonic()
            ages, _ = exact.vouched(list(NODES), now, TTL, meter.overloaded(now))
            for n, a in ages.items():
                worst[n] = max(worst[n], a)
            for n in NODES:  # the old rule: up to now, less the stall; the overload blanket
                a = old.age(n, now)
                limit = OVERLOADED_EXPIRY_TTLS * TTL if meter.overloaded(now) else TTL
                if a > limit:
                    old_voted.add(n)
            time.sleep(0.005)
    finally:
        done.set()
        intake.stop()
        for t in threads:
            t.join(timeout=5)
    assert stalled and stalled[1] >= 2 * TTL, "the intake must have stalled"
    for n in NODES:
        # A datagram's arrival lies between the clock readings around its sendto, so
        # no true silence of n was longer than this.
        gap = max(b[1] - a[0] for a, b in zip(sends[n], sends[n][1:], strict=False))
        assert worst[n] <= gap + 0.002, (n, worst[n], gap)
        if gap < TTL:  # the sender kept up (it does unless the machine starves it)
            assert worst[n] <= TTL, (n, worst[n])
    # Control: the stall is one the rule before the watermark reports as silence.
    assert old_voted == set(NODES), old_voted


def test_datagrams_the_kernel_dropped_make_no_silence_exact() -> None:
    """A receive buffer that overflowed dropped datagrams that did arrive: the kernel
    counts them (SO_RXQ_OVFL), the intake counts them as `overflow` and moves its shed
    mark, so a node last heard before that mark is not called silent by the watermark
    (leases.LeaseTable.read_through)."""
    handled = threading.Event()

    def handler(req: agent_pb2.KeepaliveRequest,
                arrived: float) -> agent_pb2.KeepaliveResponse:
        handled.set()
        return agent_pb2.KeepaliveResponse(seq=req.seq, result=agent_pb2.KEEPALIVE_RESULT_ACK)

    intake = FastPathIntake("127.0.0.1", 0, handler, rcvbuf=4096)  # the kernel's minimum
    issued = intake.open_session("n1")
    key = W.SessionKey(issued.key_id, issued.key)
    body = agent_pb2.KeepaliveRequest(node="n1", seq=1).SerializeToString()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            before = time.monotonic()
            for seq in range(1, 201):  # nobody reads yet: most of them do not fit
                tx.sendto(key.seal(W.KIND_KEEPALIVE, seq, body), ("127.0.0.1", intake.port))
            intake.start()
            assert handled.wait(10)
            time.sleep(0.05)  # then one more, which carries the kernel's count
            tx.sendto(key.seal(W.KIND_KEEPALIVE, 201, body), ("127.0.0.1", intake.port))
            deadline = time.monotonic() + 10
            while intake.dropped["overflow"] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            intake.stop()
    assert intake.dropped["overflow"] > 0, intake.dropped
    assert intake.shed_through > before


def test_a_datagram_shed_as_stale_marks_its_keys_node_only() -> None:
    """Datagrams dropped unhandled as stale (overloaded) are noted against the node their
    key belongs to: that node's silence is not exact across them; another node's is."""
    intake = FastPathIntake("127.0.0.1", 0, lambda req, arrived: agent_pb2.KeepaliveResponse(
        seq=req.seq), stale_after=0.1)
    keys = {n: W.SessionKey(i.key_id, i.key)
            for n, i in ((n, intake.open_session(n)) for n in ("n1", "n2"))}
    body = agent_pb2.KeepaliveRequest(node="n1", seq=1).SerializeToString()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            before = time.monotonic()
            for seq in range(1, 4):
                tx.sendto(keys["n1"].seal(W.KIND_KEEPALIVE, seq, body),
                          ("127.0.0.1", intake.port))
            time.sleep(0.3)  # they wait past the limit
            intake.start()
            deadline = time.monotonic() + 10
            while intake.dropped["stale"] < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            intake.stop()
    assert intake.dropped["stale"] == 3, intake.dropped
    _, per_node = intake.shed_marks()
    assert before <= per_node["n1"] < before + 0.3
    assert "n2" not in per_node
