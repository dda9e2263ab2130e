"""Failsafe leases over the network: the agent's FailsafeService and the requester loop.

The rules are in agents/failsafe.py (pure); this module is the I/O around them:

* **Granter**: a gRPC listener (mTLS with the agent's own certificate) answering
  RequestLease. The caller's node comes from its verified certificate; the verdict
  and the promise are made under the session's role lock, so a claim decided at the
  same moment sees the promise (or the grant sees the claim and refuses).
* **Requester**: a loop that, for every member this agent holds active while
  failsafe is on and no coordinator quorum has been heard for a keepalive interval,
  asks every other member of the group (in parallel, bounded by a timeout), renews
  well before expiry, and tells the session to re-decide roles when a grant set is
  complete or ends. It also wakes exactly when the earliest grant ends, so the role
  is dropped on time; the guardian and the kernel lease get the same deadline
  (`deadline()`), so a frozen agent loses the VIP then too.

Nothing received is logged raw: peer answers are reduced to granted/refused and a
bounded reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from vnfha.agents import failsafe as fs
from vnfha.agents.session import FAST_RECONNECT, AgentSession
from vnfha.coordinator import names
from vnfha.coordinator.security.authz import SyncAuthorizer
from vnfha.coordinator.security.identity import IdentityError, from_auth_context
from vnfha.coordinator.security.tls import ChannelSource, ReloadingServerCredentials, TlsFiles
from vnfha.v1 import failsafe_pb2, failsafe_pb2_grpc, types_pb2

log = logging.getLogger("vnfha.agent.failsafe")

REFUSAL_LOG_EVERY = 5.0  # seconds: one "failsafe lease refused" line per group and reason


@dataclass
class _Engaged:
    epoch: int
    since: float
    member: str = ""
    grantors: tuple[str, ...] = ()
    renewals: int = 0


class FailsafePeer(failsafe_pb2_grpc.FailsafeServiceServicer):
    def __init__(self, session: AgentSession, bind: str, tls: TlsFiles | None, *,
                 interval: float, span: float, drift: float, margin: float,
                 on_deadline: Callable[[float], None] = lambda d: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._bind = bind
        self._tls = tls
        self._interval = interval
        self._span = span  # how long one acknowledged keepalive round extends the lease
        self._clock = clock
        self._on_deadline = on_deadline
        self.promises = fs.Promises(started=clock())
        self.grants = fs.Grants(drift=drift, margin=margin)
        self._glock = threading.Lock()  # guards self.grants (requester loop vs session)
        self._engaged: dict[str, _Engaged] = {}
        self._channels: dict[str, ChannelSource] = {}
        self._pool = futures.ThreadPoolExecutor(8, thread_name_prefix="failsafe-ask")
        self._server: grpc.Server | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = 0
        # counters for metrics (agents/metrics.py): grants given/refused, engagements
        self.answered = {"granted": 0, "refused": 0}
        self.engagements: dict[str, int] = {}
        self._setting: dict[str, float] = {}  # group -> failsafe lease last seen

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> int:
        """Serve on `bind` (host:port; "" serves nothing) and start the requester loop."""
        if self._bind:
            self.authorizer = SyncAuthorizer(tls=self._tls is not None)
            self._server = grpc.server(futures.ThreadPoolExecutor(
                4, thread_name_prefix="failsafe-rx"), options=[("grpc.so_reuseport", 0)],
                interceptors=[self.authorizer])
            failsafe_pb2_grpc.add_FailsafeServiceServicer_to_server(self, self._server)
            if self._tls is not None:
                creds = ReloadingServerCredentials(self._tls, serves_as="node").credentials()
                self.port = self._server.add_secure_port(self._bind, creds)
            else:  # config refuses this outside tests: no grant without a certificate
                self.port = self._server.add_insecure_port(self._bind)
            if self.port == 0:
                raise OSError(f"cannot listen on {self._bind} (failsafe.port)")
            self._server.start()
        # An exception fail-stops the agent; returning (after stop()) does not.
        self._thread = threading.Thread(
            target=self._session.supervised("failsafe", self._loop, forever=False),
            name="failsafe", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop(grace=0.2).wait(2)
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for ch in self._channels.values():
            ch.close()

    # -- what the session asks (under its role lock) -----------------------------------------

    def holds(self, group: str, epoch: int, now: float) -> bool:
        """May the active role of `group` at `epoch` be kept without a quorum lease?"""
        view = self._view(group)
        if view is None or view.lease <= 0 or view.epoch != epoch:
            return False
        with self._glock:
            return self.grants.holds(group, epoch, self._peers(view), now)

    def blocks(self, group: str, now: float) -> float | None:
        """Until when a claim of `group` must wait for a promise this agent gave."""
        view = self._view(group)
        return self.promises.blocks(group, now, view.lease if view is not None else 0.0)

    def deadline(self, quorum: float | None) -> float:
        """The latest time every held VIP may stay: for each held member the later of
        the quorum lease and its failsafe grants, and the earliest of those over the
        members (the guardian and kernel lease have one deadline for the whole agent)."""
        ends = []
        now = self._clock()
        for m in self._session.members:
            role = self._session.role(m.group, m.member)
            if not role.active_epoch:
                continue
            end = quorum or 0.0
            view = self._view(m.group)
            if view is not None and view.lease > 0 and view.epoch == role.active_epoch:
                with self._glock:
                    until = self.grants.until(m.group, view.epoch, self._peers(view))
                if until is not None and until > now:
                    end = max(end, until)
            ends.append(end)
        return min(ends) if ends else (quorum or 0.0)

    # -- the granter -------------------------------------------------------------------------

    def RequestLease(self, request: failsafe_pb2.RequestLeaseRequest,
                     context: grpc.ServicerContext) -> failsafe_pb2.RequestLeaseResponse:
        if not (names.is_name(request.group) and names.is_name(request.member)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"group and member must be {names.NAME_RULE}")
        try:
            who = from_auth_context(context.auth_context(), context.peer(),
                                    self._tls is not None)
            caller = who.name if who.kind == "node" else ""
        except IdentityError:
            caller = ""
        session = self._session
        with session.role_lock:
            now = self._clock()
            view = self._view(request.group)
            role = (session.role(request.group, view.member) if view is not None else None)
            verdict = fs.grant(
                view, caller_node=caller, requester=request.member, epoch=request.epoch,
                hears_quorum=not fs.quorum_quiet(session.lease.deadline(), now, self._span,
                                                 self._interval, rounds=fs.GRANTER_ROUNDS),
                acting_active=bool(role is not None and role.active_epoch))
            if verdict.granted:
                until = self.promises.promise(request.group, now, verdict.lease)
        self.answered["granted" if verdict.granted else "refused"] += 1
        if verdict.granted:
            if session._say_once(f"failsafe-grant:{request.group}:{request.member}", 5.0):
                log.info("failsafe lease granted", extra={
                    "event": {"kind": "failsafe_granted", "node": session.node,
                              "group": request.group, "to": request.member,
                              "epoch": request.epoch, "lease": verdict.lease,
                              "promise_left": round(until - now, 3)}})
            return failsafe_pb2.RequestLeaseResponse(granted=True,
                                                     lease_ms=int(verdict.lease * 1000))
        if session._say_once(f"failsafe-refuse:{request.group}:{verdict.reason[:40]}",
                             REFUSAL_LOG_EVERY):
            log.info("failsafe lease refused", extra={
                "node": session.node, "group": request.group, "to": request.member,
                "caller": caller, "reason": verdict.reason})
        return failsafe_pb2.RequestLeaseResponse(granted=False, reason=verdict.reason)

    # -- the requester -----------------------------------------------------------------------

    def _view(self, group: str) -> fs.GroupView | None:
        """The failsafe view of `group` from this agent's last assignment."""
        member = next((m.member for m in self._session.members if m.group == group), None)
        if member is None:
            return None
        a = self._session.assignment(group, member)
        if a is None:
            return None
        peers = tuple(fs.Peer(p.member, p.node, p.endpoint, p.active) for p in a.peers)
        active = member if a.role == types_pb2.ROLE_ACTIVE else next(
            (p.member for p in peers if p.active), "")
        return fs.GroupView(group=group, member=member, epoch=a.epoch, active=active,
                            lease=a.failsafe_lease_ms / 1000.0, peers=peers)

    @staticmethod
    def _peers(view: fs.GroupView) -> frozenset[str]:
        return frozenset(p.member for p in view.peers)

    def _stub(self, endpoint: str) -> Any:
        src = self._channels.get(endpoint)
        if src is None:
            # The granter is another member's agent: only a node certificate passes.
            src = self._channels[endpoint] = ChannelSource(endpoint, self._tls, FAST_RECONNECT,
                                                           server_kind="node")
        return failsafe_pb2_grpc.FailsafeServiceStub(src.get())

    def _ask(self, view: fs.GroupView, peer: fs.Peer, timeout: float) -> None:
        sent = self._clock()  # noted before sending: the grant counts from here
        granted, lease, why = False, 0.0, "unreachable"
        if peer.endpoint:
            try:
                resp = self._stub(peer.endpoint).RequestLease(
                    failsafe_pb2.RequestLeaseRequest(group=view.group, member=view.member,
                                                     epoch=view.epoch), timeout=timeout)
                granted, lease = resp.granted, resp.lease_ms / 1000.0
                why = names.safe(resp.reason)[:200] if not granted else ""
            except grpc.RpcError as e:
                why = f"unreachable ({e.code().name})"
        else:
            why = "the peer has no failsafe listener"
        with self._glock:
            if granted and lease > 0:
                # The granter promised `lease`; count no more than our own setting says
                # (the two differ only while a change of the setting propagates).
                self.grants.granted(view.group, view.epoch, peer.member, sent,
                                    min(lease, view.lease))
            else:
                self.grants.refused(view.group, view.epoch, peer.member)
        if not granted and self._session._say_once(
                f"failsafe-ask:{view.group}:{peer.member}:{why[:30]}", 5.0):
            log.info("failsafe lease not granted", extra={
                "node": self._session.node, "group": view.group, "peer": peer.member,
                "reason": why})

    def _loop(self) -> None:
        while not self._stop.is_set():
            wake = self._round()
            self._stop.wait(max(0.001, wake - self._clock()))

    def _round(self) -> float:
        """One pass over the hosted members; returns when to look again at the latest."""
        now = self._clock()
        wake = now + self._interval / 2
        session = self._session
        quiet = fs.quorum_quiet(session.lease.deadline(), now, self._span, self._interval,
                                rounds=fs.REQUESTER_ROUNDS)
        asks: list[futures.Future[None]] = []
        for m in session.members:
            view = self._view(m.group)
            role = session.role(m.group, m.member)
            lease = view.lease if view is not None else 0.0
            if self._setting.get(m.group, 0.0) != lease:
                self._setting[m.group] = lease
                log.info("failsafe setting changed", extra={
                    "node": session.node, "group": m.group, "lease": lease,
                    "peers": len(view.peers) if view is not None else 0})
            needed = (view is not None and view.lease > 0 and role.active_epoch
                      and view.active == m.member and view.epoch == role.active_epoch)
            if not needed:
                with self._glock:
                    self.grants.clear(m.group)
                self._end(m.group, "not active")
                continue
            a = session.assignment(m.group, m.member)
            if not quiet and not fs.awaits_restamp(
                    role.active_epoch, a.epoch if a is not None else 0,
                    a.generation if a is not None else 0, session.generation):
                self._end(m.group, "quorum heard again")
                continue
            # Quiet, or the quorum lease is back under a new generation and the leader
            # has not re-stamped this role under it yet: the grants bridge that moment,
            # renewed until the stamp comes (docs/design.md "Failsafe"; a leader that
            # hears us last would otherwise see the role drop and promote it again).
            assert view is not None
            peers = self._peers(view)
            with self._glock:
                due = self.grants.due(m.group, view.epoch, peers, now, view.lease)
            if due:
                timeout = max(0.05, min(view.lease / 4, 1.0))
                asks += [self._pool.submit(self._ask, view, p, timeout) for p in view.peers]
                # Until every grant is in, ask again soon: the granters turn willing a
                # moment after us, and our quorum lease is running out.
                wake = min(wake, now + self._interval / 4)
        if asks:
            futures.wait(asks, timeout=2.0)
        if not asks and not self._engaged:
            return wake  # nothing asked, nothing held under failsafe: roles unchanged
        now = self._clock()
        for m in session.members:
            view = self._view(m.group)
            if view is None:
                continue
            with self._glock:
                until = self.grants.until(m.group, view.epoch, self._peers(view))
            if until is not None and until > now:
                wake = min(wake, until)
                self._engage(m.group, view.epoch, now, until, view.member,
                             tuple(sorted(self._peers(view))))
            elif m.group in self._engaged:
                self._end(m.group, "a member refused or could not be reached")
        session.reconcile("failsafe")
        self._on_deadline(self.deadline(session.lease.deadline()))
        return wake

    def _engage(self, group: str, epoch: int, now: float, until: float, member: str = "",
                grantors: tuple[str, ...] = ()) -> None:
        if not self._session.lease.valid(now):
            e = self._engaged.get(group)
            if e is None:
                self._engaged[group] = _Engaged(epoch, now, member, grantors)
                self.engagements[group] = self.engagements.get(group, 0) + 1
                log.warning("failsafe engaged: keeping the active role without a "
                            "coordinator quorum, on every other member's lease", extra={
                                "event": {"kind": "failsafe_engaged",
                                          "node": self._session.node, "group": group,
                                          "member": member, "epoch": epoch,
                                          "grantors": list(grantors),
                                          "until_in": round(until - now, 3)}})
            else:
                e.renewals += 1
                log.debug("failsafe renewed", extra={"event": {
                    "kind": "failsafe_renewed", "node": self._session.node, "group": group,
                    "epoch": epoch, "until_in": round(until - now, 3)}})

    def _end(self, group: str, why: str) -> None:
        e = self._engaged.pop(group, None)
        if e is None:
            return
        log.warning("failsafe ended", extra={"event": {
            "kind": "failsafe_ended", "node": self._session.node, "group": group,
            "member": e.member, "epoch": e.epoch, "grantors": list(e.grantors),
            "reason": why, "renewals": e.renewals,
            "seconds": round(self._clock() - e.since, 3)}})

    def engaged(self) -> dict[str, int]:
        """group -> epoch of every role kept under failsafe now (metrics, role API)."""
        return {g: e.epoch for g, e in self._engaged.items()}

    def setting(self, group: str) -> float:
        """The group's failsafe lease from this agent's last assignment (0: off)."""
        view = self._view(group)
        return view.lease if view is not None else 0.0

    def grantors(self, now: float | None = None) -> dict[str, tuple[str, ...]]:
        """group -> the other members whose grant to this agent's active runs at `now`
        (metrics, `vnfha agent status`); groups with none are left out."""
        now = self._clock() if now is None else now
        out: dict[str, tuple[str, ...]] = {}
        for m in self._session.members:
            view = self._view(m.group)
            if view is None:
                continue
            peers = self._peers(view)
            with self._glock:
                got = dict(self.grants.held.get((m.group, view.epoch), {}))
            live = tuple(sorted(p for p, end in got.items() if p in peers and end > now))
            if live:
                out[m.group] = live
        return out
