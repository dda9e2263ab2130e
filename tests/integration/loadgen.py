"""A load generator that speaks the real agent protocol to a coordinator cluster.

Each simulated node does what agents/session.py does: RegisterNode once, then, to every
coordinator, a Keepalive stream (one message per interval carrying its members' health,
highest epoch seen and epoch held; the round's send time noted first, a slow
coordinator's queue keeps only the 4 newest rounds) and a WatchAssignments stream
(feeding the epochs of the next keepalive). Each node keeps a real `QuorumLease`
(agents/lease.py), so "a lease lapsed" here means what it means to a real agent.

The transport is pluggable (`Transport`): `GrpcTransport` drives the gRPC streams;
`FastTransport` is the keepalive fast path as agents/fastpath.py speaks it (a key per
node and coordinator from the real AgentService.OpenFastPath, AES-GCM datagrams in the
real fastwire format, and the agent's own `FastRoutes`: a round whose previous
datagram went unanswered also goes over the node's gRPC stream, as a real agent's
would). Rounds are sent by one ticker for all nodes (a timer per node costs more
generator CPU than the coordinator spends on the keepalive). Used by
tests/integration/test_overload.py and bench/scale.py; `run` is a plain function of
JSON-able arguments so it can run in a child process (the generator must not share a
GIL with what it measures).

What is the generator's and what is the coordinator's (issue 14: one process simulating
1,000 agents ran 156 ms late at p99, and that lateness counted as the coordinator's):
* fast-path answers are dated by the kernel's receive stamp at the generator (the
  coordinator's own rxclock conversion), the round by the time noted just before it was
  sent, so `ack_p*_ms` is the coordinator's service time plus the loopback; the time the
  generator took to read an answer is `answer_read_lag_*`, and `ack_p99_as_read_ms` is
  the old figure (gRPC answers have no stamp: read time);
* lapses "by arrival" count a renewal that *arrived* after the lease had run out (an
  agent reading at once would have lapsed too); the "as read" ones, checked every 20 ms,
  also count leases that ran out while their renewal waited here unread; a lapse by
  arrival is the generator's (`lapse_events_by_arrival_generator`) when the renewing
  round left late after its slot and, sent on time with its answer as quick, would
  have arrived before the lease ran out (or when no round went at all since it ran
  out), and the coordinator's (`..._answer`: a late or absent answer) otherwise;
* rounds go in fixed slots, node i at (i * GOLDEN) mod 1 of an interval, so sends are
  spread evenly and a stall of the generator does not bunch them; how late each round
  left after its slot is `send_late_*`; answers already queued are read before the
  rounds are planned (an agent's receive thread would have heard them);
* start-up objects are frozen out of the collector (gc.freeze, as agents do), and the
  collector's passes are timed (`generator_gc`: one pass stalls every node at once);
  a node's request is encoded once while its reports stay the same, each round adding
  only its seq field (`with_seq`: the serializer's exact bytes); the generator's CPU
  per round trip is reported, split into sending, reading and the rest;
* the agent's rules are the real ones: `QuorumLease` and `FastRoutes`.

Every group `lg0000`.. has two members, `m0` (priority 100) and `m1` (90), on two
different nodes; with G groups over N nodes, group g's members are on nodes 2g and
2g+1 (mod N), so each node hosts about 2G/N members (one, when G = N/2, the default).
A false expiry of an active costs a failover, as it would in a site.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import math
import resource
import socket
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError

from vnfha.agents.fastpath import FastRoutes, routes_for
from vnfha.agents.lease import QuorumLease
from vnfha.coordinator import fastwire as W
from vnfha.coordinator import rxclock
from vnfha.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc, types_pb2

ACTIVE = types_pb2.ROLE_ACTIVE
ACK = agent_pb2.KEEPALIVE_RESULT_ACK
#: a node's recent rounds' send lateness, by seq & LATE_MASK (attributes lapses)
LATE_MASK = 127
QUEUE = 4  # rounds a slow coordinator's queue keeps (as agents/session.py)
GOLDEN = 0.6180339887498949  # node i's round phase: (i * GOLDEN) mod 1 of an interval
SAMPLES = 2_000_000  # at most this many latency samples per window
NODES_PER_CHANNEL = 64  # streams multiplexed on one HTTP/2 connection


#: KeepaliveRequest.seq's key: field 2, wire type 0 (varint)
SEQ_KEY = b"\x10"


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of an unsigned 64-bit integer."""
    if not 0 <= n < 1 << 64:
        raise ValueError("a uint64 is in [0, 2**64)")
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: the seq field of the first rounds, encoded once (16 minutes of rounds at 60 ms)
_SEQ_FIELDS = tuple(SEQ_KEY + varint(n) for n in range(1 << 14))


def split_request(req: agent_pb2.KeepaliveRequest) -> tuple[bytes, bytes]:
    """`req`'s encoding around its seq field: (the node field, every field after seq).
    Why: a simulated node's request changes only in `seq` from round to round, and
    `with_seq(head, seq, rest)` is that round's request for a concatenation, where
    serializing the whole message again cost the generator as much as sealing it."""
    head = agent_pb2.KeepaliveRequest(node=req.node).SerializeToString()
    rest = agent_pb2.KeepaliveRequest()
    rest.CopyFrom(req)
    rest.ClearField("node")
    rest.ClearField("seq")
    return head, rest.SerializeToString()


