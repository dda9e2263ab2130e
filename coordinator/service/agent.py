"""AgentService: registration, keepalive streams, role-assignment watches.

Under overload (coordinator/overload.py) each keepalive stream is read once per pass
of the event loop, so a backlog of unread keepalives builds up in the transport, and
what we read is old: a keepalive older than a newer one of the same node is useless
(the agent counts its lease from the newer one's send time). Answering costs about as
much as reading (measured: 65 us to read, 113 us to read and answer, per keepalive),
so an overloaded coordinator answers a node that holds no active role at most every
TTL/3 and drops the keepalives in between unhandled: reading goes on, the backlog
drains, and what it answers is fresh. Nodes holding an active role are answered every
time. (A reader task that keeps only the newest message cost 18 % more per keepalive,
and cannot reach the backlog in the transport either.) New nodes are refused with
RESOURCE_EXHAUSTED until the overload clears.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

from vnfha.coordinator import commands as C
from vnfha.coordinator import fastwire, names
from vnfha.coordinator.fastpath import FastPathIntake
from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import ClusterState, GroupMode
from vnfha.coordinator.service.convert import MODE_TO_PB, REPORTABLE_HEALTH, ROLE_TO_PB
from vnfha.coordinator.service.errors import (
    gate_read,
    guarded,
    request_id,
    require,
    require_count,
    submit_or_abort,
)
from vnfha.coordinator.service.feed import ChangeFeed
from vnfha.coordinator.service.kacache import KeepaliveCache, Validated
from vnfha.coordinator.store.base import Store
from vnfha.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger("vnfha.agent_api")

MAX_MEMBERS_PER_NODE = C.MAX_MEMBERS_PER_NODE

#: One keepalive in this many is timed for `on_ack_time` (the ack-latency histogram):
#: two clock reads and a histogram update cost a third of an unchanged keepalive's
#: handling (0.9 of 2.6 us), and a sample shows the same distribution.
ACK_TIME_SAMPLE = 8


def assignments_for(state: ClusterState, node: str) -> list[agent_pb2.Assignment]:
    out = []
    lease_ms = state.failsafe_lease_ms
    for m in sorted(state.members_on(node), key=lambda m: (m.group, m.name)):
        g = state.groups[m.group]
        a = agent_pb2.Assignment(group=g.name, member=m.name,
                                 role=ROLE_TO_PB[g.role_of(m.name)], epoch=g.epoch,
                                 vip=g.vip, mode=MODE_TO_PB[g.mode],
                                 generation=g.active_generation if g.active == m.name else 0)
        if lease_ms and g.mode == GroupMode.ACTIVE_STANDBY:
            # Failsafe (docs/design.md): whom to ask, and who is active at this epoch.
            a.failsafe_lease_ms = lease_ms
            for p in sorted(g.members.values(), key=lambda p: p.name):
                if p.name == m.name:
                    continue
                n = state.nodes.get(p.node)
                a.peers.append(agent_pb2.FailsafePeer(
                    member=p.name, node=p.node, active=p.name == g.active,
                    endpoint=n.failsafe_endpoint if n is not None else ""))
        out.append(a)
    return out


@guarded
class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, store: Store, leases: LeaseTable, coordinator_id: str, ttl: float,
                 on_report_change: Callable[[], None], feed: ChangeFeed,
                 clock: Callable[[], float] = time.monotonic,
                 watch_poll: float = 1.0, cluster_members: tuple[str, ...] = (),
                 overload: Callable[[float], str | None] | None = None) -> None:
        self._store = store
        # Why this coordinator is overloaded now, or None (overload.LoopLag.reason).
        self._overload = overload or (lambda now: None)
        self._feed = feed
        self._leases = leases
        self._id = coordinator_id
        # Announced in every keepalive answer: the set whose majority expires a node, so
        # an agent with a short or stale coordinator list cannot under-count its quorum.
        self._members = tuple(cluster_members) or (coordinator_id,)
        self._ttl_ms = int(ttl * 1000)
        self._ration = ttl / 3  # overloaded: shortest gap between answers to a standby
        self._on_change = on_report_change
        self._clock = clock
        self._watch_poll = watch_poll
        self.keepalives = 0  # acknowledged, for benchmarks and status
        self.superseded = 0  # keepalives dropped unanswered for a newer one (metrics)
        self.registrations_refused = 0  # new nodes refused while overloaded (metrics)
        # Handler seconds of one keepalive in ACK_TIME_SAMPLE (metrics), the first included.
        self.on_ack_time: Callable[[float], None] | None = None
        self._untimed = 0  # keepalives handled since the last one timed (racy: a sample)
        self.fastpath: FastPathIntake | None = None  # the UDP keepalive intake, if enabled
        # Each node's last acknowledged keepalive: an unchanged one is answered without
        # being checked again (kacache.py; the full handler is the reference).
        self.validated = KeepaliveCache()

    async def RegisterNode(self, request: agent_pb2.RegisterNodeRequest,
                           context: grpc.aio.ServicerContext) -> agent_pb2.RegisterNodeResponse:
        await require(context, lambda: names.check_name("node", request.node))
        await require(context, lambda: names.check_address(request.address))
        await require(context, lambda: names.check_endpoint(request.failsafe_endpoint))
        await require_count(context, "members", len(request.members), MAX_MEMBERS_PER_NODE)
        members = []
        for m in request.members:
            await require(context, lambda m=m: names.check_name("group", m.group))
            await require(context, lambda m=m: names.check_name("member", m.member))
            await require(context, lambda m=m: names.check_priority(m.priority))
            members.append({"group": m.group, "member": m.member, "priority": m.priority})
        if len({(m["group"], m["member"]) for m in members}) != len(members):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "a member is listed twice in one registration")
        if request.node not in self._store.state().nodes:
            why = self._overload(self._clock())
            if why is not None:  # a known node re-registering costs no new load
                self.registrations_refused += 1
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"coordinator {self._id} is {why}; it takes no new "
                                    "nodes until that clears: retry later with backoff")
        cmd = C.register_node(request.node, request.address, members,
                              rid=await request_id(context, request.request_id),
                              remove_undeclared=request.remove_undeclared,
                              failsafe_endpoint=request.failsafe_endpoint)
        await submit_or_abort(self._store, context, cmd)
        log.info("node registered", extra={"node": request.node,
                                           "members": [m["member"] for m in members]})
        return agent_pb2.RegisterNodeResponse(revision=self._store.state().revision)

    async def Drain(self, request: agent_pb2.DrainRequest,
                    context: grpc.aio.ServicerContext) -> agent_pb2.DrainResponse:
        """A stopping agent hands its roles over (the switchover path) instead of letting
        its lease run out: the standby is promoted as soon as the release is reported."""
        await require(context, lambda: names.check_name("node", request.node))
        cmd = C.drain_node(request.node, rid=await request_id(context, request.request_id))
        result = await submit_or_abort(self._store, context, cmd)
        self._on_change()  # decide now: the release report may already be in
        handovers = [agent_pb2.Handover(group=h["group"], member=h["member"],
                                        to_member=h["to"], epoch=h["epoch"])
                     for h in result.get("handovers", [])]
        log.info("node draining", extra={"node": request.node, "handovers": [
            f"{h.group}/{h.member}->{h.to_member or '(none eligible)'}" for h in handovers]})
        return agent_pb2.DrainResponse(handovers=handovers)

    async def OpenFastPath(self, request: agent_pb2.OpenFastPathRequest,
                           context: grpc.aio.ServicerContext
                           ) -> agent_pb2.OpenFastPathResponse:
        """Issue the node a new fast-path key (the authorization interceptor has checked
        that the caller's certificate names this node). Only registered nodes get one,
        so the session table is bounded by the nodes the cluster knows."""
        await require(context, lambda: names.check_name("node", request.node))
        if self.fastpath is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"the keepalive fast path is disabled on coordinator "
                                f"{self._id}; keep alive over gRPC")
        if request.node not in self._store.state().nodes:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"node {request.node!r} is not registered here; call "
                                "RegisterNode")
        assert self.fastpath is not None
        issued = self.fastpath.open_session(request.node)
        return agent_pb2.OpenFastPathResponse(key_id=issued.key_id, key=issued.key,
                                              port=self.fastpath.port,
                                              max_datagram=fastwire.MAX_DATAGRAM,
                                              coordinator_id=self._id)

    def handle_datagram(self, req: agent_pb2.KeepaliveRequest,
                        arrived: float) -> agent_pb2.KeepaliveResponse:
        """A fast-path keepalive (intake thread): the gRPC stream's rules and handler,
        with the store check answered as UNAVAILABLE instead of ending a stream."""
        if not self._store.store_reachable():
            return agent_pb2.KeepaliveResponse(
                seq=req.seq, result=agent_pb2.KEEPALIVE_RESULT_UNAVAILABLE,
                ttl_ms=self._ttl_ms, coordinator_id=self._id, cluster_members=self._members,
                message=f"coordinator {self._id} cannot reach or persist its store; not "
                        "acknowledging keepalives")
        if self.on_ack_time is None or not self._time_this():
            return self._handle_keepalive(req, arrived)
        started = time.perf_counter()
        resp = self._handle_keepalive(req, arrived)
        self.on_ack_time(time.perf_counter() - started)
        return resp

    def _time_this(self) -> bool:
        """Whether this keepalive is the one in ACK_TIME_SAMPLE that is timed."""
        untimed = self._untimed
        self._untimed = untimed + 1 if untimed + 1 < ACK_TIME_SAMPLE else 0
        return untimed == 0

    async def Keepalive(self, request_iterator: AsyncIterator[agent_pb2.KeepaliveRequest],
                        context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[agent_pb2.KeepaliveResponse]:
        answered: float | None = None  # arrival of the last keepalive answered
        async for req in request_iterator:
            arrived = self._clock()
            if (answered is not None and arrived - answered < self._ration
                    and self._overload(arrived) is not None
                    and not self._holds_active(req.node)):
                # Overloaded: a node with no active role is answered at most every TTL/3
                # (still three answers per lease), the keepalives between are dropped
                # unhandled. Reading goes on, so the backlog drains and what we answer
                # is fresh; nodes holding an active role are answered every time.
                self.superseded += 1
                continue
            answered = arrived
            timed = self.on_ack_time is not None and self._time_this()
            started = time.perf_counter() if timed else 0.0
            if not self._store.store_reachable():
                # An acknowledgement promises a leader we can still talk to; cut off
                # from etcd, or unable to persist (Raft, disk full or failing), we
                # cannot, so the agent's lease runs out as designed.
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    f"coordinator {self._id} cannot reach or persist its "
                                    "store; not acknowledging keepalives")
            resp = self._handle_keepalive(req, arrived)
            if timed and self.on_ack_time is not None:
                self.on_ack_time(time.perf_counter() - started)
            yield resp

    def holds_active(self, node: str) -> bool:
        """Whether `node` hosts its group's active member (the fast path's intake answers
        such a node's stale keepalives too)."""
        return self._holds_active(node)

    def _holds_active(self, node: str) -> bool:
        """Whether `node` hosts a member that is its group's active (node index)."""
        state = self._store.state()
        return any((g := state.groups.get(m.group)) is not None and g.active == m.name
                   for m in state.members_on(node))

    def _handle_keepalive(self, req: agent_pb2.KeepaliveRequest,
                          arrived: float) -> agent_pb2.KeepaliveResponse:
        state = self._store.state()
        seq = req.seq
        req.seq = 0
        request = req.SerializeToString()  # what the answer depends on: all but seq
        req.seq = seq
        known = self.validated.get(req.node, state, request)
        if known is not None:
            # The node's last acknowledged keepalive again, against the same state: the
            # checks below would pass the same way and build equal reports and answer.
            return self._acknowledge(req.node, known, seq, arrived)

        def answer(result: int, message: str = "",
                   seq: int = seq) -> agent_pb2.KeepaliveResponse:
            return agent_pb2.KeepaliveResponse(seq=seq, result=result, ttl_ms=self._ttl_ms,
                                               message=message, revision=state.revision,
                                               coordinator_id=self._id,
                                               cluster_members=self._members)

        if not req.node:
            return answer(agent_pb2.KEEPALIVE_RESULT_INVALID, "node name is empty")
        if not names.is_name(req.node):
            return answer(agent_pb2.KEEPALIVE_RESULT_INVALID,
                          f"node name {names.quoted(req.node)} is invalid: it must be "
                          f"{names.NAME_RULE}")
        if len(req.members) > MAX_MEMBERS_PER_NODE:
            return answer(agent_pb2.KEEPALIVE_RESULT_INVALID,
                          f"too many members ({len(req.members)} > {MAX_MEMBERS_PER_NODE})")
        reports = []
        for m in req.members:
            if not (names.is_name(m.group) and names.is_name(m.member)):
                return answer(agent_pb2.KEEPALIVE_RESULT_INVALID,
                              f"member {names.quoted(m.group)}/{names.quoted(m.member)}: "
                              f"names must be {names.NAME_RULE}")
            health = REPORTABLE_HEALTH.get(m.health)
            if health is None:
                return answer(agent_pb2.KEEPALIVE_RESULT_INVALID,
                              f"member {m.group}/{m.member}: health must be HEALTHY or "
                              f"UNHEALTHY, got {m.health}")
            reports.append(Report(group=m.group, member=m.member, health=health,
                                  seen_epoch=m.seen_epoch, active_epoch=m.active_epoch,
                                  vip_held=m.vip_held,
                                  generation=req.generation, leased=req.leased))
        if req.node not in state.nodes:
            return answer(agent_pb2.KEEPALIVE_RESULT_UNKNOWN_NODE,
                          f"node {req.node!r} is not registered here; call RegisterNode")
        unknown = [f"{r.group}/{r.member}" for r in reports
                   if (mem := state.member(r.group, r.member)) is None or mem.node != req.node]
        known = Validated(state=state, request=request, reports=tuple(reports),
                          answer=answer(agent_pb2.KEEPALIVE_RESULT_ACK,
                                        f"not members of this node: {', '.join(unknown)}"
                                        if unknown else "", seq=0))
        self.validated.put(req.node, known)
        return self._acknowledge(req.node, known, seq, arrived)

    def _acknowledge(self, node: str, known: Validated, seq: int,
                     arrived: float) -> agent_pb2.KeepaliveResponse:
        """Record a valid keepalive of a registered node and answer it: the one way an
        ACK is given, whether the keepalive was checked now or found unchanged."""
        changed = self._leases.record(node, known.reports, arrived)
        self.keepalives += 1
        if changed:
            self._on_change()
            self._feed.reports_changed()  # a switchover may wait for this report
        resp = agent_pb2.KeepaliveResponse()
        resp.CopyFrom(known.answer)
        resp.seq = seq
        return resp

    async def WatchAssignments(self, request: agent_pb2.WatchAssignmentsRequest,
                               context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[agent_pb2.WatchAssignmentsResponse]:
        await require(context, lambda: names.check_name("node", request.node))
        await gate_read(self._store, context)
        last: list[agent_pb2.Assignment] | None = None
        # Woken only by commits that change this node's assignments (feed.node_states).
        async for state in self._feed.node_states(request.node, self._store.state,
                                                  self._watch_poll):
            current = assignments_for(state, request.node)
            if current != last:
                last = current
                yield agent_pb2.WatchAssignmentsResponse(revision=state.revision,
                                                         assignments=current)
