"""The agent's side of the keepalive fast path: when to use it, and the UDP link.

`FastRoutes` is the pure decision, per coordinator and per round: send the keepalive as
a datagram, over the gRPC stream, or both. The rule keeps the lease whole while the fast
path is in doubt, without doubling the load when answers are merely late: a round also
goes over gRPC (same sequence number: the lease counts either answer, from the time
noted before sending) once no fast answer has *arrived* from that coordinator for
`copy_after(...)` seconds (see there for why that long and no longer). Late answers
still arriving show the path works, so an overloaded coordinator is not sent the
costlier copies that would make it slower still, nor is one whose answers were already
slow (`slow_answers`) until a whole lease has passed in silence. An overloaded
coordinator that rations its answers says how often it answers (`answer_every_ms`):
every silence above is widened by that, so its planned gaps cost no copies, misses or
new keys, while one that falls silent beyond it is copied as before; and it is sent a
datagram only as often as it answers (what would come between is dropped unread: its
intake's cost is in the reading). Rounds that go over gRPC alone (no key yet, the fast
path disabled, or fallen back) are paced the same way to a coordinator whose stream
answers say it rations us: its stream reads, then drops, the rest. Copies go one at a
time per coordinator: the next once the last is answered, or after a lease cover and
then twice as long each time (`FastRoutes._copy_may_go`), so a coordinator that answers
on neither route is not sent ever more of the costlier copies. After `FALLBACK_MISSES`
rounds in a row without a fast answer (a firewall drops UDP, the coordinator forgot our
key and re-opening did not help) *and* `FALLBACK_SILENCE` seconds without any fast
answer, the coordinator is served over gRPC only, said once in the log, and the fast
path is probed again every `RETRY_AFTER` seconds. Late answers from a slow coordinator
reset the count, so overload does not push every agent onto the costlier stream at once,
and one whose last answer came late or said it rations is never fallen back from (its
silences are copied instead). The fallback is for UDP that is blocked while gRPC gets
through: a coordinator that answers on neither path (down, or cut off) keeps getting a
datagram every round, because when it returns that datagram is answered at once, while a
TCP connection that was dropped into for tens of seconds waits out its retransmission
back-off (seconds): after a long coordinator outage the lease, and a failsafe active's
role, come back on the fast path.

`FastPathLink` is the I/O: one UDP socket per address family, one receive thread,
one session (key, counters) per coordinator; keys come from
AgentService.OpenFastPath over the mTLS channel (agents/session.py opens them).
"""

from __future__ import annotations

import logging
import math
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from vnfha.coordinator import fastwire as W
from vnfha.coordinator.confparse import parse_address
from vnfha.v1 import agent_pb2

log = logging.getLogger("vnfha.agent.fastpath")

#: consecutive unanswered fast rounds before a coordinator is served over gRPC only...
FALLBACK_MISSES = 4
#: ...and as many seconds without any fast answer from it: a coordinator that is only
#: slow (overloaded, paused) still answers late, and sending all its agents to the
#: costlier gRPC stream would make it slower still
FALLBACK_SILENCE = 1.0
#: after this many, ask the coordinator for a new key (a restart forgot the old one)
REOPEN_AFTER_MISSES = 2
#: seconds in gRPC-only mode before the fast path is probed again
RETRY_AFTER = 30.0
#: an unanswered gRPC copy is waited for one lease cover, then each next one twice as
#: long as the last, up to this many covers (`FastRoutes`: copies back off)
COPY_BACKOFF_COVERS = 16
POLL_S = 0.2
DROP_LOG_EVERY_S = 30.0
#: the default timing (agents/config.py): what `FastRoutes` assumes when not told
DEFAULT_TTL = 0.25
DEFAULT_INTERVAL = 0.06


