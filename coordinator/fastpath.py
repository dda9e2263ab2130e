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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from vnfha.coordinator import fastwire as W
from vnfha.coordinator import rxclock
from vnfha.v1 import agent_pb2

log = logging.getLogger("vnfha.fastpath")

#: (request, arrival time) -> the answer, exactly as the gRPC keepalive would give it
Handler = Callable[[agent_pb2.KeepaliveRequest, float], agent_pb2.KeepaliveResponse]

BATCH = 256  # datagrams read per wake-up before answering other work
#: while shedding, one answered datagram in this many is timed (thread CPU): what an
#: answer costs under overload, the figure capacity is planned with (metrics)
ANSWER_CPU_SAMPLE = 16
DROP_LOG_EVERY_S = 10.0  # one summary line per reason at most this often
RCVBUF = 4 * 1024 * 1024
#: where a datagram's key id is (fastwire's header: magic, version, kind, key id, ...)
KEY_ID = slice(4, 4 + W.KEY_ID_BYTES)
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
    #: the arrival of the datagram the intake last answered while shedding (this thread
    #: only): a rationed node's next one is answered if it arrived a ration after it
    answered_at: float = -math.inf
    #: the key id this session replaced, still accepted until this key is first used
    retires: bytes | None = None


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
                 stale_after: float | None = None,
                 ration: float | None = None,
                 actives_within: float | None = None,
                 actives_stale_after: float | None = None) -> None:
        self._serve = handler
        # `_one` answers through `_answer`, which adds what `_handle_batch` decided about
        # rationing for the datagram at hand (this thread only; 0: not rationed).
        self._handler: Handler = self._answer
        self._every_ms = 0
        # A datagram that waited longer than this in the socket is dropped unread (not
        # decrypted, not answered): see `_handle_batch`. None: every one is handled.
        self._stale_after = stale_after
        # While shedding, a node holding no active role is answered at most this often
        # (by arrival); the datagrams between are dropped unread (overload.ration).
        # None: no rationing.
        self._ration = ration
        self._ration_ms = 0 if ration is None else math.ceil(ration * 1000)
        # ...and so is a node holding an active role once its datagram waited longer than
        # this in the socket: the intake is behind even for actives. None: actives are
        # never rationed.
        self._actives_within = actives_within
        # ...and dropped unread, as stale, once it waited longer than this (a TTL: no
        # answer to it could extend the agent's lease, whose cover from the round's
        # sending is shorter than a TTL). None: never.
        self._actives_stale_after = actives_stale_after
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
        self.dropped: dict[str, int] = dict.fromkeys(
            (*W.REASONS, "stale", "rationed", "overflow"), 0)
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._handled_shedding = 0  # datagrams let through while shedding
        #: (thread CPU seconds, answers) of the sampled answers while shedding; one tuple
        #: replaced whole, so a metrics scrape never sees half an update
        self._answer_cpu: tuple[float, int] = (0.0, 0)
        #: now -> this coordinator is overloaded (overload.LoopLag.overloaded): stale
        #: and rationed datagrams are dropped only then; None: whenever `stale_after` or
        #: `ration` is set
        self.overloaded: Callable[[float], bool] | None = None
        #: node -> it holds an active role: its stale and rationed datagrams are still
        #: handled (actives' acknowledgements first, as on the gRPC stream), rationed only
        #: while `lagging` or when late (`actives_within`); None: none are
        self.holds_active: Callable[[str], bool] | None = None
        #: now -> this coordinator is behind right now (overload.LoopLag.lagging), not
        #: only within the hold after it: actives are rationed too then; None: never
        self.lagging: Callable[[float], bool] | None = None
        #: (read at, longest wait of a batch in the socket): the overload meter's input
        #: (overload.LoopLag.queued), called once per batch from this thread
        self.on_queued: Callable[[float, float], None] | None = None

    # -- sessions (any thread) ---------------------------------------------------------

    def open_session(self, node: str) -> Issued:
        """A new key for `node`, replacing its previous one (rotation). The caller has
        authorized the node; the key is returned once and never logged.

        The replaced key is still accepted until a datagram authenticated under the new
        one arrives (`_one`): the node's rounds already sent, or waiting in our socket,
        under the old key are answered, not dropped as unknown. An agent asks for a new
        key when its answers stop; under overload they stop because they are late, and
        dropping the old key then threw away every round it had queued here, the
        active's too, so its answers stopped for longer (issue 14: the overload test's
        real agent re-keyed every few seconds and lost its lease). At most two keys per
        node: a key replaced before it was ever used takes its own predecessor with it.
        """
        key = os.urandom(W.KEY_BYTES)
        with self._lock:
            while True:
                key_id = os.urandom(W.KEY_ID_BYTES)
                if key_id not in self._sessions:
                    break
            old = self._by_node.pop(node, None)
            replaced = self._sessions.get(old) if old is not None else None
            if replaced is not None:
                self._end_retired(replaced)
            self._sessions[key_id] = Session(node=node, key=W.SessionKey(key_id, key),
                                             retires=old if replaced is not None else None)
            self._by_node[node] = key_id
        log.info("fast path session opened", extra={"node": node, "key_id": key_id.hex(),
                                                     "replaced": old is not None})
        return Issued(key_id=key_id, key=key)

    def forget(self, node: str) -> bool:
        """Drop every key of `node` (its own, and a replaced one still accepted): its
        datagrams count as `unknown_key` until it opens a new one, as after a restart of
        this coordinator. False if it had none."""
        with self._lock:
            key_id = self._by_node.pop(node, None)
            if key_id is None:
                return False
            session = self._sessions.pop(key_id, None)
            if session is not None:
                self._end_retired(session)
        self._shed_at.pop(node, None)
        return True

    def _end_retired(self, session: Session) -> None:
        """Under the lock: the key `session` replaced is no longer accepted."""
        if session.retires is not None:
            self._sessions.pop(session.retires, None)
            session.retires = None

    def forget_absent(self, known: Collection[str]) -> list[str]:
        """Drop the keys of nodes not in `known` (the registered ones): a removed node's
        key must not keep authenticating its datagrams, and the table must not grow
        with VM churn. Returns the nodes forgotten."""
        with self._lock:
            gone = [n for n in self._by_node if n not in known]
        return [n for n in gone if self.forget(n)]

    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def answer_cpu(self) -> float | None:
        """The mean intake-thread CPU of one answered datagram while overloaded (sampled
        1 in ANSWER_CPU_SAMPLE), or None before any: with `cpu_seconds`, how many
        answers the CPU this coordinator gets could buy."""
        cpu, n = self._answer_cpu
        return cpu / n if n else None

    def cpu_seconds(self) -> float | None:
        """CPU time the intake thread used so far (user + system, Linux /proc), read by
        the metrics scrape, not per datagram; None where it cannot be read."""
        tid = self._thread.native_id
        if tid is None:
            return None
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

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
        """Date and handle datagrams as `socket.recvmsg` returned them. While overloaded,
        shed before any decryption: drop those of a node answered less than `ration`
        ago (`rationed`) and those that waited more than `stale_after` in the socket
        (`stale`); a node holding an active role only while `lagging`, or when even its
        datagrams wait longer than `actives_within` (`_triage`)."""
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
        # How long the batch waited: its first datagram is the oldest (one socket's
        # queue is in arrival order), so only that one is dated for the meter.
        oldest = read_at
        if arrivals is not None and batch:
            oldest = arrivals.arrival(rxclock.kernel_stamp(batch[0][1]), read_at)
        # Shed only while overloaded: after a passing stall what waited is handled (dated
        # by the kernel, as always), so no node's record ages by it.
        shedding = ((self._stale_after is not None or self._ration is not None)
                    and (self.overloaded is None or self.overloaded(read_at)))
        if not shedding:
            for datagram, anc, _flags, source in batch:
                arrived = (read_at if arrivals is None
                           else arrivals.arrival(rxclock.kernel_stamp(anc), read_at))
                self._one(datagram, source, arrived)
        else:
            self._shed_batch(batch, read_at)
        if self.on_queued is not None:  # how far behind this thread reads (overload.py)
            self.on_queued(read_at, read_at - oldest)

    def _shed_batch(self, batch: list[tuple[bytes, list, int, tuple]],
                    read_at: float) -> None:
        """`_handle_batch` while overloaded. A rationed node's datagram costs the read,
        a slice and a dict lookup (and, unless `lagging`, the memoized role check):
        3-4 us here against 27 us and more to handle one; its kernel stamp (3.6 us) is
        converted only when the read itself is a ration after the node's last answer.
        Answered, a stale datagram would give the agent less than what is left of its
        lease while the node's newer rounds wait behind it; a rationed node was
        answered moments ago. The backlog drains and what is answered is fresh (issue
        14)."""
        arrivals = self.arrivals
        limit = self._stale_after if arrivals is not None else None
        ration = self._ration
        everyone = (ration is not None and self.lagging is not None
                    and self.lagging(read_at))
        sessions = self._sessions  # plain reads: one dict lookup is atomic (see `_one`)
        holds_active = self.holds_active
        rationed = stale = 0
        shed_from: tuple = ()  # the last shed datagram's source (the drop log line)
        for datagram, anc, _flags, source in batch:
            # The key id, unchecked: a datagram dropped here is not looked at further,
            # and one that is not dropped goes through every check in `_one`.
            session = sessions.get(datagram[KEY_ID])
            # The ration counts between arrivals, not reads: an agent sends a rationed
            # node's rounds `every` apart (agents/fastpath.py), and a batch read after
            # a stall would otherwise put the next one "too soon" after it and drop it.
            # `answered_at` is an arrival and no datagram is read before it arrived, so
            # one read within the ration arrived within it too: dropped without its
            # stamp; only the others have theirs converted and checked.
            last = (session.answered_at if session is not None and ration is not None
                    and (everyone or holds_active is None
                         or not holds_active(session.node)) else None)
            if last is not None and read_at - last < ration:
                rationed += 1
                shed_from = source
                continue
            arrived = (read_at if arrivals is None
                       else arrivals.arrival(rxclock.kernel_stamp(anc), read_at))
            if last is not None and arrived - last < ration:
                rationed += 1
                shed_from = source
                continue
            reason, self._every_ms = self._triage(session, read_at - arrived, limit,
                                                  everyone, arrived)
            if reason is not None:
                if reason == "stale":
                    stale += 1
                    if session is not None:
                        self._shed(session, arrived)
                else:
                    rationed += 1
                shed_from = source
                continue
            answered = -1 if session is None else session.acks_sent
            self._handled_shedding += 1
            timed = not self._handled_shedding % ANSWER_CPU_SAMPLE
            cpu0 = time.thread_time() if timed else 0.0
            self._one(datagram, source, arrived)
            self._every_ms = 0
            if session is not None and session.acks_sent != answered:
                # Authenticated and answered: only that starts the node's ration.
                session.answered_at = arrived
                if timed:
                    self._answer_cpu = (self._answer_cpu[0] + time.thread_time() - cpu0,
                                        self._answer_cpu[1] + 1)
        if rationed:
            self._drop("rationed", shed_from, rationed)
        if stale:
            self._drop("stale", shed_from, stale)

    def _triage(self, session: Session | None, waited: float, limit: float | None,
                everyone: bool, arrived: float) -> tuple[str | None, int]:
        """While shedding, for a datagram the quick ration check let through: why to drop
        it unread ("stale", "rationed"), or None to handle it; and the answer's
        `answer_every_ms` (the node is rationed: its agent must not take the gaps for
        silence, agents/fastpath.py). Nothing here is authenticated, so nothing here is
        recorded (a rationed node's age runs from its last *handled* datagram,
        docs/design.md "Overload"); what the header cannot place goes to `_one`."""
        if session is None:
            return None, 0
        if self.holds_active is None or not self.holds_active(session.node):
            if limit is not None and waited > limit:
                return "stale", 0
            return None, self._ration_ms
        # Actives first (a lapse there costs a failover): dropped as stale only once no
        # answer could help their lease (`actives_stale_after`: under the overload test
        # the intakes answered the pair's active 1.1-2.2 s late, each useless answer at
        # the cost of a fresh one, while its lease ran out), and
        # answered every time unless this coordinator is behind right now (`everyone`)
        # or their datagram waited longer than `actives_within`: when actives alone
        # outrun the budget, answering every one of theirs starves the rest of the
        # coordinator (Raft's heartbeats among it) and lets the backlog, and every
        # answer's delay, grow until all their leases lapse together, while one answer
        # per ration keeps each of them.
        if (limit is not None and self._actives_stale_after is not None
                and waited > self._actives_stale_after):
            return "stale", 0
        ration = self._ration
        late = ration is not None and (everyone or (
            self._actives_within is not None and waited > self._actives_within))
        if late and ration is not None and arrived - session.answered_at < ration:
            return "rationed", 0
        return None, self._ration_ms if late else 0

    def _answer(self, req: agent_pb2.KeepaliveRequest,
                arrived: float) -> agent_pb2.KeepaliveResponse:
        """The handler's answer, saying how often this node is answered while rationed."""
        resp = self._serve(req, arrived)
        if self._every_ms:
            resp.answer_every_ms = self._every_ms
        return resp

    def shed_marks(self) -> tuple[float, Mapping[str, float]]:
        """(`shed_through`, per node the latest arrival of a datagram under its key that
        was dropped as stale) for leases.LeaseTable.read_through. Any thread: the map is
        only read with single lookups, which the GIL keeps whole."""
        return self.shed_through, self._shed_at

    def _shed(self, session: Session, arrived: float) -> None:
        """Note a datagram dropped as stale against the node its key id names. Nothing
        was authenticated, so a forged one can only make that node's silence count as
        not exactly known (aged as a gRPC one: a later expiry), nothing else."""
        if arrived > self._shed_at.get(session.node, -math.inf):
            self._shed_at[session.node] = arrived

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
        if session.retires is not None:  # the new key is in use: the old one ends here
            with self._lock:
                self._end_retired(session)
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

    def _drop(self, reason: str, addr: tuple, count: int = 1) -> None:
        """Count every drop; log one line per reason per DROP_LOG_EVERY_S with how many
        were dropped since, and the last source address. Never the bytes."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        self._unlogged[reason] = self._unlogged.get(reason, 0) + count
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
