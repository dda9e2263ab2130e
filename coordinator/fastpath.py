"""The coordinator's keepalive fast path: sessions, and the UDP intake thread.

Why: on the gRPC stream ~70 % of a keepalive's CPU is gRPC/asyncio machinery, and a
lagging event loop stamps arrivals late (issue 14). Here one thread reads datagrams
in batches straight from a UDP socket, dates each by the kernel's receive timestamp
(coordinator/rxclock.py: a backlog waiting in the socket while this process was busy
does not make live nodes look silent), and answers with the same handler the gRPC
stream uses, so a datagram can change exactly what an authenticated gRPC keepalive of
the same node can, and nothing else.

Sessions are issued by AgentService.OpenFastPath over mTLS (authorized as the node
itself): one per node, a new random key per call, kept in memory only, so a restart
invalidates every key and agents open again. The wire format is coordinator/fastwire.py.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from vnfha.coordinator import fastwire as W
from vnfha.coordinator import rxclock
from vnfha.v1 import agent_pb2

log = logging.getLogger("vnfha.fastpath")

#: (request, arrival time) -> the answer, exactly as the gRPC keepalive would give it
Handler = Callable[[agent_pb2.KeepaliveRequest, float], agent_pb2.KeepaliveResponse]

BATCH = 256  # datagrams read per wake-up before answering other work
DROP_LOG_EVERY_S = 10.0  # one summary line per reason at most this often
RCVBUF = 4 * 1024 * 1024
#: An idle intake wakes this often to move its read watermark (`read_through`) on: a
#: node's fast-path silence is counted only up to it (leases.py), so this bounds how
#: much later than its TTL a node is seen silent when no other datagram arrives.
IDLE_WAKE = 0.005
#: Linux SO_RXQ_OVFL (Python does not name it): each datagram then carries the count
#: of datagrams the kernel dropped on this socket so far (receive buffer full).
SO_RXQ_OVFL = 40


@dataclass
class Session:
    node: str
    key: W.SessionKey
    guard: W.ReplayGuard = field(default_factory=W.ReplayGuard)
    acks_sent: int = 0  # the ack direction's counter (this thread only)


@dataclass(frozen=True)
class Issued:
    key_id: bytes
    key: bytes = field(repr=False)


class FastPathIntake:
    """One UDP socket and the thread that serves it."""

    def __init__(self, host: str, port: int, handler: Handler,
                 clock: Callable[[], float] = time.monotonic,
                 rcvbuf: int = RCVBUF,
                 realtime: Callable[[], float] = time.time,
                 kernel_stamps: bool = True,
                 stale_after: float | None = None) -> None:
        self._handler = handler
        # A datagram that waited longer than this in the socket is dropped unread (not
        # decrypted, not answered): see `_handle_batch`. None: every one is handled.
        self._stale_after = stale_after
        self._clock = clock
        self._realtime = realtime
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._sock.bind((host.strip("[]"), port))
            # The blocking read gives up after IDLE_WAKE (EAGAIN) at the kernel: no extra
            # syscall per read, and the drain's MSG_DONTWAIT reads are unaffected.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                  struct.pack("ll", 0, int(IDLE_WAKE * 1e6)))
        except OSError:
            self._sock.close()
            raise
        #: The read watermark (this clock): every datagram that arrived before it has
        #: been read and handled (or dropped as stale). Written by the intake thread only
        #: after a read found the socket empty, and only after the batch before it was
        #: handled; -inf until then. The lease table counts fast-path silences up to
        #: here, not up to now (leases.LeaseTable.read_through): a backlog still in the
        #: socket then ages nobody, and a frozen intake vouches for no silence.
        self.read_through: float = -math.inf
        #: No datagram the kernel dropped (receive buffer full: SO_RXQ_OVFL) arrived after
        #: this (-inf: none ever was). Such a datagram was never read, but its sender was
        #: not silent, and whose it was is unknown: the lease table does not call any
        #: silence exact across it (`shed_marks`).
        self.shed_through: float = -math.inf
        # Per node, the latest arrival of a datagram under its key dropped as stale (read,
        # not handled: `_handle_batch`); written by the intake thread only.
        self._shed_at: dict[str, float] = {}
        self.port: int = self._sock.getsockname()[1]
        #: kernel receive stamps -> monotonic arrivals; None: stamped at the read
        self.arrivals: rxclock.ArrivalClock | None = None
        if kernel_stamps:
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
                self.arrivals = rxclock.ArrivalClock()
            except OSError as e:  # not Linux: read times, as before
                log.warning("no kernel receive timestamps on the fast path socket; "
                            "arrivals are stamped when read", extra={"error": str(e)})
        try:  # a datagram the kernel dropped arrived all the same: see `shed_through`
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError as e:
            log.warning("no kernel drop counts on the fast path socket; a full receive "
                        "buffer goes unnoticed", extra={"error": str(e)})
        self._overflows = 0  # the kernel's drop count, as last seen
        self._lock = threading.Lock()  # sessions: written by OpenFastPath, read here
        self._sessions: dict[bytes, Session] = {}
        self._by_node: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastpath-intake", daemon=True)
        #: counters for metrics: datagrams answered, and drops by reason (fastwire.REASONS)
        self.answered = 0
        self.dropped: dict[str, int] = dict.fromkeys((*W.REASONS, "stale", "overflow"), 0)
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        #: now -> this coordinator is overloaded (overload.LoopLag.overloaded): stale
        #: datagrams are dropped only then; None: whenever `stale_after` is set
        self.overloaded: Callable[[float], bool] | None = None
        #: node -> it holds an active role: its stale datagrams are still handled (actives'
        #: acknowledgements first, as on the gRPC stream); None: none are
        self.holds_active: Callable[[str], bool] | None = None
        #: (read at, longest wait of a batch in the socket): the overload meter's input
        #: (overload.LoopLag.queued), called once per batch from this thread
        self.on_queued: Callable[[float, float], None] | None = None

    # -- sessions (any thread) ---------------------------------------------------------

    def open_session(self, node: str) -> Issued:
        """A new key for `node`, replacing its previous one (rotation). The caller has
        authorized the node; the key is returned once and never logged."""
        key = os.urandom(W.KEY_BYTES)
        with self._lock:
            while True:
                key_id = os.urandom(W.KEY_ID_BYTES)
                if key_id not in self._sessions:
                    break
            old = self._by_node.pop(node, None)
            if old is not None:
                self._sessions.pop(old, None)
            self._sessions[key_id] = Session(node=node, key=W.SessionKey(key_id, key))
            self._by_node[node] = key_id
        log.info("fast path session opened", extra={"node": node, "key_id": key_id.hex(),
                                                     "replaced": old is not None})
        return Issued(key_id=key_id, key=key)

    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._wake()
            self._thread.join(timeout=2)
        self._sock.close()

    def _wake(self) -> None:
        """Unblock the reader with an empty datagram to our own port."""
        host = self._sock.getsockname()[0]
        if host in ("0.0.0.0", "::"):
            host = "::1" if self._sock.family == socket.AF_INET6 else "127.0.0.1"
        try:
            with socket.socket(self._sock.family, socket.SOCK_DGRAM) as s:
                s.sendto(b"", (host, self.port))
        except OSError as e:
            log.debug("could not wake the fast path reader", extra={"error": str(e)})

    # -- the intake thread ---------------------------------------------------------------

    def _run(self) -> None:
        """Block in one read (the GIL released while waiting), then drain what else is
        queued, up to BATCH, without blocking, and handle the batch. Each datagram is
        dated by its kernel receive stamp (rxclock), never later than its read."""
        size = W.MAX_DATAGRAM + 1  # one byte more: an oversize read shows
        sock = self._sock
        clock = self._clock
        while not self._stop.is_set():
            mark = clock()  # watermark: taken before a read that may find nothing
            try:
                batch = [sock.recvmsg(size, rxclock.ANCBUF)]
            except BlockingIOError:  # idle for IDLE_WAKE: all before `mark` is handled
                self.read_through = mark
                continue
            except OSError as e:  # e.g. an ICMP error queued on the socket
                log.debug("fast path read failed", extra={"error": str(e)})
                continue
            drained: float | None = None
            while len(batch) < BATCH:
                mark = clock()
                try:
                    batch.append(sock.recvmsg(size, rxclock.ANCBUF, socket.MSG_DONTWAIT))
                except BlockingIOError:  # drained: nothing that arrived before `mark` is left
                    drained = mark
                    break
                except OSError:
                    break
            if self._stop.is_set():
                break
            self._handle_batch(batch)
            over = _overflows(batch[-1][1])
            if over is not None and over != self._overflows:  # the buffer was full
                self.dropped["overflow"] += (over - self._overflows) % (1 << 32)
                self._overflows = over
                self.shed_through = clock()  # they arrived before now, at the latest
            if drained is not None:  # a batch cut at BATCH may leave older ones unread
                self.read_through = drained

    def _handle_batch(self, batch: list[tuple[bytes, list, int, tuple]]) -> None:
        """Date and handle datagrams as `socket.recvmsg` returned them; drop those that
        waited more than `stale_after` in the socket unread (counted as `stale`)."""
        arrivals = self.arrivals
        # Realtime between two monotonic readings (rxclock: a delay between the reads
        # only dates arrivals later).
        before = self._clock()
        real = self._realtime()
        read_at = self._clock()
        if arrivals is not None and arrivals.sample(before, real, read_at):
            now = read_at
            if now - self._logged.get("clock_step", -1e9) >= DROP_LOG_EVERY_S:
                self._logged["clock_step"] = now
                log.warning("the realtime clock was stepped: fast-path datagrams queued "
                            "before now count as arrived now",
                            extra={"steps": arrivals.steps})
        oldest = read_at
        # Shed stale datagrams only while overloaded: after a passing stall they are
        # handled (dated by the kernel, as always), so no node's record ages by it.
        limit = (self._stale_after if self.overloaded is None or self.overloaded(read_at)
                 else None)
        for datagram, anc, _flags, source in batch:
            arrived = read_at
            if arrivals is not None:
                arrived = arrivals.arrival(rxclock.kernel_stamp(anc), read_at)
                oldest = min(oldest, arrived)
                if (limit is not None and read_at - arrived > limit
                        and not self._urgent(datagram)):
                    # Overloaded: answered now it would give the agent less than what is
                    # left of its lease, and the node's newer rounds wait behind it.
                    # Dropping costs a read; handling it, ten times that. The backlog
                    # drains and what is answered is fresh (issue 14).
                    self._shed(datagram, arrived)
                    self._drop("stale", source)
                    continue
            self._one(datagram, source, arrived)
        if self.on_queued is not None:  # how far behind this thread reads (overload.py)
            self.on_queued(read_at, read_at - oldest)

    def shed_marks(self) -> tuple[float, Mapping[str, float]]:
        """(`shed_through`, per node the latest arrival of a datagram under its key that
        was dropped as stale) for leases.LeaseTable.read_through. Any thread: the map is
        only read with single lookups, which the GIL keeps whole."""
        return self.shed_through, self._shed_at

    def _shed(self, datagram: bytes, arrived: float) -> None:
        """Note a datagram dropped as stale against the node its key belongs to. Only the
        clear header is read (as `_urgent` does), so a forged one can only make that
        node's silence count as before the watermark (later expiry), nothing else."""
        try:
            header = W.parse_header(datagram, W.KIND_KEEPALIVE)
        except W.Rejected:
            return
        session = self._sessions.get(header.key_id)
        if session is not None and arrived > self._shed_at.get(session.node, -math.inf):
            self._shed_at[session.node] = arrived

    def _urgent(self, datagram: bytes) -> bool:
        """Whether a stale datagram is handled anyway: its key's node holds an active
        role (a lapse there costs a failover). Only the clear header is read."""
        if self.holds_active is None:
            return False
        try:
            header = W.parse_header(datagram, W.KIND_KEEPALIVE)
        except W.Rejected:
            return False
        session = self._sessions.get(header.key_id)
        return session is not None and self.holds_active(session.node)

    def _one(self, datagram: bytes, addr: tuple, arrived: float) -> None:
        try:
            header = W.parse_header(datagram, W.KIND_KEEPALIVE)
            # A plain read: one dict lookup is atomic, and open_session replaces entries
            # whole under the lock.
            session = self._sessions.get(header.key_id)
            if session is None:
                raise W.Rejected("unknown_key")
            payload = W.open_checked(session.key, session.guard, header, datagram)
            req = agent_pb2.KeepaliveRequest()
            try:
                req.ParseFromString(payload)
            except DecodeError:
                raise W.Rejected("invalid") from None
            if req.node != session.node:
                # The key is the node's identity here: it keeps alive only its node.
                raise W.Rejected("wrong_node")
        except W.Rejected as r:
            self._drop(r.reason, addr)
            return
        resp = self._handler(req, arrived)
        session.acks_sent += 1
        try:
            out = session.key.seal(W.KIND_ACK, session.acks_sent, resp.SerializeToString())
        except ValueError:  # an answer too big for a datagram (a very long message)
            resp.message = ""
            out = session.key.seal(W.KIND_ACK, session.acks_sent, resp.SerializeToString())
        try:
            self._sock.sendto(out, socket.MSG_DONTWAIT, addr)  # a full buffer drops it
            self.answered += 1
        except OSError as e:
            log.debug("fast path answer not sent", extra={"error": str(e)})

    def _drop(self, reason: str, addr: tuple) -> None:
        """Count every drop; log one line per reason per DROP_LOG_EVERY_S with how many
        were dropped since, and the last source address. Never the bytes."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        now = self._clock()
        if now - self._logged.get(reason, -1e9) < DROP_LOG_EVERY_S:
            return
        self._logged[reason] = now
        log.warning("fast path datagrams dropped", extra={
            "reason": reason, "count": self._unlogged.pop(reason),
            "source": f"{addr[0]}:{addr[1]}"})


def _overflows(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's count of datagrams dropped on the socket (SO_RXQ_OVFL), from one
    datagram's control messages; None if it sent none (no drop yet, or not Linux)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
            return int.from_bytes(data[:4], sys.byteorder)
    return None