def copy_after(ttl: float = DEFAULT_TTL, interval: float = DEFAULT_INTERVAL,
               drift: float = 0.01, margin: float = 0.05) -> float:
    """Seconds without any fast answer from a coordinator after which each round to it
    also goes over gRPC.

    Why this long: one coordinator's acknowledgement of a round sent at `s` counts in
    the agent's lease until ``s + cover``, cover = ttl * (1 - drift) - margin
    (agents/lease.py), and the answer arrived after `s`. A route silent for
    ``cover - 2 * interval`` has at most two intervals of that left, so the first round
    after it (at most one interval later) still has one interval, less the answer's
    latency, to have its gRPC copy answered: the last round that can still save the
    lease is doubled, and every earlier one goes as a datagram alone.

    Why no shorter than 1.5 intervals: a healthy route hears an answer every interval,
    and a route that lost one datagram hears none for two; half-way tells them apart
    despite jitter. When the lease covers fewer than 3.5 rounds (the default timing:
    cover 0.1975 s, 3.3 rounds) this floor is what applies, and it copies the round
    after a lost datagram if answers come within half an interval, which the lease
    needs: the round after that would be too late to save it.

    Why answers *arriving*, not rounds answered by the next one (the rule before): an
    overloaded coordinator answers late but keeps answering, its routes are never
    silent that long, and it is not sent copies on the path that costs it 5-10x more
    exactly when it is busy (issue 14: 417,034 gRPC rounds against 38,145 datagrams).
    """
    cover = ttl * (1 - drift) - margin
    return max(cover - 2 * interval, 1.5 * interval)


def slow_answers(interval: float = DEFAULT_INTERVAL) -> float:
    """An answer later than this after its round marks the coordinator as slow, and a
    slow coordinator's silence is not copied over gRPC until a whole lease has gone
    (`FastRoutes`). Why: the copy saves the lease only if the same coordinator answers
    it within what is left of the lease (at the default timing 77.5 ms at the round
    after a lost datagram); one whose datagram answers already take more than half an
    interval is busy, answers gRPC (5-10x the CPU) later still, and copies from all its
    agents at once are what tipped it over (issue 14)."""
    return interval / 2


def lease_cover(ttl: float = DEFAULT_TTL, drift: float = 0.01, margin: float = 0.05) -> float:
    """How long one acknowledged round counts in the agent's lease (agents/lease.py)."""
    return ttl * (1 - drift) - margin


def routes_for(coordinators: int, ttl: float, interval: float, drift: float = 0.01,
               margin: float = 0.05) -> FastRoutes:
    """The routes of an agent with this lease timing (agents/session.py)."""
    return FastRoutes(coordinators, copy_silence=copy_after(ttl, interval, drift, margin),
                      slow_after=slow_answers(interval),
                      cover=lease_cover(ttl, drift, margin), interval=interval)


@dataclass(frozen=True)
class Plan:
    udp: bool
    grpc: bool
    reopen: bool = False  # ask for a new key (in the background)
    fell_back: bool = False  # this round switched the coordinator to gRPC only

    @property
    def skip(self) -> bool:
        """Nothing goes to this coordinator this round: it rations us (`FastRoutes`)."""
        return not (self.udp or self.grpc)


def _held_back(every: float, last: float, acked_sent: float, early: float,
               now: float) -> bool:
    """Whether a coordinator that rations us (`every` seconds, 0: it does not) would drop
    a round sent now unread: it answers only one arriving `every` after the last one it
    answered, so the next round goes in the first tick `every` after both the round it
    last answered (`acked_sent`, when that was sent) and the last one sent (`last`: while
    it answers nothing, one per `every`), `early` ahead so that a ticker running a little
    late does not skip one more round."""
    return bool(every) and now < max(last, acked_sent) + every - early


def _note_sent(sent_at: dict[int, float], seq: int, now: float) -> None:
    """Note when round `seq` was sent; only the recent 16-32 are kept: an answer to an
    older one tells nothing about how slow, or how paced, the coordinator is now."""
    sent_at[seq] = now
    if len(sent_at) > 32:
        for old in sorted(sent_at)[:16]:
            del sent_at[old]