def with_seq(head: bytes, seq: int, rest: bytes) -> bytes:
    """The request `split_request` split, with its seq set to `seq`: fields in number
    order (node 1, seq 2, the rest 3..), seq left out when 0, as the serializer does."""
    if seq < len(_SEQ_FIELDS):
        return head + _SEQ_FIELDS[seq] + rest if seq else head + rest
    return head + SEQ_KEY + varint(seq) + rest


def node_name(i: int) -> str:
    return f"ln{i:05d}"


def group_name(g: int) -> str:
    return f"lg{g:04d}"


def hosted(i: int, nodes: int, groups: int | None) -> list[tuple[str, str, int]]:
    """(group, member, priority) of the members load node i hosts, out of `nodes` nodes
    and `groups` groups (None: nodes / 2, one member per node, any node count)."""
    if groups is None:
        return [(group_name(i // 2), f"m{i % 2}", 100 if i % 2 == 0 else 90)]
    return [(group_name(g), f"m{k}", 100 - 10 * k) for g in range(groups)
            for k in (0, 1) if (2 * g + k) % nodes == i]


class Transport(Protocol):
    """How simulated nodes reach coordinator `index` (one of `len(endpoints)`)."""

    async def register(self, req: agent_pb2.RegisterNodeRequest) -> None: ...

    def keepalive(self, index: int, node: int,
                  requests: AsyncIterator[agent_pb2.KeepaliveRequest]
                  ) -> AsyncIterator[agent_pb2.KeepaliveResponse]: ...

    def watch(self, index: int, node: int, name: str) -> Any: ...

    async def close(self) -> None: ...


class GrpcTransport:
    """The gRPC streams (insecure channels on loopback; one connection per 64 nodes per
    coordinator, as many agents would open)."""

    def __init__(self, endpoints: list[str], nodes: int) -> None:
        self.endpoints = endpoints
        per = max(1, math.ceil(nodes / NODES_PER_CHANNEL))
        # A distinct option per channel: gRPC would otherwise share one connection.
        self._channels = [[grpc.aio.insecure_channel(ep, options=[("vnfha.lg", k)])
                           for k in range(per)] for ep in endpoints]
        self._stubs = [[agent_pb2_grpc.AgentServiceStub(ch) for ch in chs]
                       for chs in self._channels]

    def _stub(self, index: int, node: int) -> agent_pb2_grpc.AgentServiceStub:
        stubs = self._stubs[index]
        return stubs[(node // NODES_PER_CHANNEL) % len(stubs)]

    async def register(self, req: agent_pb2.RegisterNodeRequest) -> None:
        wait = 0.1
        for attempt in range(60):
            try:
                await self._stubs[attempt % len(self.endpoints)][0].RegisterNode(
                    req, timeout=5)
                return
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                await asyncio.sleep(wait)  # overloaded or starting: back off
                wait = min(wait * 2, 2.0)
        raise RuntimeError(f"could not register {req.node}")

    def keepalive(self, index: int, node: int,
                  requests: AsyncIterator[agent_pb2.KeepaliveRequest]
                  ) -> AsyncIterator[agent_pb2.KeepaliveResponse]:
        return self._stub(index, node).Keepalive(requests)

    def watch(self, index: int, node: int, name: str) -> Any:
        return self._stub(index, node).WatchAssignments(
            agent_pb2.WatchAssignmentsRequest(node=name))

    async def close(self) -> None:
        for chs in self._channels:
            for ch in chs:
                await ch.close()


class FastTransport:
    """The keepalive fast path: gRPC for registration, keys (OpenFastPath), watches and
    the rounds the agent's `FastRoutes` sends that way; keepalives as sealed datagrams
    (fastwire) on one UDP socket, answers read in batches on the event loop. The
    coordinators tell the simulated nodes apart by key id, as they tell agents apart."""

    fast = True

    def __init__(self, endpoints: list[str], nodes: int) -> None:
        self.endpoints = endpoints
        self.grpc = GrpcTransport(endpoints, nodes)
        #: key id -> (coordinator index, node index, key, replay guard of the answers)
        self._sessions: dict[bytes, tuple[int, int, W.SessionKey, W.ReplayGuard]] = {}
        #: (coordinator index, node index) -> [key, keepalive counter, address]
        self._out: dict[tuple[int, int], list[Any]] = {}
        host = endpoints[0].rsplit(":", 1)[0].strip("[]")
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                   socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self._sock.bind((host, 0))
        self._sock.setblocking(False)
        # Answers are dated by the kernel's receive stamp (coordinator/rxclock.py, the
        # coordinator's own conversion: never earlier than the truth), so the ack
        # latency is the coordinator's and the network's, not how late this process
        # got round to reading it; how late it read is reported apart.
        self._arrivals: rxclock.ArrivalClock | None = None
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
            self._arrivals = rxclock.ArrivalClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: (coordinator index, node index, answer, arrival) for each authentic answer
        self.on_answer: Any = None
        self.dropped = 0  # answers that failed a check (none expected)
        self.read_cpu = 0.0  # CPU seconds spent reading and checking answers
        self.send_failed = 0  # datagrams the socket refused (a full send buffer)

    async def register(self, req: agent_pb2.RegisterNodeRequest) -> None:
        await self.grpc.register(req)

    async def open(self, index: int, node: int, name: str) -> bool:
        """A key for node `name` at coordinator `index`, as the agent gets it."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._sock.fileno(), self._readable)
        wait = 0.1
        for _ in range(30):
            try:
                r = await self.grpc._stub(index, node).OpenFastPath(
                    agent_pb2.OpenFastPathRequest(node=name), timeout=10)
                break
            except grpc.aio.AioRpcError as e:
                # As the agent (agents/session.py `_open_one`): only a coordinator
                # without a fast path is not asked again soon; anything else (a follower
                # that has not applied the registration yet, overload) is retried.
                if e.code() in (grpc.StatusCode.FAILED_PRECONDITION,
                                grpc.StatusCode.UNIMPLEMENTED):
                    return False
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)
        else:
            return False
        host = self.endpoints[index].rsplit(":", 1)[0].strip("[]")
        self.install(index, node, W.SessionKey(r.key_id, r.key), (host, r.port))
        return True

    def install(self, index: int, node: int, key: W.SessionKey, addr: tuple[str, int]
                ) -> None:
        """Node `node`'s key at coordinator `index`, whose datagrams go to `addr`."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._sock.fileno(), self._readable)
        old = self._out.get((index, node))
        if old is not None:
            self._sessions.pop(old[0].key_id, None)
        self._out[(index, node)] = [key, 0, addr]
        self._sessions[key.key_id] = (index, node, key, W.ReplayGuard())

    @property
    def address(self) -> tuple[str, int]:
        """Where the simulated nodes' datagrams come from (answers go there)."""
        return self._sock.getsockname()[:2]

    def send(self, index: int, node: int, payload: bytes) -> bool:
        """Seal and send one keepalive; False if it cannot go as a datagram."""
        out = self._out.get((index, node))
        if out is None or len(payload) + W.MIN_DATAGRAM > W.MAX_DATAGRAM:
            return False
        out[1] += 1
        try:
            self._sock.sendto(out[0].seal(W.KIND_KEEPALIVE, out[1], payload), out[2])
        except OSError:
            self.send_failed += 1
            return False
        return True

    def drain(self) -> None:
        """Read every answer already queued (the ticker calls this before its rounds)."""
        if self._loop is not None:
            self._readable()

    def _readable(self) -> None:
        """Every queued answer, and the CPU that took (`read_cpu`)."""
        t0 = time.thread_time()
        try:
            self._read()
        finally:
            self.read_cpu += time.thread_time() - t0

    def _read(self) -> None:
        """Every queued answer (up to 1,024 per wake-up), checked as the agent does,
        each dated by its kernel receive stamp."""
        sock, arrivals = self._sock, self._arrivals
        before = time.monotonic()
        real = time.time()
        read_at = time.monotonic()
        if arrivals is not None:
            arrivals.sample(before, real, read_at)
        for _ in range(1024):
            try:
                data, anc, _flags, _src = sock.recvmsg(W.MAX_DATAGRAM + 1, rxclock.ANCBUF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error queued on the socket
                continue
            arrived = read_at
            if arrivals is not None:
                arrived = arrivals.arrival(rxclock.kernel_stamp(anc), read_at)
            try:
                header = W.parse_header(data, W.KIND_ACK)
                session = self._sessions.get(header.key_id)
                if session is None:
                    raise W.Rejected("unknown_key")
                payload = W.open_checked(session[2], session[3], header, data)
                resp = agent_pb2.KeepaliveResponse()
                resp.ParseFromString(payload)
            except (W.Rejected, DecodeError):
                self.dropped += 1
                continue
            if self.on_answer is not None:
                self.on_answer(session[0], session[1], resp, arrived)

    def keepalive(self, index: int, node: int,
                  requests: AsyncIterator[agent_pb2.KeepaliveRequest]
                  ) -> AsyncIterator[agent_pb2.KeepaliveResponse]:
        return self.grpc.keepalive(index, node, requests)

    def watch(self, index: int, node: int, name: str) -> Any:
        return self.grpc.watch(index, node, name)

    async def close(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        await self.grpc.close()


TRANSPORTS: dict[str, Any] = {"grpc": GrpcTransport, "fast": FastTransport}


@dataclass
class Sim:
    """One simulated node."""

    index: int
    name: str
    members: list[tuple[str, str, int]]  # (group, member, priority)
    lease: QuorumLease
    queues: list[asyncio.Queue]
    seq: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # group -> highest epoch seen
    held: dict[str, int] = field(default_factory=dict)  # group -> epoch held active at
    was_valid: bool = False
    alive: bool = True  # False: crashed (sends nothing more)
    #: the agent's routing: datagrams or gRPC (fast transport), and the pacing of rounds
    #: to a coordinator that rations us (either transport; gRPC: never opened)
    routes: FastRoutes | None = None
    #: how late each recent round left after its slot, by seq & LATE_MASK
    late: list[float] = field(default_factory=lambda: [0.0] * (LATE_MASK + 1))
    #: the request's encoding around `seq` (`split_request`), kept while the reports
    #: stay the same (only `seq` changes): building and serializing the request every
    #: round cost the generator more than sealing and sending it
    _split: tuple[bytes, bytes] | None = None

    def payload(self) -> bytes:
        """This round's request, serialized (for datagrams: a message handed to a gRPC
        queue is never changed afterwards, so it gets its own, `request()`)."""
        if self._split is None:
            self._split = split_request(self.request())
        return with_seq(self._split[0], self.seq, self._split[1])

    def changed(self) -> None:
        """The reports changed (an assignment arrived): build the next request anew."""
        self._split = None

    def request(self) -> agent_pb2.KeepaliveRequest:
        return agent_pb2.KeepaliveRequest(node=self.name, seq=self.seq, members=[
            agent_pb2.MemberReport(group=g, member=m, health=types_pb2.HEALTH_HEALTHY,
                                   seen_epoch=self.seen.get(g, 0),
                                   active_epoch=self.held.get(g, 0))
            for g, m, _ in self.members])


@dataclass
class Window:
    """What happened since `LoadGen.mark()`."""

    started: float
    nodes: int
    sent: int = 0
    acked: int = 0
    # send -> arrival (the kernel's receive stamp; gRPC: the read), and send -> read
    latencies: array = field(default_factory=lambda: array("f"))
    read_latencies: array = field(default_factory=lambda: array("f"))
    # How late this process read a fast answer after the kernel queued it, and how late
    # it sent a round after its slot: the generator's own lateness, not the coordinator's.
    read_lag: array = field(default_factory=lambda: array("f"))
    send_late: array = field(default_factory=lambda: array("f"))
    # As read: a node whose lease had run out when this process looked (every 20 ms).
    lapse_events: int = 0
    lapsed: set[int] = field(default_factory=set)
    # By arrival: the round that renewed a lease arrived after it had run out, so an
    # agent reading at once would have lapsed too (the generator's read lag excluded).
    lapse_events_arrival: int = 0
    lapsed_arrival: set[int] = field(default_factory=set)
    promotions: int = 0  # grants of a newer epoch seen (with no fault: false failovers)
    min_valid: int = -1  # fewest nodes holding a lease at one check
    refused_streams: int = 0
    datagrams: int = 0  # keepalives sent as datagrams (fast transport)
    grpc_rounds: int = 0  # keepalives the fast transport's routes sent over gRPC
    cpu0: float = 0.0
    ended: float = 0.0  # when `LoadGen.close` closed it (0: still open)
    cpu_used: float = 0.0  # the generator's CPU seconds over it, once closed
    # ... of which in the kernel (sockets), and on the event loop's own thread (the
    # rest is gRPC's threads): where a round trip's CPU goes
    rusage0: tuple[float, float] = (0.0, 0.0)
    cpu_sys: float = 0.0
    loop0: float = 0.0
    cpu_loop: float = 0.0
    # ... of which sending rounds (planning, sealing, sendto) and reading answers
    # (recvmsg, opening, the lease and routes counting them)
    send_cpu0: float = 0.0
    read_cpu0: float = 0.0
    cpu_send: float = 0.0
    cpu_read: float = 0.0
    # Lapses by arrival, attributed: the renewal's round left late after its slot and,
    # had it left on time (its answer as quick), would have arrived in time: the
    # generator's lapse, not the coordinator's. The others: a late or absent answer.
    lapse_events_generator: int = 0
    lapsed_generator: set[int] = field(default_factory=set)
    # The collector's passes while open (gc.callbacks): count and pause per generation.
    # A pass stalls every simulated node at once, which no real agent fleet does.
    gc_count: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_pause: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    gc_max: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # How late the generator's own event loop ran (10 ms heartbeat): a late generator
    # sees leases lapse that no coordinator let lapse.
    own_lag: array = field(default_factory=lambda: array("f"))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


class LoadGen:
    """Simulated nodes on one event loop; nodes are added while it runs (a ramp), and
    figures are taken over windows (`mark`, then `window`)."""

    def __init__(self, endpoints: list[str], interval: float, ttl: float,
                 transport: Transport | str | None = None, max_nodes: int = 4096,
                 watch: bool = True, groups: int | None = None) -> None:
        self.endpoints = endpoints
        self.groups = groups  # None: one group per two nodes, as they are added
        self.max_nodes = max_nodes
        self.interval = interval
        self.ttl = ttl
        self.watch = watch
        # A transport named (or none: gRPC) is made, and closed, here.
        self._own = transport is None or isinstance(transport, str)
        self.tr: Transport = (TRANSPORTS[transport or "grpc"](endpoints, max_nodes)
                              if transport is None or isinstance(transport, str)
                              else transport)
        self.fast = bool(getattr(self.tr, "fast", False))
        if self.fast:
            self.tr.on_answer = self._fast_answer  # type: ignore[attr-defined]
        self.sims: list[Sim] = []
        self._due: list[tuple[float, int]] = []  # (next round, node index): the ticker's heap
        self.grants: dict[str, tuple[int, str]] = {}  # group -> newest (epoch, member)
        self.first_seen: dict[tuple[str, int], float] = {}  # (group, epoch) -> first sight
        self.w = Window(time.monotonic(), 0)
        self._epoch = time.monotonic()  # the grid every node's round slots are on
        self._done = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._checker: asyncio.Task | None = None
        self._gc_started = 0.0
        gc.callbacks.append(self._gc_phase)
        self.send_cpu = 0.0  # CPU seconds the ticker spent sending rounds

    async def add(self, count: int) -> None:
        """Register `count` more nodes and start their streams."""
        first = len(self.sims)
        new = []
        for i in range(first, first + count):
            new.append(Sim(i, node_name(i), hosted(i, self.max_nodes, self.groups),
                           QuorumLease(coordinators=len(self.endpoints), ttl=self.ttl),
                           [asyncio.Queue(maxsize=QUEUE) for _ in self.endpoints],
                           routes=routes_for(len(self.endpoints), self.ttl, self.interval)))
        sem = asyncio.Semaphore(16)

        async def start(s: Sim) -> None:
            """Register, start the rounds (over gRPC while no key is open, FastRoutes),
            then (fast path) open a key at every coordinator at once, as an agent does
            right after registering."""
            async with sem:
                await self.tr.register(agent_pb2.RegisterNodeRequest(
                    node=s.name, address="198.18.1.1", remove_undeclared=True,
                    members=[agent_pb2.MemberSpec(group=g, member=m, priority=p)
                             for g, m, p in s.members]))
                for k in range(len(self.endpoints)):
                    self._tasks.append(asyncio.create_task(self._stream(s, k)))
                    if self.watch:
                        self._tasks.append(asyncio.create_task(self._watch(s, k)))
                # rounds spread evenly over the interval, the first in the next slot
                heapq.heappush(self._due, (self._first_slot(s.index), s.index))
                if self.fast:
                    opened = await asyncio.gather(*(
                        self.tr.open(k, s.index, s.name)  # type: ignore[attr-defined]
                        for k in range(len(self.endpoints))))
                    assert s.routes is not None
                    for k, ok in enumerate(opened):
                        if ok:
                            s.routes.opened(k, time.monotonic())
                        else:  # the agent keeps asking in the background: so do we
                            self._tasks.append(asyncio.create_task(self._open_later(s, k)))

        self.sims.extend(new)
        if not any(t.get_name() == "loadgen-ticker" for t in self._tasks):
            self._tasks.append(asyncio.create_task(self._ticker(), name="loadgen-ticker"))
        if self._checker is None:
            self._checker = asyncio.create_task(self._check())
            self._tasks.append(asyncio.create_task(self._heartbeat()))
        await asyncio.gather(*(start(s) for s in new))
        # As agents do once started (agents/realtime.py): the start-up objects out of
        # the collector's way, so its passes over them do not make rounds late.
        gc.collect()
        gc.freeze()

    async def _open_later(self, s: Sim, k: int) -> None:
        """Ask coordinator k for node s's key until it gives one (each attempt bounded,
        then a back-off up to the agent's): a node left on gRPC for a whole run costs
        that coordinator 5-10x what its datagrams would, which no agent does."""
        wait = 1.0
        while not self._done.is_set() and s.alive:
            await asyncio.sleep(wait)
            if await self.tr.open(k, s.index, s.name):  # type: ignore[attr-defined]
                assert s.routes is not None
                s.routes.opened(k, time.monotonic())
                return
            wait = min(wait * 2, 30.0)

    def _first_slot(self, i: int) -> float:
        """Node i's first round: the next slot on its grid (phase (i * GOLDEN) mod 1 of
        an interval), so any number of nodes, added at any pace, send evenly spread."""
        base = self._epoch + (i * GOLDEN) % 1.0 * self.interval
        now = time.monotonic()
        return base + max(0, math.ceil((now - base) / self.interval)) * self.interval

    def mark(self) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.w = Window(time.monotonic(), len(self.sims), cpu0=time.process_time(),
                        rusage0=(ru.ru_utime, ru.ru_stime), loop0=time.thread_time(),
                        send_cpu0=self.send_cpu,
                        read_cpu0=getattr(self.tr, "read_cpu", 0.0))

    def _gc_phase(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks: time every pass of the collector into the open window."""
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        g, w = info.get("generation", 2), self.w
        if 0 <= g <= 2:
            w.gc_count[g] += 1
            w.gc_pause[g] += pause
            w.gc_max[g] = max(w.gc_max[g], pause)

    def close(self) -> Window:
        """End the window now and start a new one; cheap, so the generator does not
        stall. `window(closed)` summarizes it later: sorting a minute of samples (a
        million at 1,000 nodes) holds this loop for most of a second, long enough for
        every simulated node to fall silent for a coordinator (as happened right before
        a crash measurement)."""
        w, now = self.w, time.monotonic()
        for s in self.sims[:w.nodes]:  # still without a lease, no renewal arrived since
            deadline = s.lease.deadline()
            if s.alive and (deadline is None or deadline < now - self.ttl):
                w.lapsed_arrival.add(s.index)
                last = max(s.lease._sent.values(), default=None)
                if deadline is not None and (last is None or last < deadline):
                    w.lapsed_generator.add(s.index)  # no round went since it ran out
        w.ended, w.cpu_used = now, time.process_time() - w.cpu0
        w.cpu_sys = resource.getrusage(resource.RUSAGE_SELF).ru_stime - w.rusage0[1]
        w.cpu_loop = time.thread_time() - w.loop0
        w.cpu_send = self.send_cpu - w.send_cpu0
        w.cpu_read = getattr(self.tr, "read_cpu", 0.0) - w.read_cpu0
        self.mark()
        return w

    def window(self, closed: Window | None = None) -> dict[str, Any]:
        """The figures of a window `close` returned (None: close the current one)."""
        w = closed if closed is not None else self.close()
        secs = max(w.ended - w.started, 1e-9)
        lat = sorted(w.latencies)
        read = sorted(w.read_latencies)
        lag, late = sorted(w.read_lag), sorted(w.send_late)

        def ms(values: list[float], q: float) -> float | None:
            v = _pct(values, q)
            return None if v is None else round(v * 1000, 2)

        n_coord = len(self.endpoints)
        return {
            "nodes": w.nodes, "coordinators": n_coord, "interval": self.interval,
            "ttl": self.ttl, "seconds": round(secs, 2),
            "offered_per_coordinator_per_s": round(w.sent / secs),
            "acked_per_coordinator_per_s": round(w.acked / secs / n_coord),
            # send -> the kernel's receive stamp at the generator (gRPC: the read)
            "ack_p50_ms": ms(lat, 0.5), "ack_p99_ms": ms(lat, 0.99),
            "ack_max_ms": ms(lat, 1.0),
            # send -> the generator read it: includes the generator's own lateness
            "ack_p99_as_read_ms": ms(read, 0.99),
            "answer_read_lag_p50_ms": ms(lag, 0.5), "answer_read_lag_p99_ms": ms(lag, 0.99),
            "send_late_p50_ms": ms(late, 0.5), "send_late_p99_ms": ms(late, 0.99),
            "send_late_max_ms": ms(late, 1.0),
            # By arrival: a renewal arrived after the lease had run out (or none came).
            "lapse_events_by_arrival": w.lapse_events_arrival,
            "nodes_lapsed_by_arrival": len(w.lapsed_arrival),
            # ... of which the generator's: the renewing round left late after its slot
            # and, sent on time with the same answer time, would have been in time (or
            # no round went at all since the lease ran out); the rest are the
            # coordinator's (or the network's): a late or absent answer
            "lapse_events_by_arrival_generator": w.lapse_events_generator,
            "nodes_lapsed_by_arrival_generator": len(w.lapsed_generator),
            "lapse_events_by_arrival_answer": (w.lapse_events_arrival
                                               - w.lapse_events_generator),
            # As read: nodes that, at some check in the window, held no lease; and the
            # fewest nodes holding one at a single check (a mass lapse shows there).
            # Includes leases that ran out while their renewal waited to be read here.
            "lapse_events": w.lapse_events, "nodes_lapsed": len(w.lapsed),
            "min_nodes_with_lease": w.min_valid,
            "promotions": w.promotions, "groups_with_active": len(self.grants),
            "refused_streams": w.refused_streams,
            "datagrams_sent": w.datagrams, "grpc_rounds_while_fast": w.grpc_rounds,
            "generator_cpu_s": round(w.cpu_used, 2),
            # per round trip: one round to one coordinator, and reading its answer
            "generator_cpu_us_per_round_trip": (
                round(w.cpu_used / (w.sent * n_coord) * 1e6, 1) if w.sent else None),
            "generator_cpu_sys_s": round(w.cpu_sys, 2),
            "generator_cpu_loop_thread_s": round(w.cpu_loop, 2),
            "generator_cpu_send_s": round(w.cpu_send, 2),
            "generator_cpu_read_s": round(w.cpu_read, 2),
            "generator_gc": {"collections": w.gc_count,
                             "pause_total_ms": [round(p * 1000, 1) for p in w.gc_pause],
                             "pause_max_ms": [round(p * 1000, 1) for p in w.gc_max]},
            "generator_lag_p99_ms": round((_pct(sorted(w.own_lag), 0.99) or 0.0) * 1000, 1),
            "generator_lag_max_ms": round(max(w.own_lag, default=0.0) * 1000, 1),
        }

    def actives_on(self, i: int) -> dict[str, int]:
        """The groups whose active, as last seen, is a member on node i: group -> epoch."""
        s = self.sims[i]
        return {g: self.grants[g][0] for g, m, _ in s.members
                if g in self.grants and self.grants[g][1] == m}

    async def crash(self, i: int, limit: float) -> dict[str, Any]:
        """Node i stops sending (a crash). Returns the time from then until every group
        it held active was seen granted to another member at a newer epoch."""
        victims = self.actives_on(i)
        s = self.sims[i]
        at, wall = time.monotonic(), time.time()
        last_sent = max(s.lease._sent.values(), default=at)
        s.alive = False
        for q in s.queues:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

        def promoted() -> list[float]:
            return [t for (g, e), t in list(self.first_seen.items())
                    if g in victims and e > victims[g]]

        while len(promoted()) < len(victims) and time.monotonic() - at < limit:
            await asyncio.sleep(0.01)
        times = sorted(promoted())
        return {"node": s.name, "groups": sorted(victims), "crashed_at": round(wall, 4),
                # the crash counts from here; its last round went this long before
                "last_round_before_ms": round((at - last_sent) * 1000, 1),
                "actives_on_crashed_node": len(victims), "promoted": len(times),
                "failover_first_s": round(times[0] - at, 3) if times else None,
                "failover_last_s": round(times[-1] - at, 3) if times else None,
                # from the node's last keepalive round: what its coordinators saw
                "failover_from_last_round_s": (round(times[-1] - last_sent, 3)
                                               if times else None)}

    async def stop(self) -> None:
        self._done.set()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._gc_phase)
        for s in self.sims:
            for q in s.queues:
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)
        tasks = [*self._tasks, *([self._checker] if self._checker else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own:
            await self.tr.close()

    # -- one node ---------------------------------------------------------------------

    def _send(self, s: Sim, slot: float) -> float:
        """Node s's round for `slot`, to every coordinator; returns when it was noted."""
        now = time.monotonic()
        late = now - slot if now > slot else 0.0
        w = self.w
        if len(w.send_late) < SAMPLES:
            w.send_late.append(late)
        seq = s.seq = s.seq + 1
        s.late[seq & LATE_MASK] = late
        s.lease.sent(seq, now)  # noted before sending, as the agent does
        w.sent += 1
        routes = s.routes
        payload: bytes | None = None
        req: agent_pb2.KeepaliveRequest | None = None
        for k, q in enumerate(s.queues):
            if routes is not None:  # the agent's rule (agents/fastpath.FastRoutes)
                plan = routes.plan(k, seq, now)
                if plan.skip:  # the coordinator rations this node: not this round
                    continue
                sent = False
                if plan.udp:
                    if payload is None:
                        payload = s.payload()
                    sent = self.tr.send(k, s.index, payload)  # type: ignore[attr-defined]
                    w.datagrams += sent
                if sent and not plan.grpc:
                    continue
                w.grpc_rounds += self.fast
            if req is None:
                req = s.request()
            if q.full():  # a slow coordinator gets the newest rounds, not a backlog
                q.get_nowait()
            q.put_nowait(req)
        return now

    async def _ticker(self) -> None:
        """Every node's rounds, each every `interval` in its own slot: one task and
        one timer for all. A late round is sent at once and the next one goes in the
        node's next slot, so a stall of the generator does not bunch the nodes it
        delayed into one burst for ever after."""
        due, sims, interval, send = self._due, self.sims, self.interval, self._send
        pop, push, monotonic = heapq.heappop, heapq.heappush, time.monotonic
        drain = getattr(self.tr, "drain", None)
        while not self._done.is_set():
            now = monotonic()
            if drain is not None and due and due[0][0] <= now:
                # Answers that arrived are read before the rounds are planned: an agent's
                # receive thread would have heard them (FastRoutes' silence is by arrival).
                drain()
            t0 = time.thread_time()
            while due and due[0][0] <= now:
                at, i = pop(due)
                s = sims[i]
                if not s.alive:
                    continue
                done = send(s, at)
                nxt = at + interval
                if nxt <= done:  # late by a whole interval or more: the next slot ahead
                    nxt = at + max(1, math.ceil((done - at) / interval)) * interval
                push(due, (nxt, i))
            self.send_cpu += time.thread_time() - t0
            wait = due[0][0] - monotonic() if due else 0.01
            await asyncio.sleep(min(max(wait, 0.0005), 0.01))

    def _acked(self, s: Sim, resp: agent_pb2.KeepaliveResponse,
               arrived: float | None = None) -> None:
        """An answer from a coordinator, as the agent counts it (either route), that
        arrived at `arrived` (the kernel's stamp; None: now, as read)."""
        if resp.result != ACK:
            return
        now = time.monotonic()
        arrived = now if arrived is None or arrived > now else arrived
        seq, cid = resp.seq, resp.coordinator_id
        lease = s.lease
        sent_at = lease._sent.get(seq)
        acks = lease._acks.get(seq)
        again = acks is not None and cid in acks
        before = lease._deadline
        extended = lease.acked(seq, cid, resp.ttl_ms)
        w = self.w
        if extended and before is not None and before >= w.started and arrived > before:
            w.lapse_events_arrival += 1  # the renewal itself came after the lease ended
            w.lapsed_arrival.add(s.index)
            # Whose lapse: had this round left at its slot (the answer as quick), would
            # the renewal have arrived before the lease ran out? Then the generator's.
            if arrived - s.late[seq & LATE_MASK] <= before:
                w.lapse_events_generator += 1
                w.lapsed_generator.add(s.index)
        if again:  # the same round answered on both routes: the second is a no-op
            return
        w.acked += 1
        if sent_at is not None and len(w.latencies) < SAMPLES:
            w.latencies.append(arrived - sent_at)
            w.read_latencies.append(now - sent_at)

    def _fast_answer(self, k: int, i: int, resp: agent_pb2.KeepaliveResponse,
                     arrived: float) -> None:
        if i >= len(self.sims):
            return
        s = self.sims[i]
        w = self.w
        if len(w.read_lag) < SAMPLES:
            w.read_lag.append(time.monotonic() - arrived)
        if s.routes is not None:  # an agent reading at once would have heard it then
            s.routes.answered(k, resp.seq, arrived, resp.answer_every_ms / 1000)
        self._acked(s, resp, arrived)

    async def _stream(self, s: Sim, k: int) -> None:
        q = s.queues[k]

        async def requests() -> AsyncIterator[agent_pb2.KeepaliveRequest]:
            while not self._done.is_set():
                req = await q.get()
                if req is None or not s.alive:
                    return
                yield req

        while not self._done.is_set() and s.alive:
            try:
                async for resp in self.tr.keepalive(k, s.index, requests()):
                    if s.routes is not None:  # gRPC gets through, as the agent notes
                        s.routes.grpc_answered(k, time.monotonic(), resp.seq,
                                               resp.answer_every_ms / 1000)
                    self._acked(s, resp)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                if _cancelling():
                    raise
                self.w.refused_streams += 1
            await asyncio.sleep(self.interval)

    async def _watch(self, s: Sim, k: int) -> None:
        while not self._done.is_set():
            call = self.tr.watch(k, s.index, s.name)
            try:
                async for msg in call:
                    for a in msg.assignments:
                        self._assigned(s, a)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                if _cancelling():
                    raise
            finally:
                call.cancel()
            await asyncio.sleep(self.interval)

    def _assigned(self, s: Sim, a: agent_pb2.Assignment) -> None:
        s.seen[a.group] = max(s.seen.get(a.group, 0), a.epoch)
        s.held[a.group] = a.epoch if a.role == ACTIVE else 0
        s.changed()
        if a.role == ACTIVE:
            self.first_seen.setdefault((a.group, a.epoch), time.monotonic())
            old = self.grants.get(a.group)
            if old is None or a.epoch > old[0]:
                if old is not None:
                    self.w.promotions += 1
                self.grants[a.group] = (a.epoch, a.member)

    async def _heartbeat(self) -> None:
        while not self._done.is_set():
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            if len(self.w.own_lag) < 1_000_000:
                self.w.own_lag.append(max(0.0, time.monotonic() - t0 - 0.01))

    async def _check(self) -> None:
        while not self._done.is_set():
            now, w = time.monotonic(), self.w
            valid = 0
            for s in self.sims[:w.nodes]:
                if not s.alive:
                    continue
                ok = s.lease.valid(now)
                valid += ok
                if not ok:
                    if s.was_valid:
                        w.lapse_events += 1  # held a lease, and it ran out
                    w.lapsed.add(s.index)
                s.was_valid = ok
            w.min_valid = valid if w.min_valid < 0 else min(w.min_valid, valid)
            await asyncio.sleep(0.02)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _steady(endpoints: list[str], nodes: int, seconds: float, interval: float,
                  ttl: float, warmup: float, transport: str) -> dict[str, Any]:
    lg = LoadGen(endpoints, interval, ttl, max_nodes=nodes, transport=transport)
    try:
        await lg.add(nodes)
        await asyncio.sleep(warmup)
        lg.mark()
        await asyncio.sleep(seconds)
        return lg.window()
    finally:
        await lg.stop()


def run(endpoints: list[str], nodes: int, seconds: float, interval: float, ttl: float,
        warmup: float = 3.0, transport: str = "grpc") -> dict[str, Any]:
    """Drive `nodes` simulated nodes for `warmup + seconds`; figures over `seconds`."""
    return asyncio.run(_steady(endpoints, nodes, seconds, interval, ttl, warmup, transport))


async def _overload(endpoints: list[str], interval: float, ttl: float, step: int,
                    step_seconds: float, factor: float, seconds: float, max_nodes: int,
                    warmup: float, transport: str) -> dict[str, Any]:
    lg = LoadGen(endpoints, interval, ttl, max_nodes=max_nodes, transport=transport)
    steps: list[dict[str, Any]] = []

    async def measure(length: float) -> dict[str, Any]:
        await asyncio.sleep(warmup)
        lg.mark()
        await asyncio.sleep(length)
        return lg.window()

    try:
        capacity = 0
        while len(lg.sims) < max_nodes:
            await lg.add(min(max(step, len(lg.sims) // 4), max_nodes - len(lg.sims)))
            r = await measure(step_seconds)
            if not clean(r, ttl):  # a blip of the shared machine, or the limit: look again
                steps.append(r)
                r = await measure(step_seconds)
            steps.append(r)
            if not clean(r, ttl):
                break
            capacity = len(lg.sims)
        target = min(max_nodes, max(len(lg.sims), round(factor * capacity)))
        if capacity and target > len(lg.sims):
            await lg.add(target - len(lg.sims))
        return {"capacity_nodes": capacity, "steps": steps,
                "overload": await measure(seconds)}
    finally:
        await lg.stop()


def ramp_then_overload(endpoints: list[str], interval: float, ttl: float, step: int = 8,
                       step_seconds: float = 4.0, factor: float = 2.0,
                       seconds: float = 60.0, max_nodes: int = 2000,
                       warmup: float = 2.0, transport: str = "grpc") -> dict[str, Any]:
    """Calibrate, then overload, on one set of nodes that never stops: add nodes (`step`,
    or a quarter more once that is larger) while each window is `clean` (an unclean one
    is measured once more before it counts); the capacity is the last clean count. Then
    grow to `factor` times that and hold it for `seconds`."""
    return asyncio.run(_overload(endpoints, interval, ttl, step, step_seconds, factor,
                                 seconds, max_nodes, warmup, transport))


def clean(result: dict[str, Any], ttl: float) -> bool:
    """A window the cluster took in its stride, as its agents see it: every node held
    its lease throughout, no group failed over, and the slowest acknowledgements (p99)
    came within half a TTL (not tighter: on a shared machine p99 is mostly its noise)."""
    p99 = result["ack_p99_ms"]
    return (result["nodes_lapsed"] == 0 and result["promotions"] == 0
            and p99 is not None and p99 < ttl / 2 * 1000)


def create_groups(admin_endpoint: str, nodes: int, groups: int | None = None) -> None:
    """Create the groups of `nodes` load nodes (`groups` of them, or one per two nodes)
    with admin ApplyGroups, which adds or updates only the named groups."""
    names = [group_name(g) for g in range(groups or math.ceil(nodes / 2))]
    with grpc.insecure_channel(admin_endpoint) as ch:
        stub = admin_pb2_grpc.AdminServiceStub(ch)
        for k in range(0, len(names), 200):
            req = admin_pb2.ApplyGroupsRequest(groups=[
                admin_pb2.GroupSpec(name=n, mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY)
                for n in names[k:k + 200]], request_id=f"loadgen-groups-{k}")
            for attempt in range(60):  # a leader change on a busy machine: try again
                try:
                    stub.ApplyGroups(req, timeout=30, wait_for_ready=True)
                    break
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == 59:
                        raise
                    time.sleep(0.5)
