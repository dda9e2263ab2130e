"""An agent's conversation with the coordinators: register, keep alive, watch roles.

One keepalive stream per coordinator (the lease needs a majority of them),
one assignment watch (any coordinator will do: promotions wait for the old
active to release, so a lagging watch only delays, it never doubles). The
role decision itself is small and local: a member acts as active at epoch e
only while the assignment says so *and* the lease runs.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import grpc

from vnfha.agents import core
from vnfha.agents.core import AssignmentView, MemberRole
from vnfha.agents.fastpath import FastPathLink, routes_for
from vnfha.agents.lease import QuorumLease
from vnfha.coordinator.security.tls import Stubs, TlsFiles
from vnfha.v1 import agent_pb2, agent_pb2_grpc, types_pb2

log = logging.getLogger("vnfha.agent")


@dataclass(frozen=True)
class HostedMember:
    group: str
    member: str
    priority: int = 100


__all__ = ["AgentSession", "HostedMember", "MemberRole"]


# gRPC's default reconnect back-off grows to minutes; a coordinator that comes back
# must hear from its agents within a TTL or two.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

MIN_REREGISTER_BACKOFF = 0.2
MAX_REREGISTER_BACKOFF = 5.0
# An overloaded cluster refuses new nodes (RESOURCE_EXHAUSTED) for seconds, not minutes:
# the first registration retries at most this far apart.
MAX_OVERLOAD_BACKOFF = 2.0

class FailsafeHook(Protocol):
    """agents/failsafe_peer.py, as the role decision sees it (docs/design.md, "Failsafe")."""

    def holds(self, group: str, epoch: int, now: float) -> bool:
        """The active role of `group` at `epoch` may be kept without a quorum lease."""
        ...

    def blocks(self, group: str, now: float) -> float | None:
        """Until when a claim of `group` must wait (a failsafe promise), if it must."""
        ...


#: a coordinator that has no fast path (disabled, or older) is asked again this often
FAST_DISABLED_RETRY = 60.0
#: a closed `CallRounds` is noticed by its reader within this (seconds), even if the
#: wake-up it was sent was lost to a full queue
ROUNDS_POLL = 0.5


class CallRounds:
    """The rounds for one Keepalive call to one coordinator, read by gRPC's request
    thread for that call. Why one per call: gRPC reads a stream's requests on a thread
    of its own that stays blocked in the iterator after the call ended. With one queue
    shared by every call, each call that broke while a coordinator was down (one every
    0.1 s or so) left a reader behind that took, and threw away, one round later: a
    30 s outage left ~250 of them, every copied round after the coordinator came back
    went to a dead call, and the active's lease came back only with a new fast-path key,
    up to 5 s later, after its standby had heard the quorum and stopped granting it
    failsafe (a CI failure); the readers were also a thread leak that grew with the
    outage. Closing the call's rounds ends its reader."""

    def __init__(self, size: int = 4) -> None:
        self._q: queue.Queue[agent_pb2.KeepaliveRequest | None] = queue.Queue(maxsize=size)
        self._closed = threading.Event()

    def put(self, req: agent_pb2.KeepaliveRequest) -> None:
        """Queue a round; a slow coordinator gets the newest rounds, not a backlog."""
        try:
            self._q.put_nowait(req)
        except queue.Full:
            try:
                self._q.get_nowait()
                self._q.put_nowait(req)
            except (queue.Empty, queue.Full):
                pass

    def close(self) -> None:
        """The call is over: its reader stops at once (or within ROUNDS_POLL)."""
        self._closed.set()
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __iter__(self) -> Iterator[agent_pb2.KeepaliveRequest]:
        while not self._closed.is_set():
            try:
                req = self._q.get(timeout=ROUNDS_POLL)
            except queue.Empty:
                continue
            if req is None or self._closed.is_set():
                return
            yield req

# (group, member, active, epoch, why) -> None; called in order, from one thread.
RoleCallback = Callable[[str, str, bool, int, str], None]
HealthFn = Callable[[str, str], bool]


def new_generation() -> int:
    """A lease generation id: 63 random bits, never 0 (0 means "before generations"),
    so ids are unique across restarts without any stored state."""
    return secrets.randbits(63) or 1