@dataclass
class _Pace:
    """The gRPC stream's pacing to a coordinator that rations us there (its stream answers
    a node with no active role at most every `overload.ration` and drops the rest after
    reading them, coordinator/service/agent.py). Used when a round goes over gRPC alone:
    no fast path (disabled, or no key yet) or fallen back to gRPC."""

    every: float = 0.0  # the last gRPC answer's answer_every_ms, seconds (0: not rationed)
    acked: int = 0  # the newest round answered over gRPC
    acked_sent: float = -math.inf  # when that round was sent
    sent_at: dict[int, float] = field(default_factory=dict)  # recent gRPC rounds

    def sent(self, seq: int, now: float) -> None:
        _note_sent(self.sent_at, seq, now)

    def answered(self, seq: int, every: float, cap: float) -> None:
        self.every = min(max(every, 0.0), cap)
        sent = self.sent_at.get(seq)
        if sent is not None and seq >= self.acked:
            self.acked_sent = sent
        self.acked = max(self.acked, seq)


@dataclass
class _Route:
    opened: bool = False
    sent: int = 0  # the last round sent as a datagram
    acked: int = 0  # the highest round answered by datagram
    misses: int = 0  # rounds in a row whose datagram was not answered by the next round
    fallen_back: bool = False
    next_probe: float = 0.0
    heard: float | None = None  # when the last fast answer (or the key) arrived
    quiet_since: float | None = None  # the last fast answer, or the first key (copies)
    sent_at: dict[int, float] = field(default_factory=dict)  # recent datagram rounds
    slow: bool = False  # the last fast answer came later than `slow_answers`
    grpc_heard: float | None = None  # when the last answer over the gRPC stream arrived
    every: float = 0.0  # the last fast answer's answer_every_ms, seconds (0: not rationed)
    may_reopen: bool = True  # no new key asked for since the last fast answer
    last_udp: float = -math.inf  # when the last datagram went to it
    acked_sent: float = -math.inf  # when the newest round it answered was sent
    copy_out: float | None = None  # when the unanswered gRPC copy went (None: none is)
    copy_wait: float = 0.0  # how long that copy is waited for before the next one
    grpc: _Pace = field(default_factory=_Pace)  # rounds that go over gRPC alone


