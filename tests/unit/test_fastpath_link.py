"""The agent's fast-path link keeps the key a new one replaced for answers already sealed
under it (agents/fastpath.py FastPathLink), on real loopback sockets.

Why (issue 14): an agent asks for a new key when a coordinator seems to have forgotten
its old one; a busy coordinator that had not forgotten it has answers in flight sealed
under the old key. Dropping those as `unknown_key` took answers from the lease exactly
when the coordinator was slowest. Only the key before the current one is kept, with its
own replay guard; sending always uses the current key.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from vnfha.agents.fastpath import FastPathLink
from vnfha.coordinator import fastwire as W
from vnfha.v1 import agent_pb2


class Coordinator:
    """A UDP socket on loopback that issues keys and answers with any of them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)
        self.port = self.sock.getsockname()[1]

    def issue(self) -> tuple[W.SessionKey, agent_pb2.OpenFastPathResponse]:
        key_id, key = os.urandom(W.KEY_ID_BYTES), os.urandom(W.KEY_BYTES)
        return W.SessionKey(key_id, key), agent_pb2.OpenFastPathResponse(
            key_id=key_id, key=key, port=self.port, max_datagram=W.MAX_DATAGRAM,
            coordinator_id="c1")

    def agent_address(self) -> tuple:
        """Where the agent sends from (read one keepalive)."""
        _data, addr = self.sock.recvfrom(W.MAX_DATAGRAM)
        return addr

    def answer(self, key: W.SessionKey, counter: int, seq: int, addr: tuple) -> None:
        body = agent_pb2.KeepaliveResponse(seq=seq, result=agent_pb2.KEEPALIVE_RESULT_ACK)
        self.sock.sendto(key.seal(W.KIND_ACK, counter, body.SerializeToString()), addr)


@pytest.fixture
def rig():
    coord = Coordinator()
    got: list[tuple[int, int]] = []
    lock = threading.Lock()

    def on_answer(i: int, resp: agent_pb2.KeepaliveResponse) -> None:
        with lock:
            got.append((i, resp.seq))

    link = FastPathLink("vm1", [f"127.0.0.1:{coord.port + 1}"], on_answer)
    link.start()
    try:
        yield coord, link, got
    finally:
        link.stop()
        coord.sock.close()


def settle(cond) -> None:
    """Wait (bounded) for something the link's thread does."""
    deadline = time.monotonic() + 3.0
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def rekeyed(coord: Coordinator, link: FastPathLink) -> tuple:
    """Key one, round 1 sent under it, then key two installed (the agent asked for a
    new key): (key one, key two, the agent's address)."""
    old, resp = coord.issue()
    link.install(0, resp)
    assert link.send(0, agent_pb2.KeepaliveRequest(node="vm1", seq=1))
    addr = coord.agent_address()
    new, resp = coord.issue()
    link.install(0, resp)
    return old, new, addr


def test_answers_under_the_replaced_key_still_count_and_older_ones_do_not(rig) -> None:
    coord, link, got = rig
    old, new, addr = rekeyed(coord, link)  # round 1's answer is in flight under `old`
    coord.answer(old, 1, 1, addr)
    settle(lambda: got or link.dropped["unknown_key"])
    assert got == [(0, 1)]
    coord.answer(old, 1, 1, addr)  # the same answer again: a replay
    settle(lambda: link.dropped["replayed"])
    assert link.dropped["replayed"] == 1 and got == [(0, 1)]
    # Sending uses the new key only.
    assert link.send(0, agent_pb2.KeepaliveRequest(node="vm1", seq=2))
    data, _ = coord.sock.recvfrom(W.MAX_DATAGRAM)
    assert W.parse_header(data, W.KIND_KEEPALIVE).key_id == new.key_id
    coord.answer(new, 1, 2, addr)
    settle(lambda: len(got) >= 2)
    assert got == [(0, 1), (0, 2)]
    # A third key: the first one is forgotten for good.
    _third, resp = coord.issue()
    link.install(0, resp)
    coord.answer(old, 2, 3, addr)
    settle(lambda: link.dropped["unknown_key"])
    assert link.dropped["unknown_key"] == 1 and got == [(0, 1), (0, 2)]
    coord.answer(new, 2, 4, addr)  # the one it replaced still counts
    settle(lambda: len(got) >= 3)
    assert got == [(0, 1), (0, 2), (0, 4)]


def test_forget_drops_both_keys(rig) -> None:
    coord, link, got = rig
    old, new, addr = rekeyed(coord, link)
    link.forget(0)
    coord.answer(old, 1, 1, addr)
    coord.answer(new, 1, 2, addr)
    settle(lambda: link.dropped["unknown_key"] >= 2)
    assert got == [] and link.dropped["unknown_key"] == 2