class AgentSession:
    def __init__(self, node: str, members: list[HostedMember], endpoints: list[str],
                 ttl: float, interval: float, address: str = "", drift: float = 0.01,
                 margin: float = 0.05, health: HealthFn | None = None,
                 on_role: RoleCallback | None = None,
                 on_assignments: Callable[[], None] | None = None,
                 on_lease: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 tls: TlsFiles | None = None, failsafe_endpoint: str = "",
                 fastpath: bool = True) -> None:
        self.node = node
        self.members = members
        self.endpoints = endpoints
        self.address = address
        self.interval = interval
        self.lease = QuorumLease(coordinators=len(endpoints), ttl=ttl, drift=drift,
                                 margin=margin)
        self._health = health or (lambda g, m: True)
        self._on_role = on_role or (lambda *a: None)
        self._on_assignments = on_assignments or (lambda: None)
        self._on_lease = on_lease or (lambda deadline: None)
        self._clock = clock
        self._lock = threading.RLock()
        self._roles = {(m.group, m.member): MemberRole() for m in members}
        self._assignments: dict[tuple[str, str], agent_pb2.Assignment] = {}
        self._assignment_revision = -1
        self._seq = 0
        #: the rounds of each coordinator's current Keepalive call (`CallRounds`)
        self._rounds = [CallRounds() for _ in endpoints]
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._registered = threading.Event()
        self._unknown = threading.Event()  # a coordinator answered UNKNOWN_NODE: re-register
        self._threads: list[threading.Thread] = []
        # A stream that breaks reconnects on a channel with the current TLS files.
        self._stubs = Stubs(endpoints, agent_pb2_grpc.AgentServiceStub, tls, FAST_RECONNECT)
        self._calls: list[grpc.Future | None] = [None] * len(endpoints)
        # Per endpoint, its last keepalive answer: (local time, coordinator id, result),
        # for `vnfha agent status` (agents/status.py).
        self.answers: list[tuple[float, str, int] | None] = [None] * len(endpoints)
        self._watch_calls: list[grpc.Future | None] = [None] * len(endpoints)
        self.paused = False  # tests: stop sending keepalives while "alive"
        self._said: dict[str, float] = {}  # rate-limited warnings: key -> last logged
        # Fail-stop: an internal fault of the whole agent (a loop died or stalled), and
        # per-member faults (its VIP cannot be configured, its hook hung). Either way the
        # member never acts as active again in this run and is reported unhealthy.
        self.failed: str | None = None
        self._blocked: dict[tuple[str, str], str] = {}
        self.on_fail: Callable[[str], None] = lambda why: None
        # Whether the owner holds the member's VIP now (reported in keepalives, so a
        # switchover can return once the new active holds it); set by agents/main.py.
        self.vip_held: Callable[[str, str], bool] = lambda group, member: False
        self._beat = self._clock()  # the ticker's last pass (the watchdog reads it)
        # Failsafe (agents/failsafe_peer.py): where peers reach our listener, and the hook
        # the role decision asks; None: failsafe plays no part in this agent's roles.
        self.failsafe_endpoint = failsafe_endpoint
        self.failsafe: FailsafeHook | None = None
        # The keepalive fast path (agents/fastpath.py): UDP datagrams under a key each
        # coordinator issues over this mTLS channel; gRPC whenever it is in doubt. The
        # routes also pace gRPC-only rounds to a coordinator that rations us, so they
        # are kept without a fast path too (never opened: every round goes over gRPC).
        self._routes = routes_for(len(endpoints), ttl, interval, drift, margin)
        self._fast = (FastPathLink(node, list(endpoints), self._on_fast_answer)
                      if fastpath else None)
        self._open_wanted: dict[int, float] = dict.fromkeys(range(len(endpoints)), 0.0)
        self._open_kick = threading.Event()
        #: per coordinator, how long after a failed OpenFastPath to ask again
        self._open_backoff = dict.fromkeys(range(len(endpoints)), MIN_REREGISTER_BACKOFF)
        #: coordinators whose last OpenFastPath failed for want of a connection
        self._open_unreachable: set[int] = set()
        # The lease generation (docs/design.md §3): a new random id at every lease
        # acquisition; the agent acts only on assignments stamped with the current one.
        self._generation = new_generation()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._register()
        targets = [(self._ticker, "ticker"), (self._reregister_loop, "register"),
                   (self._watchdog, "watchdog")]  # each runs until stop()
        if self._fast is not None:
            self._fast.start()
            targets.append((self._fast_opener, "fastpath-open"))
        for i in range(len(self.endpoints)):
            targets.append((lambda i=i: self._keepalive_stream(i), f"keepalive-{i}"))
            targets.append((lambda i=i: self._watch(i), f"watch-{i}"))
        for fn, name in targets:
            t = threading.Thread(target=self.supervised(name, fn), name=f"{self.node}-{name}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for rounds in self._rounds:
            rounds.close()
        for call in [*self._calls, *self._watch_calls]:
            if call is not None:
                call.cancel()
        with self._lock:
            self._release_all("agent stopping")
        self._open_kick.set()
        self._stubs.close()
        for t in self._threads:
            t.join(timeout=2)
        if self._fast is not None:
            self._fast.stop()

    def active_members(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, r in self._roles.items() if r.active_epoch]

    def drain(self, timeout: float = 2.0) -> list[agent_pb2.Handover]:
        """Hand every active role over before stopping (SIGTERM, `vnfha agent drain`).

        Asks the coordinators to demote this node's active members with a handover,
        keeps the lease and the VIPs (the session runs on) until the demotion arrives
        and the release is reported to a quorum, so the standby is promoted at once
        rather than after the lease runs out. Bounded by `timeout`: after it, the
        caller's stop() releases anyway, as a crash-free stop always did."""
        deadline = self._clock() + timeout
        handovers: list[agent_pb2.Handover] = []
        req = agent_pb2.DrainRequest(node=self.node, request_id=f"drain-{self.node}-"
                                     f"{time.time_ns()}")
        asked = False
        for i, stub in enumerate(self._stubs):
            left = deadline - self._clock()
            if left <= 0:
                break
            try:
                handovers = list(stub.Drain(req, timeout=min(left, 1.0)).handovers)
                asked = True
                break
            except grpc.RpcError as e:
                log.warning("drain request failed", extra={
                    "node": self.node, "coordinator": self.endpoints[i],
                    "code": str(e.code()), "detail": e.details()})
        if not asked:
            log.warning("no coordinator took the drain: releasing as a plain stop",
                        extra={"node": self.node})
            return []
        for h in handovers:
            log.info("handing over" if h.to_member else
                     "no eligible standby: releasing without a successor",
                     extra={"node": self.node, "group": h.group, "member": h.member,
                            "to": h.to_member, "epoch": h.epoch})
        # Wait for the demotion (the watch releases the role in order: VNFC told, VIP
        # removed), then for a keepalive carrying the release to be acknowledged.
        while self.active_members() and self._clock() < deadline:
            self._stop.wait(0.005)
        if self.active_members():
            log.warning("demotion did not arrive in time: releasing anyway",
                        extra={"node": self.node, "timeout": timeout})
            return handovers
        # A round sent from now on reports every role released (also one released just
        # before the drain): wait for a quorum to have it, so no one waits for a TTL.
        with self._lock:
            first = self._seq + 1
        self.kick()
        while self._clock() < deadline:
            with self._lock:
                if self.lease.acked_since(first) and self._handed_over(handovers):
                    break
            self._stop.wait(0.005)
        return handovers

    def _handed_over(self, handovers: list[agent_pb2.Handover]) -> bool:
        """Every handover with a successor is done: the group's epoch moved past the
        demotion (the promotion), so the leader itself has the release report (a
        quorum's acks alone need not include the leader's)."""
        return core.handed_over([(h.group, h.member, h.to_member, h.epoch)
                                 for h in handovers], self._views())

    # -- fail-stop -------------------------------------------------------------------------

    def supervised(self, name: str, fn: Callable[[], None], forever: bool = True
                   ) -> Callable[[], None]:
        """Wrap a loop so that an unexpected exception fail-stops the agent instead of
        silently ending the loop (a dead watch thread once left a member "active,
        healthy" with no VIP)."""
        def run() -> None:
            try:
                fn()
            except Exception as e:
                if not self._stop.is_set():
                    self.fail(f"internal loop {name!r} died: {type(e).__name__}: {e}")
            else:
                if forever and not self._stop.is_set():
                    self.fail(f"internal loop {name!r} ended unexpectedly")
        return run

    def fail(self, why: str) -> None:
        """Fail-stop: release every role (VNFC told, VIP removed), report every member
        unhealthy from now on, never act as active again in this run; one log line."""
        if self.failed is not None:
            return
        self.failed = why  # first, without the lock: the lock may be what is stuck
        log.error("agent failed: released every role and reports its members unhealthy; "
                  "restart it", extra={"node": self.node, "reason": why})
        try:
            self.on_fail(why)
        except Exception as e:  # the owner's fast path (guardian) must not stop the rest
            log.error("fail-stop callback failed", extra={"error": str(e)})
        if self._lock.acquire(timeout=5.0):
            try:
                self._release_all(f"agent failed: {why}")
            finally:
                self._lock.release()
        self.kick()

    def block(self, group: str, member: str, why: str) -> None:
        """A member-level fault: release it, report it unhealthy, never claim it again."""
        with self._lock:
            if (group, member) in self._blocked:
                return
            self._blocked[(group, member)] = why
            log.error("member cannot act as active: released and reported unhealthy",
                      extra={"node": self.node, "group": group, "member": member,
                             "reason": why})
            role = self._roles.get((group, member))
            if role is not None and role.active_epoch:
                self._safe_role(group, member, False, role.active_epoch, why)
                role.active_epoch = 0
        self.kick()

    def fault(self, group: str, member: str) -> str | None:
        """Why this member may not act (agent or member fault), if so."""
        return self.failed or self._blocked.get((group, member))

    def _safe_role(self, group: str, member: str, active: bool, epoch: int,
                   why: str) -> str | None:
        """Tell the owner of a role change; the error if it raised (the change did not
        happen in full, e.g. the VIP could not be configured)."""
        try:
            self._on_role(group, member, active, epoch, why)
            return None
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            log.error("role change failed", extra={
                "node": self.node, "group": group, "member": member, "active": active,
                "error": error})
            return error

    def _watchdog(self) -> None:
        """Fail-stop when the ticker (keepalives, the lease-deadline release) stalls.

        A whole-process freeze (SIGSTOP, VM pause) stalls the watchdog too: it notices
        that it woke late itself and does not blame the ticker for it."""
        period = max(self.interval, 0.05)
        bound = max(2.0, 10 * self.interval)
        last = self._clock()
        while not self._stop.wait(period):
            now = self._clock()
            verdict = core.watchdog(now, last, period, self._beat, bound)
            last = now
            if verdict == "frozen":  # we were frozen with everyone else: start over
                self._beat = now
            elif verdict == "stalled" and self.failed is None:
                self.fail(f"the keepalive ticker has been stuck for {now - self._beat:.1f} s")

    # -- role view -------------------------------------------------------------------------

    def role(self, group: str, member: str) -> MemberRole:
        with self._lock:
            r = self._roles[(group, member)]
            return MemberRole(r.seen_epoch, r.active_epoch)

    def lease_view(self) -> tuple[float | None, int, int, frozenset[str], dict[str, int]]:
        """(deadline, quorum, cluster size, announced ids, acks per id), read at once."""
        with self._lock:
            lease = self.lease
            return (lease.deadline(), lease.quorum, lease.size, lease.announced,
                    dict(lease.acks_by))

    @property
    def assignment_revision(self) -> int:
        """Revision of the assignment snapshot acted on (-1: none yet)."""
        return self._assignment_revision

    @property
    def generation(self) -> int:
        """This agent's current lease generation (a new one at every lease acquisition)."""
        with self._lock:
            return self._generation

    def assignment(self, group: str, member: str) -> agent_pb2.Assignment | None:
        """The latest assignment seen for a member (role, epoch, VIP), if any."""
        with self._lock:
            return self._assignments.get((group, member))

    @property
    def role_lock(self) -> threading.RLock:
        """Held while roles are decided: a failsafe grant and its promise are made under
        it, so a claim decided at the same moment sees the promise."""
        return self._lock

    def kick(self) -> None:
        """Send a keepalive round now (e.g. to confirm a release at once)."""
        self._kick.set()

    # -- registration ----------------------------------------------------------------------

    def _register_request(self) -> agent_pb2.RegisterNodeRequest:
        return agent_pb2.RegisterNodeRequest(
            node=self.node, address=self.address,
            members=[agent_pb2.MemberSpec(group=m.group, member=m.member, priority=m.priority)
                     for m in self.members],
            # This agent's config is what the VM hosts: members dropped from it since
            # the last registration go (the coordinator refuses if one is active).
            remove_undeclared=True, failsafe_endpoint=self.failsafe_endpoint)

    def _register(self) -> None:
        """Register, retrying for up to 30 s; an overloaded cluster (RESOURCE_EXHAUSTED:
        it takes no new nodes for now) is waited out with a growing back-off and does
        not use up the 30 s: the cluster is there, just busy."""
        req = self._register_request()
        deadline = self._clock() + 30
        last: Exception | None = None
        wait = MIN_REREGISTER_BACKOFF
        while not self._stop.is_set() and self._clock() < deadline:
            busy = False
            for stub in self._stubs:
                try:
                    stub.RegisterNode(req, timeout=3)
                    self._registered.set()
                    return
                except grpc.RpcError as e:
                    last = e
                    if e.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.FAILED_PRECONDITION):
                        raise RuntimeError(f"registration of {self.node} refused: "
                                           f"{e.details()}") from e
                    if e.code() == grpc.StatusCode.NOT_FOUND:
                        # The group may not be applied yet (coordinator still starting).
                        log.warning("registration refused, will retry",
                                    extra={"node": self.node, "detail": e.details()})
                        break
                    busy = busy or e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            if busy:
                if self._say_once("register:overloaded", every=10.0):
                    log.warning("registration deferred: the coordinators are overloaded "
                                "and take no new nodes for now; retrying with back-off",
                                extra={"node": self.node, "retry_in_s": wait,
                                       "detail": last.details() if isinstance(
                                           last, grpc.RpcError) else str(last)})
                deadline = max(deadline, self._clock() + wait + 30)
                self._stop.wait(wait)
                wait = min(wait * 2, MAX_OVERLOAD_BACKOFF)
                continue
            self._stop.wait(0.2)
        raise RuntimeError(f"could not register node {self.node}: {last}")

    def _reregister_loop(self) -> None:
        """Register again whenever a coordinator says it does not know this node (its
        state was reset or restored from an old backup): without it every lease lapses
        until someone restarts the agent. Attempts back off 0.2 s -> 5 s, so a
        coordinator that answers UNKNOWN_NODE for a while costs a few writes, not a storm."""
        backoff, last = MIN_REREGISTER_BACKOFF, -1e9
        while not self._stop.is_set():
            if not self._unknown.wait(0.5):
                continue
            now = self._clock()
            if now - last > 30.0:
                backoff = MIN_REREGISTER_BACKOFF
            wait = last + backoff - now
            if wait > 0 and self._stop.wait(wait):
                return
            last = self._clock()
            backoff = min(backoff * 2, MAX_REREGISTER_BACKOFF)
            self._unknown.clear()
            revision = self._register_once()
            if revision is None:
                self._unknown.set()  # try again after the back-off
                continue
            self._after_reregister(revision)

    def _register_once(self) -> int | None:
        """One registration attempt over the coordinators in turn; the revision it got."""
        req = self._register_request()
        for i, stub in enumerate(self._stubs):
            try:
                return int(stub.RegisterNode(req, timeout=3).revision)
            except grpc.RpcError as e:
                if self._say_once(f"register:{i}:{e.code()}", every=10.0):
                    log.warning("re-registration failed", extra={
                        "node": self.node, "coordinator": self.endpoints[i],
                        "code": str(e.code()), "detail": e.details()})
        return None

    def _after_reregister(self, revision: int) -> None:
        """A registration commits after everything this agent has seen, so a revision
        below the newest one seen means the coordinators' history was reset: drop any
        role, and follow the new history (revisions and epochs start again)."""
        with self._lock:
            reset = core.history_reset(revision, self._assignment_revision)
            if reset:
                self._release_all("coordinator state was reset")
                self._assignment_revision = -1
                for role in self._roles.values():
                    role.seen_epoch = 0
        # Without a reset this is routine: right after the agent starts, a coordinator that
        # has not applied the first registration yet answers UNKNOWN_NODE too.
        (log.warning if reset else log.info)(
            "node registered again after a coordinator did not know it",
            extra={"node": self.node, "revision": revision, "history_reset": reset})
        self.kick()

    # -- keepalives ------------------------------------------------------------------------

    def _ticker(self) -> None:
        next_tick = self._clock()
        while not self._stop.is_set():
            now = self._clock()
            self._beat = now
            wake_at = core.wake_at(next_tick, self.lease.deadline(), now)
            self._kick.wait(max(0.0, wake_at - now))
            kicked = self._kick.is_set()
            self._kick.clear()
            if self._stop.is_set():
                break
            self.reconcile("tick")
            if kicked or self._clock() >= next_tick:
                if not self.paused:
                    self._send_round()
                next_tick = self._clock() + self.interval

    def _send_round(self) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
            reports = []
            for m in self.members:
                r = self._roles[(m.group, m.member)]
                healthy = core.report_healthy(self.fault(m.group, m.member),
                                              self._health(m.group, m.member))
                reports.append(agent_pb2.MemberReport(
                    group=m.group, member=m.member,
                    health=types_pb2.HEALTH_HEALTHY if healthy else types_pb2.HEALTH_UNHEALTHY,
                    seen_epoch=r.seen_epoch, active_epoch=r.active_epoch,
                    vip_held=bool(r.active_epoch) and self.vip_held(m.group, m.member)))
            req = agent_pb2.KeepaliveRequest(node=self.node, seq=seq, members=reports,
                                             generation=self._generation,
                                             leased=self.lease.valid(self._clock()))
            # Noted before sending: the lease counts from here, never from the ack.
            now = self._clock()
            self.lease.sent(seq, now)
            plans = [self._routes.plan(i, seq, now) for i in range(len(self.endpoints))]
        for i, plan in enumerate(plans):
            if self._fast is not None:
                if plan.reopen:
                    self._want_open(i)
                if plan.fell_back and self._say_once("fallback", every=300.0):
                    log.warning("keepalive fast path gets no answers: keeping alive over "
                                "gRPC (is UDP to the coordinator blocked?)", extra={
                                    "node": self.node, "coordinator": self.endpoints[i]})
                if plan.udp and self._fast.send(i, req) and not plan.grpc:
                    continue
            if plan.skip:  # it rations us: it would drop this round unanswered
                continue
            self._rounds[i].put(req)

    def _keepalive_stream(self, i: int) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            rounds = self._rounds[i] = CallRounds()  # rounds from now go to this call
            with self._lock:  # a copy on it goes at once (agents/fastpath.py)
                self._routes.stream_started(i)
            first = True
            try:
                call = self._stubs[i].Keepalive(iter(rounds))
                self._calls[i] = call
                for resp in call:
                    backoff = 0.05
                    if first:  # it is reachable: a key it refused meanwhile, ask now
                        first = False
                        self._open_now(i)
                    self._on_ack(resp)
                    self.answers[i] = (self._clock(), resp.coordinator_id, resp.result)
                    with self._lock:  # gRPC gets through (agents/fastpath.py)
                        self._routes.grpc_answered(i, self._clock(), resp.seq,
                                                   resp.answer_every_ms / 1000)
            except grpc.RpcError as e:
                if self._stop.is_set():
                    return
                log.debug("keepalive stream broke", extra={"node": self.node,
                                                            "coordinator": self.endpoints[i],
                                                            "code": str(e.code())})
                self._want_open(i)  # a restarted coordinator forgot our fast-path key
            finally:
                rounds.close()  # ends gRPC's request thread for this call
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.interval * 2)

    def _say_once(self, key: str, every: float = 30.0) -> bool:
        """Rate limit for warnings that would otherwise repeat every keepalive round."""
        now = self._clock()
        last = self._said.get(key)
        if last is not None and now - last < every:
            return False
        self._said[key] = now
        return True

    def _on_membership(self, resp: agent_pb2.KeepaliveResponse) -> None:
        """Count the quorum against the membership the coordinators expire us with."""
        with self._lock:
            before = self.lease.deadline()
            changed = self.lease.announce(resp.coordinator_id, resp.cluster_members)
            if not changed:
                return
            self._lease_changed(before)
            why = self.lease.unjustified()
            deadline = self.lease.deadline()
            self._on_lease(deadline or 0.0)  # may be earlier now: tell the guardian
            facts = {"node": self.node, "coordinator": resp.coordinator_id,
                     "members": sorted(self.lease.announced), "quorum": self.lease.quorum,
                     "listed": len(self.endpoints)}
        log.info("cluster membership announced", extra=facts)
        if why is not None and self._say_once("unjustified:" + why):
            log.error("not holding a lease: cannot justify one", extra={
                "node": self.node, "reason": why})
        self.reconcile("cluster membership changed")

    def _on_ack(self, resp: agent_pb2.KeepaliveResponse) -> None:
        if resp.cluster_members:
            self._on_membership(resp)
        if resp.result == agent_pb2.KEEPALIVE_RESULT_ACK:
            with self._lock:
                counted = self.lease.counts(resp.coordinator_id)
                members = sorted(self.lease.announced)
            if not counted and self._say_once("stranger:" + resp.coordinator_id, every=300.0):
                log.error("ignoring acknowledgements of a coordinator outside the "
                          "announced cluster", extra={
                              "node": self.node, "coordinator": resp.coordinator_id,
                              "members": members})
            with self._lock:
                before = self.lease.deadline()
                extended = self.lease.acked(resp.seq, resp.coordinator_id, resp.ttl_ms)
                if extended:
                    self._lease_changed(before)
                    self._on_lease(self.lease.deadline() or 0.0)
            if extended:
                self.reconcile("lease renewed")
            self._check_watch_lag(resp.revision)
        elif resp.result == agent_pb2.KEEPALIVE_RESULT_UNAVAILABLE:
            if self._say_once("unavailable:" + resp.coordinator_id, every=10.0):
                log.warning("coordinator is not acknowledging keepalives", extra={
                    "node": self.node, "coordinator": resp.coordinator_id,
                    "detail": resp.message})
        elif resp.result == agent_pb2.KEEPALIVE_RESULT_UNKNOWN_NODE:
            if self._say_once("unknown:" + resp.coordinator_id, every=10.0):
                log.info("coordinator does not know this node; registering again",
                         extra={"node": self.node, "coordinator": resp.coordinator_id})
            self._unknown.set()
        else:
            log.warning("keepalive refused", extra={"node": self.node,
                                                    "coordinator": resp.coordinator_id,
                                                    "detail": resp.message})

    def _check_watch_lag(self, ack_revision: int) -> None:
        """Watch again when acknowledgements are ahead of the assignments while a held
        role waits for its new stamp (core.watch_lags; after a coordinator outage)."""
        with self._lock:
            waiting = any(
                r.active_epoch and (a := self._assignments.get(k)) is not None
                and a.generation not in (0, self._generation)
                for k, r in self._roles.items())
            lags = core.watch_lags(ack_revision, self._assignment_revision, waiting)
            calls = list(self._watch_calls) if lags else []
        if not lags or not self._say_once("watch-lag", every=0.5):
            return
        log.info("assignments lag behind acknowledgements while a held role waits for "
                 "its new lease's stamp: watching again", extra={
                     "node": self.node, "ack_revision": ack_revision,
                     "revision": self._assignment_revision})
        for i, call in enumerate(calls):
            # On a new connection: after a long cut (an nftables drop), the old one's TCP
            # retransmission back-off held the re-stamp back past the failsafe grants.
            self._stubs.renew(i)
            if call is not None:
                call.cancel()  # the watch loop subscribes again: a fresh snapshot

    # -- the keepalive fast path -----------------------------------------------------------

    def _want_open(self, i: int) -> None:
        """Ask the opener thread for a new fast-path key from coordinator i."""
        if self._fast is None:
            return
        with self._lock:
            self._open_wanted.setdefault(i, self._clock())
        self._open_kick.set()

    def _open_now(self, i: int) -> None:
        """Coordinator i answered over gRPC: if its last OpenFastPath failed for want of a
        connection, ask again now, not after the back-off that grew while it was down (up
        to MAX_REREGISTER_BACKOFF): the lease is cheaper to keep on datagrams, and until
        the key is in only copied rounds renew it there. A refusal the coordinator gave
        (no fast path, overloaded) keeps its wait."""
        if self._fast is None:
            return
        with self._lock:
            if i not in self._open_unreachable or i not in self._open_wanted:
                return
            self._open_unreachable.discard(i)
            self._open_backoff[i] = MIN_REREGISTER_BACKOFF
            self._open_wanted[i] = min(self._open_wanted[i], self._clock())
        self._open_kick.set()

    def _fast_opener(self) -> None:
        """Open (and re-open) fast-path sessions over the mTLS channel, off the ticker's
        thread: each OpenFastPath is a blocking call to one coordinator."""
        assert self._fast is not None
        backoff = self._open_backoff
        while not self._stop.is_set():
            self._open_kick.wait(0.5)
            self._open_kick.clear()
            now = self._clock()
            with self._lock:
                due = [i for i, at in self._open_wanted.items() if at <= now]
            for i in due:
                if self._stop.is_set():
                    return
                retry = self._open_one(i)
                with self._lock:
                    if retry is None:
                        self._open_wanted.pop(i, None)
                        backoff[i] = MIN_REREGISTER_BACKOFF
                    else:
                        delay = retry if retry > 0 else backoff[i]
                        backoff[i] = min(backoff[i] * 2, MAX_REREGISTER_BACKOFF)
                        self._open_wanted[i] = self._clock() + delay

    def _open_one(self, i: int) -> float | None:
        """One OpenFastPath call: None when a key is installed, else the seconds to wait
        before asking again (0: the usual back-off)."""
        assert self._fast is not None
        with self._lock:
            self._open_unreachable.discard(i)
        try:
            resp = self._stubs[i].OpenFastPath(agent_pb2.OpenFastPathRequest(node=self.node),
                                               timeout=1.0)
            self._fast.install(i, resp)
        except grpc.RpcError as e:
            code = e.code()
            if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED):
                if self._say_once(f"nofast:{i}", every=3600.0):
                    log.info("coordinator has no keepalive fast path: keeping alive over "
                             "gRPC", extra={"node": self.node,
                                            "coordinator": self.endpoints[i],
                                            "detail": e.details()})
                return FAST_DISABLED_RETRY
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                with self._lock:
                    self._open_unreachable.add(i)
            log.debug("fast path not opened", extra={"node": self.node,
                                                     "coordinator": self.endpoints[i],
                                                     "code": str(code)})
            return 0.0
        except (OSError, ValueError) as e:  # the address does not resolve, a bad key size
            if self._say_once(f"fastbad:{i}", every=300.0):
                log.warning("fast path not usable", extra={
                    "node": self.node, "coordinator": self.endpoints[i], "error": str(e)})
            return FAST_DISABLED_RETRY
        with self._lock:
            self._routes.opened(i, self._clock())
        log.debug("fast path opened", extra={"node": self.node,
                                             "coordinator": self.endpoints[i]})
        return None

    def _on_fast_answer(self, i: int, resp: agent_pb2.KeepaliveResponse) -> None:
        """An authenticated datagram answer from coordinator i (receive thread)."""
        if self._stop.is_set():  # stopping: the roles are released, nothing may renew
            return
        with self._lock:
            restored = self._routes.answered(i, resp.seq, self._clock(),
                                             resp.answer_every_ms / 1000)
        # `vnfha agent status` shows the last answer per coordinator, whichever way it came
        self.answers[i] = (self._clock(), resp.coordinator_id, resp.result)
        if restored:
            log.info("keepalive fast path answers again", extra={
                "node": self.node, "coordinator": self.endpoints[i]})
        self._on_ack(resp)

    def _lease_changed(self, before: float | None) -> None:
        """Under the lock, after the deadline moved: a lease that runs again after not
        running starts a new generation, and a round tells the leader at once."""
        if core.starts_generation(before, self.lease.deadline(), self._clock()):
            self._generation = new_generation()
            log.info("lease acquired: new lease generation", extra={"node": self.node})
            self._kick.set()

    # -- assignments -----------------------------------------------------------------------

    def _watch(self, i: int) -> None:
        """Watch one coordinator. Every coordinator is watched and the snapshot with
        the highest revision wins, so a lagging or cut-off coordinator cannot hold
        back a demotion (revisions follow the one replicated order)."""
        while not self._stop.is_set():
            try:
                call = self._stubs[i].WatchAssignments(
                    agent_pb2.WatchAssignmentsRequest(node=self.node))
                self._watch_calls[i] = call
                for resp in call:
                    with self._lock:
                        if not core.newer_snapshot(resp.revision, self._assignment_revision):
                            continue
                        self._assignment_revision = resp.revision
                        self._assignments = {(a.group, a.member): a for a in resp.assignments}
                        self.reconcile(f"assignments at revision {resp.revision}")
                        # Under the same lock as role changes, so the owner's view of
                        # "not active" cannot race a promotion.
                        self._on_assignments()
            except grpc.RpcError:
                pass
            if self._stop.is_set():
                return
            self._stop.wait(0.1)

    # -- the local role decision -----------------------------------------------------------

    def _views(self) -> dict[tuple[str, str], AssignmentView]:
        """The assignments as the core reads them."""
        return {k: AssignmentView(active=a.role == types_pb2.ROLE_ACTIVE, epoch=a.epoch,
                                  vip=a.vip, generation=a.generation)
                for k, a in self._assignments.items()}

    def reconcile(self, why: str) -> None:
        """Feed the core (agents/core.py) and carry out its effects, in order."""
        released = claimed = False
        with self._lock:
            now = self._clock()
            lease_ok = self.lease.valid(now)
            faults = {k: f for k in self._roles if (f := self.fault(*k)) is not None}
            views = self._views()
            kept: set[core.Key] = set()
            blocked: set[core.Key] = set()
            hook = self.failsafe
            if hook is not None:  # the failsafe loop's answers, as inputs to the core
                for key, role in self._roles.items():
                    view = views.get(key)
                    if role.active_epoch and view is not None and hook.holds(
                            key[0], view.epoch, now):
                        kept.add(key)
                    if not role.active_epoch and hook.blocks(key[0], now) is not None:
                        blocked.add(key)
            steps = core.reconcile(self._roles, views, lease_ok, faults, why, kept, blocked,
                                   generation=self._generation)
            for step in steps:
                role = self._roles[step.key]
                for effect in step.effects:
                    released |= self._carry_out(role, effect)
                    # report a claim at once: a switchover waits for this report
                    claimed |= effect.kind == "claim"
                role.seen_epoch = step.seen_epoch
        if released or claimed:
            self.kick()

    def _carry_out(self, role: MemberRole, effect: core.RoleEffect) -> bool:
        """One role effect; True if a role was released (a round must report it)."""
        if effect.kind == "release":
            self._safe_role(effect.group, effect.member, False, effect.epoch, effect.reason)
            role.active_epoch = 0
            return True
        role.active_epoch = effect.epoch
        error = self._safe_role(effect.group, effect.member, True, effect.epoch, effect.reason)
        if error is None:
            return False
        # Never "active" without its VIP: undo (block releases it), and keep it from
        # trying again (reported unhealthy: a failover).
        self.block(effect.group, effect.member, f"could not take the active role: {error}")
        return True

    def _release_all(self, why: str) -> None:
        for effect in core.release_all(self._roles, why):
            self._carry_out(self._roles[(effect.group, effect.member)], effect)