class FastRoutes:
    """Which way each round goes, per coordinator. Pure: rounds and times are inputs."""

    def __init__(self, coordinators: int, fallback_misses: int = FALLBACK_MISSES,
                 reopen_after: int = REOPEN_AFTER_MISSES,
                 retry_after: float = RETRY_AFTER,
                 fallback_silence: float = FALLBACK_SILENCE,
                 copy_silence: float | None = None, slow_after: float | None = None,
                 cover: float | None = None, interval: float = DEFAULT_INTERVAL) -> None:
        self._routes = [_Route() for _ in range(coordinators)]
        self._interval = interval
        #: silence after which rounds are copied over gRPC (`copy_after`)
        self.copy_silence = copy_after() if copy_silence is None else copy_silence
        #: answers later than this mark a coordinator slow (`slow_answers`), whose
        #: silence is copied only once it lasted `cover` (`lease_cover`)
        self.slow_after = slow_answers() if slow_after is None else slow_after
        self.cover = lease_cover() if cover is None else cover
        self._fallback_misses = fallback_misses
        self._reopen_after = reopen_after
        self._retry_after = retry_after
        self._silence = fallback_silence

    def opened(self, i: int, now: float) -> None:
        """A key was installed for coordinator i. Misses are kept (a new key that is not
        answered either still ends in the fallback), but the silence counts from now:
        the new key gets its full second. The copies' silence is not reset by a
        re-opened key (only answers end it): the lease still needs them meanwhile."""
        r = self._routes[i]
        r.opened = True
        r.heard = now
        if r.quiet_since is None:
            r.quiet_since = now

    def closed(self, i: int) -> None:
        self._routes[i].opened = False

    def is_open(self, i: int) -> bool:
        return self._routes[i].opened

    def fallen_back(self, i: int) -> bool:
        return self._routes[i].fallen_back

    def grpc_answered(self, i: int, now: float, seq: int = 0, every: float = 0.0) -> None:
        """An answer over coordinator i's gRPC stream, to round `seq`: it is reachable
        there, and it has read what we sent it there (the next copy may go). `every`: the
        answer's answer_every_ms in seconds, taken at most as one lease cover (as
        `answered`): rounds that go over gRPC alone are paced to it."""
        r = self._routes[i]
        r.grpc_heard = now
        r.copy_out = None
        r.grpc.answered(seq, every, self.cover)

    def stream_started(self, i: int) -> None:
        """A new Keepalive stream to coordinator i (the last one broke): the copy back-off
        starts over, so the next round that is copied goes at once. Why: while the
        coordinator was down every copy went unanswered and the back-off grew to
        COPY_BACKOFF_COVERS lease covers (3.2 s at the default timing); when it comes
        back, the first copy on the new stream is what brings the lease back until a
        new fast-path key is in, and one unanswered copy per stream costs a coordinator
        that is down nothing. The back-off is for a coordinator whose stream stays up
        but answers nothing (overloaded): its stream does not restart."""
        r = self._routes[i]
        r.copy_out = None
        r.copy_wait = 0.0

    def _over_grpc(self, r: _Route, seq: int, now: float, udp: bool = False) -> Plan:
        """A round that goes over gRPC alone (`udp`: a datagram besides, for a route that
        is silent on gRPC too), paced like the datagrams: a coordinator that rations us
        on its stream reads and drops every round it does not answer, and reading a gRPC
        message costs it most of what answering does (65 against 113 us measured), so
        those rounds are not sent (issue 14: agents without a fast path, or fallen back,
        cost an overloaded coordinator 3-4 reads per answer). Unlike the datagrams', the
        hold runs from the round it last answered only, not from the last one sent: the
        stream dates a round when its event loop reads it, and reads bunch under load,
        so a paced round can be read "too soon" and dropped; the next tick's round then
        goes at once, not a ration later, and the answers are never further apart than
        with every round sent (a ration and an interval)."""
        grpc = not _held_back(r.grpc.every, -math.inf, r.grpc.acked_sent,
                              self._interval / 4, now)
        if grpc:
            r.grpc.sent(seq, now)
        return Plan(udp=udp, grpc=grpc)

    def _grpc_silent(self, r: _Route, now: float) -> bool:
        return r.grpc_heard is None or now - r.grpc_heard >= self._silence

    def plan(self, i: int, seq: int, now: float) -> Plan:
        r = self._routes[i]
        if not r.opened:
            return self._over_grpc(r, seq, now)
        if r.fallen_back:
            if now < r.next_probe:
                # gRPC-only while gRPC answers; silent there too, a datagram per round
                return self._over_grpc(r, seq, now, udp=self._grpc_silent(r, now))
            r.next_probe = now + self._retry_after  # one probe, with a fresh key after it
            r.sent = seq
            r.grpc.sent(seq, now)
            return Plan(udp=True, grpc=True, reopen=True)
        if _held_back(r.every, r.last_udp, r.acked_sent, self._interval / 4, now):
            # It rations us: it answers a datagram arriving `every` after the last one
            # it answered and drops the others unread (coordinator/fastpath.py), so
            # those rounds are not sent to it at all, nor copied. Its intake then reads
            # only what it will answer, which is most of what overload costs it (issue
            # 14).
            return Plan(udp=False, grpc=False)
        r.last_udp = now
        quiet = now - (r.quiet_since if r.quiet_since is not None else now)
        # A rationing coordinator (overloaded: it said it answers us at most every
        # `every`) leaves gaps on purpose; they are not silence until its next answer is
        # overdue, so until then no round is copied, missed or worth a new key. Each
        # silence below is widened by `every`, which keeps its slack over a healthy gap.
        rationed = r.every > 0 and quiet < self.copy_silence + r.every
        if not rationed:
            r.misses = r.misses + 1 if r.sent > r.acked else 0
        # The last datagram is overdue: unanswered, and sent long enough ago that a
        # coordinator that is not busy would have answered it. A ticker that ran late
        # (a busy agent host) makes a long silence with nothing lost: no copy for that.
        before = r.sent_at.get(r.sent)
        overdue = r.sent > r.acked and before is not None and now - before >= self.slow_after
        r.sent = seq
        silent = now - (r.heard if r.heard is not None else now)
        # No fallback from a coordinator whose last answer said it rations us, or came
        # late (`slow`): it is overloaded, not cut off from UDP, and gRPC-only rounds
        # would cost it 5-10x more, for RETRY_AFTER (issue 14: the overload test's real
        # active fell back after a stall and lapsed for 20 s). Silences beyond its
        # promise, or of a lease, are still copied (below), and a copy answered over
        # gRPC lets the next one go: if UDP really is blocked, every round still gets
        # through.
        if r.misses >= self._fallback_misses and silent >= self._silence \
                and not self._grpc_silent(r, now) and not r.every and not r.slow:
            r.fallen_back = True
            r.next_probe = now + self._retry_after
            r.grpc.sent(seq, now)
            return Plan(udp=False, grpc=True, reopen=False, fell_back=True)
        _note_sent(r.sent_at, seq, now)
        copy = (not rationed and quiet >= self.copy_silence + r.every
                and (quiet >= self.cover + r.every or (overdue and not r.slow))
                and self._copy_may_go(r, now))
        # A new key once per silence: after `reopen_after` misses, or, from a coordinator
        # whose answers were slow, only once the silence outlasts a lease cover. A
        # busy coordinator's answers come late and in bursts, so misses pile up while it
        # still knows our key, and a new key then costs what it fixes nothing for: the
        # answers already sealed under the old one, and our datagrams still queued in
        # its socket under it (issue 14: the pair's active re-keyed every 1-2 s under
        # the overload test and lost its lease).
        wait = self.cover + r.every if r.slow else 0.0
        reopen = (not rationed and r.may_reopen and r.misses >= self._reopen_after
                  and silent >= wait)
        if reopen:
            r.may_reopen = False
        if copy:
            r.grpc.sent(seq, now)
        return Plan(udp=True, grpc=copy, reopen=reopen)

    def _copy_may_go(self, r: _Route, now: float) -> bool:
        """One gRPC copy at a time per coordinator. The next goes once that one is
        answered (on either route) or, unanswered, after one lease cover, then two,
        four... up to COPY_BACKOFF_COVERS. Why: a coordinator that answers our copies
        keeps getting one a round, as before (UDP blocked, gRPC fine); one that answers
        neither route is overloaded or down, and copies from all its agents every round
        are what overloaded it further: under the overload test they grew to 1,500 a
        second against the ~200 its budget could take, eating the CPU its datagram
        answers needed, and every lease lapsed (issue 14)."""
        if r.copy_out is not None and now - r.copy_out < r.copy_wait:
            return False
        r.copy_wait = (self.cover if r.copy_out is None
                       else min(2 * r.copy_wait, COPY_BACKOFF_COVERS * self.cover))
        r.copy_out = now
        return True

    def answered(self, i: int, seq: int, now: float, every: float = 0.0) -> bool:
        """A datagram answer for round `seq`; True if it ended a fallback. `every`: the
        answer's answer_every_ms in seconds (the coordinator rations us; 0: it does not),
        taken at most as one lease cover: a longer promise would leave that coordinator's
        part of the lease to lapse between answers, and a wrong one must not stop the
        copies for good."""
        r = self._routes[i]
        r.heard = r.quiet_since = now
        r.every = min(max(every, 0.0), self.cover)
        sent = r.sent_at.get(seq)
        if sent is not None:
            r.slow = now - sent > self.slow_after
            if seq >= r.acked:
                r.acked_sent = sent
        r.acked = max(r.acked, seq)
        r.misses = 0
        r.copy_out = None
        r.may_reopen = True
        if r.fallen_back:
            r.fallen_back = False
            return True
        return False


