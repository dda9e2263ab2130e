"""Batched datagram reads and writes (lab/vnfha_lab/mmsg.py) on real loopback UDP sockets.

What matters: a batch read returns, datagram for datagram, what `socket.recvmsg` returns
for the same traffic (data, flags, source address, the kernel's receive stamps and drop
counts byte for byte), because an intake reading with it dates and sheds by them; it says
EAGAIN when the socket is empty (the intake's read watermark moves on that) and returns
a short batch only when the socket has no more; and the plain-call fallback behaves the
same. Every read is non-blocking or bounded by a receive timeout.
"""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest

from vnfha.coordinator import fastpath, rxclock
from vnfha_lab import mmsg

BUFSIZE = 4097  # the intake's (fastwire.MAX_DATAGRAM + 1)
IP_RECVTTL, IP_RECVTOS = 12, 13  # Linux; Python does not name them
RCVTIMEO = struct.pack("ll", 0, 20_000)  # 20 ms: a blocking read that finds nothing ends


def _rx(host: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, fastpath.SO_RXQ_OVFL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, RCVTIMEO)
    s.bind((host, 0))
    return s


def _tx(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def _payload(i: int, size: int = 40) -> bytes:
    return i.to_bytes(4, "big") + bytes((i + k) % 256 for k in range(size - 4))


def _native() -> mmsg.BatchReader:
    reader = mmsg.BatchReader(8, BUFSIZE, rxclock.ANCBUF)
    if not reader.native:
        pytest.skip("no recvmmsg in this C library")
    return reader


def _peek_then_read(reader: mmsg.BatchReader, rx: socket.socket,
                    bufsize: int = BUFSIZE) -> tuple[tuple, tuple]:
    """The head datagram as recvmsg sees it (peeked: it stays queued), then as the
    batch reader reads it: the same datagram, kernel stamp and all."""
    peeked = rx.recvmsg(bufsize, rxclock.ANCBUF, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    got = reader.recv(rx, socket.MSG_DONTWAIT, max_count=1)
    assert len(got) == 1
    return peeked, got[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_each_datagram_equals_recvmsg_byte_for_byte(host: str) -> None:
    reader = _native()
    with _rx(host) as rx, _tx(host) as tx1, _tx(host) as tx2:
        sizes = [0, 1, 40, 1500, BUFSIZE - 1, BUFSIZE]
        for i, n in enumerate(sizes):
            (tx1 if i % 2 else tx2).sendto(_payload(i, max(n, 4))[:n], rx.getsockname())
        for i, n in enumerate(sizes):
            peeked, got = _peek_then_read(reader, rx)
            assert got == peeked
            data, anc, flags, addr = got
            assert data == _payload(i, max(n, 4))[:n] and flags == 0
            assert addr == (tx1 if i % 2 else tx2).getsockname()
            assert [(lvl, kind) for lvl, kind, _ in anc] == [
                (socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS)]
        with pytest.raises(BlockingIOError):
            reader.recv(rx, socket.MSG_DONTWAIT)


def test_a_batch_carries_the_data_sources_and_kernel_stamps_in_arrival_order() -> None:
    """Several datagrams in one call (the iterated decoding, not the lone one): what
    recvmsg gives for twin traffic on a twin socket, except the stamps, which are each
    socket's own: present, a struct timespec from the sending moment, non-decreasing."""
    reader = mmsg.BatchReader(64, BUFSIZE, rxclock.ANCBUF)
    if not reader.native:
        pytest.skip("no recvmmsg in this C library")
    with _rx() as plain, _rx() as batched, _tx() as tx1, _tx() as tx2:
        before = time.time()
        for i in range(50):
            tx = tx1 if i % 3 else tx2
            for rx in (plain, batched):
                tx.sendto(_payload(i, 20 + i), rx.getsockname())
        after = time.time()
        expected = [plain.recvmsg(BUFSIZE, rxclock.ANCBUF, socket.MSG_DONTWAIT)
                    for _ in range(50)]
        got = reader.recv(batched, socket.MSG_DONTWAIT)
    assert len(got) == 50  # short of the 64 asked: everything queued
    assert [(d, f, a) for d, _, f, a in got] == [(d, f, a) for d, _, f, a in expected]
    assert [[(lvl, k, len(b)) for lvl, k, b in anc] for _, anc, _, _ in got] == \
        [[(lvl, k, len(b)) for lvl, k, b in anc] for _, anc, _, _ in expected]
    stamps = [rxclock.kernel_stamp(anc) for _, anc, _, _ in got]
    assert all(s is not None and before - 0.5 <= s <= after + 0.5 for s in stamps), stamps
    assert stamps == sorted(stamps)  # type: ignore[type-var]


def test_an_oversize_datagram_is_cut_and_flagged_as_recvmsg_does() -> None:
    reader = _native()
    with _rx() as rx, _tx() as tx:
        for i in range(3):
            tx.sendto(_payload(i, (100, 5000, 60)[i]), rx.getsockname())
        peeked, got = _peek_then_read(reader, rx, bufsize=64)  # (reader: BUFSIZE)
        assert got[2] == 0 and len(got[0]) == 100
        small = mmsg.BatchReader(8, 64, rxclock.ANCBUF)
        peeked = rx.recvmsg(64, rxclock.ANCBUF, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        got = small.recv(rx, socket.MSG_DONTWAIT)
    assert got[0] == peeked
    assert got[0][2] & socket.MSG_TRUNC and got[0][0] == _payload(1, 5000)[:64]
    assert got[1][2] == 0 and got[1][0] == _payload(2, 60)


def test_the_kernels_drop_count_survives_the_batch_read() -> None:
    """A receive buffer too small for the traffic: the datagrams queued after the drops
    carry the count (SO_RXQ_OVFL) next to their stamp, and the intake's parser finds
    it in what the batch reader returns."""
    reader = mmsg.BatchReader(256, BUFSIZE, rxclock.ANCBUF)
    if not reader.native:
        pytest.skip("no recvmmsg in this C library")
    with _rx(rcvbuf=4096) as rx, _tx() as tx:  # 4096: the kernel's minimum (doubled)
        for i in range(200):
            tx.sendto(_payload(i, 200), rx.getsockname())
        first = reader.recv(rx, socket.MSG_DONTWAIT)
        dropped = 200 - len(first)
        assert 0 < len(first) < 200 and dropped > 0
        assert all(fastpath._overflows(anc) is None for _, anc, _, _ in first)
        for i in range(3):
            tx.sendto(_payload(1000 + i, 200), rx.getsockname())
        peeked, lone = _peek_then_read(reader, rx)
        assert lone == peeked  # both control messages, byte for byte
        rest = reader.recv(rx, socket.MSG_DONTWAIT)
    assert len(rest) == 2
    for _, anc, _, _ in (lone, *rest):
        assert [(lvl, k) for lvl, k, _ in anc] == [
            (socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS),
            (socket.SOL_SOCKET, fastpath.SO_RXQ_OVFL)]
        assert fastpath._overflows(anc) == dropped
        assert rxclock.kernel_stamp(anc) is not None


def test_a_control_buffer_too_small_is_cut_as_recvmsg_cuts_it() -> None:
    reader = mmsg.BatchReader(4, 64, 20)
    if not reader.native:
        pytest.skip("no recvmmsg in this C library")
    with _rx() as rx, _tx() as tx:
        tx.sendto(b"abc", rx.getsockname())
        peeked = rx.recvmsg(64, 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        got = reader.recv(rx, socket.MSG_DONTWAIT)
    assert got == [peeked]
    assert got[0][2] & socket.MSG_CTRUNC


def test_several_control_messages_of_odd_lengths_are_walked_as_recvmsg_walks_them() -> None:
    """IP_TTL (4 bytes) and IP_TOS (1 byte) after the stamp: each padded to the next
    boundary by the kernel, so a walk that does not align reads garbage."""
    reader = mmsg.BatchReader(8, BUFSIZE, 256)
    if not reader.native:
        pytest.skip("no recvmmsg in this C library")
    with _rx() as plain, _rx() as batched, _tx() as tx:
        for rx in (plain, batched):
            rx.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            rx.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x20)
        for i in range(4):
            for rx in (plain, batched):
                tx.sendto(_payload(i), rx.getsockname())
        peeked = batched.recvmsg(BUFSIZE, 256, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        lone = reader.recv(batched, socket.MSG_DONTWAIT, max_count=1)
        rest = reader.recv(batched, socket.MSG_DONTWAIT)
        expected = [plain.recvmsg(BUFSIZE, 256, socket.MSG_DONTWAIT) for _ in range(4)]
    assert lone == [peeked]
    assert [(lvl, k) for lvl, k, _ in peeked[1]] == [
        (socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS), (socket.IPPROTO_IP, socket.IP_TTL),
        (socket.IPPROTO_IP, socket.IP_TOS)]
    # the same TTL and TOS bytes as recvmsg on the twin socket; stamps are each socket's
    assert [anc[1:] for _, anc, _, _ in lone + rest] == [anc[1:] for _, anc, _, _ in expected]
    assert [anc[1:] for _, anc, _, _ in expected] == [
        [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("=i", 64)),
         (socket.IPPROTO_IP, socket.IP_TOS, b"\x20")]] * 4


def test_an_empty_socket_says_eagain_and_a_blocking_read_times_out() -> None:
    reader = _native()
    with _rx() as rx:
        with pytest.raises(BlockingIOError):
            reader.recv(rx, socket.MSG_DONTWAIT)
        with pytest.raises(BlockingIOError):  # SO_RCVTIMEO, as the intake's blocking read
            reader.recv(rx, mmsg.MSG_WAITFORONE)
        rx.close()
        with pytest.raises(OSError):
            reader.recv(rx, socket.MSG_DONTWAIT)


@pytest.mark.parametrize("native", [True, False])
def test_partial_batches_in_order_then_eagain(native: bool) -> None:
    reader = mmsg.BatchReader(8, BUFSIZE, rxclock.ANCBUF, native=native)
    if native and not reader.native:
        pytest.skip("no recvmmsg in this C library")
    with _rx() as rx, _tx() as tx:
        for i in range(20):
            tx.sendto(_payload(i), rx.getsockname())
        sizes, data = [], []
        while True:
            try:
                batch = reader.recv(rx, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            sizes.append(len(batch))
            data += [d for d, _, _, _ in batch]
            if len(batch) < reader.max_count:  # short: drained
                with pytest.raises(BlockingIOError):
                    reader.recv(rx, socket.MSG_DONTWAIT)
                break
        assert sizes == [8, 8, 4]
        assert data == [_payload(i) for i in range(20)]
        for i in range(3):
            tx.sendto(_payload(i), rx.getsockname())
        # Waits for the first only (the socket's timeout bounds it), then takes the rest.
        assert len(reader.recv(rx, mmsg.MSG_WAITFORONE, max_count=2)) == 2
        assert len(reader.recv(rx, mmsg.MSG_WAITFORONE)) == 1


def test_the_fallback_gives_what_the_native_call_gives(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without recvmmsg in the C library the reader loops over recvmsg, says so once,
    and returns the same (a socket with a Python timeout always takes that path)."""
    monkeypatch.setattr(mmsg, "_fallback_logged", set())
    monkeypatch.setattr(mmsg, "_RECVMMSG", None)
    with caplog.at_level(logging.WARNING, logger="vnfha_lab.mmsg"):
        readers = [mmsg.BatchReader(8, BUFSIZE, rxclock.ANCBUF) for _ in range(2)]
    assert not any(r.native for r in readers)
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    with _rx() as rx, _tx() as tx:
        for i in range(3):
            tx.sendto(_payload(i), rx.getsockname())
        peeked = rx.recvmsg(BUFSIZE, rxclock.ANCBUF, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        got = readers[0].recv(rx, socket.MSG_DONTWAIT)
        assert got[0] == peeked and [d for d, _, _, _ in got] == [_payload(i) for i in range(3)]
        rx.settimeout(0.02)  # Python's timeout: each recvmsg waits as it says
        with pytest.raises(TimeoutError):
            readers[1].recv(rx)


class _Recording(socket.socket):
    """A socket that notes the flags of every recvmsg (the fallback's reads)."""

    flags: list[int]

    def recvmsg(self, *args: int) -> tuple:  # type: ignore[override]
        self.flags.append(args[2] if len(args) > 2 else 0)
        return super().recvmsg(*args)


def test_the_fallback_waits_for_the_first_datagram_only() -> None:
    """MSG_WAITFORONE: a blocking read for the first, MSG_DONTWAIT for the rest (so a
    batch never waits for traffic that is not there), as recvmmsg does."""
    reader = mmsg.BatchReader(8, BUFSIZE, rxclock.ANCBUF, native=False)
    with _Recording(socket.AF_INET, socket.SOCK_DGRAM) as rx, _tx() as tx:
        rx.flags = []
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, RCVTIMEO)
        rx.bind(("127.0.0.1", 0))
        for i in range(3):
            tx.sendto(_payload(i), rx.getsockname())
        got = reader.recv(rx, mmsg.MSG_WAITFORONE)
        assert [d for d, _, _, _ in got] == [_payload(i) for i in range(3)]
        assert rx.flags == [0] + [socket.MSG_DONTWAIT] * 3  # the 4th found it empty
        tx.sendto(_payload(3), rx.getsockname())  # nothing kept to raise: read on
        assert [d for d, _, _, _ in reader.recv(rx, socket.MSG_DONTWAIT)] == [_payload(3)]


def test_send_batch_sends_in_order_and_reports_each_failure() -> None:
    """A batch to several destinations arrives in order from the sender's address; a
    datagram too large for UDP fails alone (the kernel's error, as sendto raises it)
    and the ones after it are still sent, as is one addressed by name (sendto)."""
    sender = mmsg.BatchSender(16, 70000)
    if not sender.native:
        pytest.skip("no sendmmsg in this C library")
    with _rx() as a, _rx() as b, _tx() as tx:
        dests = [a.getsockname(), b.getsockname()]
        msgs = [(_payload(i), dests[i % 2]) for i in range(40)]
        msgs[5] = (bytes(66000), dests[1])  # over the 65,507 bytes a UDP datagram holds
        msgs[9] = (_payload(9), ("localhost", dests[1][1]))  # a name: sendto resolves it
        failed = sender.send(tx, msgs, socket.MSG_DONTWAIT)
        assert [i for i, _ in failed] == [5]
        assert failed[0][1].errno == 90  # EMSGSIZE
        reader = mmsg.BatchReader(64, BUFSIZE, rxclock.ANCBUF)
        for rx, parity in ((a, 0), (b, 1)):
            got = reader.recv(rx, socket.MSG_DONTWAIT)
            assert [d for d, _, _, _ in got] == [
                _payload(i) for i in range(40) if i % 2 == parity and i != 5]
            assert {src for _, _, _, src in got} == {tx.getsockname()}


def test_send_batch_over_ipv6_and_the_fallback() -> None:
    for native in (True, False):
        sender = mmsg.BatchSender(4, 100, native=native)
        with _rx("::1") as rx, _tx("::1") as tx:
            port = rx.getsockname()[1]
            msgs = [(_payload(i), ("::1", port) if i % 2 else ("::1", port, 0, 0))
                    for i in range(10)]
            assert sender.send(tx, msgs) == []
            got = [rx.recvmsg(BUFSIZE, 0, socket.MSG_DONTWAIT)[0] for _ in range(10)]
        assert got == [_payload(i) for i in range(10)]


def test_module_functions_keep_one_reader_per_thread_and_size() -> None:
    with _rx() as rx, _tx() as tx:
        for i in range(3):
            tx.sendto(_payload(i), rx.getsockname())
        got = mmsg.recv_batch(rx, 2, BUFSIZE, rxclock.ANCBUF, socket.MSG_DONTWAIT)
        got += mmsg.recv_batch(rx, 2, BUFSIZE, rxclock.ANCBUF, socket.MSG_DONTWAIT)
        assert [d for d, _, _, _ in got] == [_payload(i) for i in range(3)]
        assert mmsg.send_batch(tx, [(b"x", rx.getsockname())] * 3) == []
        assert len(mmsg.recv_batch(rx, 8, BUFSIZE, 0, socket.MSG_DONTWAIT)) == 3