@dataclass
class _Session:
    key: W.SessionKey
    addr: tuple  # the coordinator's (host, port) as the socket takes it
    family: int
    max_datagram: int
    sent: int = 0  # keepalive direction counter
    guard: W.ReplayGuard | None = None


class FastPathLink:
    """UDP sockets, per-coordinator sessions, and the thread that reads answers."""

    def __init__(self, node: str, endpoints: list[str],
                 on_answer: Callable[[int, agent_pb2.KeepaliveResponse], None]) -> None:
        self.node = node
        self.endpoints = endpoints
        self._on_answer = on_answer
        self._lock = threading.Lock()
        self._sessions: dict[int, _Session] = {}
        # Per coordinator, the session a new key replaced: answers already sealed under
        # it are still opened (with its own replay guard), so a new key loses nothing
        # the coordinator already answered. Only sending uses the current one.
        self._previous: dict[int, _Session] = {}
        self._by_key: dict[bytes, tuple[int, _Session]] = {}
        self._socks: dict[int, socket.socket] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.answers = 0
        self.dropped: dict[str, int] = dict.fromkeys(W.REASONS, 0)
        self._logged: dict[str, float] = {}

    def _sock(self, family: int) -> socket.socket:
        with self._lock:
            s = self._socks.get(family)
            if s is None:
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
                s.setblocking(False)
                self._socks[family] = s
            return s

    def install(self, i: int, resp: agent_pb2.OpenFastPathResponse) -> None:
        """Use a key OpenFastPath returned for coordinator i (replaces the old one).
        Resolves the coordinator's host (may block on DNS: not the ticker's thread)."""
        host, _ = parse_address(self.endpoints[i])
        info = socket.getaddrinfo(host, resp.port, type=socket.SOCK_DGRAM)[0]
        family, addr = info[0], info[4]
        self._sock(family)
        key = W.SessionKey(resp.key_id, resp.key)
        session = _Session(key=key, addr=addr, family=family,
                           max_datagram=min(resp.max_datagram or W.MAX_DATAGRAM,
                                            W.MAX_DATAGRAM),
                           guard=W.ReplayGuard())
        with self._lock:
            older = self._previous.pop(i, None)
            if older is not None:
                self._by_key.pop(older.key.key_id, None)
            old = self._sessions.get(i)
            if old is not None:
                self._previous[i] = old
            self._sessions[i] = session
            self._by_key[key.key_id] = (i, session)

    def forget(self, i: int) -> None:
        with self._lock:
            for table in (self._sessions, self._previous):
                old = table.pop(i, None)
                if old is not None:
                    self._by_key.pop(old.key.key_id, None)

    def send(self, i: int, req: agent_pb2.KeepaliveRequest) -> bool:
        """Seal and send one keepalive; False if there is no session, it does not fit a
        datagram, or the socket refused it (the caller sends it over gRPC instead)."""
        payload = req.SerializeToString()
        with self._lock:
            s = self._sessions.get(i)
            if s is None or len(payload) + W.MIN_DATAGRAM > s.max_datagram:
                return False
            s.sent += 1
            datagram = s.key.seal(W.KIND_KEEPALIVE, s.sent, payload)
            sock = self._socks[s.family]
            addr = s.addr
        try:
            sock.sendto(datagram, addr)
        except OSError:
            return False
        self.sent += 1
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.node}-fastpath",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            for s in self._socks.values():
                s.close()
            self._socks.clear()

    def _run(self) -> None:
        buf = bytearray(W.MAX_DATAGRAM + 1)
        while not self._stop.is_set():
            with self._lock:
                socks = list(self._socks.values())
            if not socks:
                self._stop.wait(0.05)
                continue
            try:
                ready, _, _ = select.select(socks, [], [], POLL_S)
            except (OSError, ValueError):  # a socket closed under us by stop()
                continue
            for sock in ready:
                for _ in range(64):
                    try:
                        n, _addr = sock.recvfrom_into(buf)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # ICMP port unreachable reported on the socket
                        break
                    self._one(bytes(buf[:n]))

    def _one(self, datagram: bytes) -> None:
        try:
            header = W.parse_header(datagram, W.KIND_ACK)
            with self._lock:
                known = self._by_key.get(header.key_id)
            if known is None:
                raise W.Rejected("unknown_key")
            i, s = known
            if s.guard is None:
                raise W.Rejected("unknown_key")
            payload = W.open_checked(s.key, s.guard, header, datagram)
            resp = agent_pb2.KeepaliveResponse()
            try:
                resp.ParseFromString(payload)
            except DecodeError:
                raise W.Rejected("invalid") from None
        except W.Rejected as r:
            self.dropped[r.reason] = self.dropped.get(r.reason, 0) + 1
            now = time.monotonic()
            if now - self._logged.get(r.reason, -1e9) >= DROP_LOG_EVERY_S:
                self._logged[r.reason] = now
                log.warning("fast path answers dropped", extra={
                    "node": self.node, "reason": r.reason,
                    "count": self.dropped[r.reason]})
            return
        self.answers += 1
        self._on_answer(i, resp)
