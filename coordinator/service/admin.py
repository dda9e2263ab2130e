"""AdminService: status, switchover, maintenance, groups, events.

Served by every coordinator. Reads come from the local applied state (a
follower may lag by the commands in flight); writes go through the store,
which forwards them to the Raft leader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

from vnfha.coordinator import commands as C
from vnfha.coordinator import names
from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import ClusterState, GroupMode
from vnfha.coordinator.service.convert import (
    HEALTH_TO_PB,
    MODE_FROM_PB,
    MODE_TO_PB,
    ROLE_TO_PB,
    checkpoint_status_to_pb,
    event_to_pb,
    pool_to_pb,
    queue_status_to_pb,
    recovery_to_pb,
)
from vnfha.coordinator.service.errors import (
    gate_read,
    guarded,
    request_id,
    require,
    require_count,
    submit_or_abort,
)
from vnfha.coordinator.service.feed import ChangeFeed
from vnfha.coordinator.service.status_view import excluded_members
from vnfha.coordinator.store.base import Store
from vnfha.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger("vnfha.admin_api")

DEFAULT_SWITCHOVER_WAIT = 5.0
MAX_SWITCHOVER_WAIT = 60.0


def _add_pool_and_data(state: ClusterState, name: str, gs: admin_pb2.GroupStatus) -> None:
    """Active-active pool and recoveries, and state-sync checkpoint and queue sizes."""
    g = state.groups[name]
    if g.mode == GroupMode.ACTIVE_ACTIVE:
        gs.pool.CopyFrom(pool_to_pb(g, excluded_members(state, g)))
        gs.recoveries.extend(recovery_to_pb(g.recoveries[m]) for m in sorted(g.recoveries))
    checkpoint = state.checkpoints.get(name)
    if checkpoint is not None:
        gs.checkpoint.CopyFrom(checkpoint_status_to_pb(checkpoint))
    queue = state.queues.get(name)
    if queue is not None:
        gs.queue.CopyFrom(queue_status_to_pb(queue))


@guarded
class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, store: Store, leases: LeaseTable, coordinator_id: str,
                 endpoints: dict[str, str], on_change: Callable[[], None], feed: ChangeFeed,
                 clock: Callable[[], float] = time.monotonic, watch_poll: float = 1.0) -> None:
        self._store = store
        self._feed = feed
        self._leases = leases
        self._id = coordinator_id
        self._endpoints = endpoints  # coordinator id -> api endpoint
        self._on_change = on_change
        self._clock = clock
        self._watch_poll = watch_poll

    async def GetStatus(self, request: admin_pb2.GetStatusRequest,
                        context: grpc.aio.ServicerContext) -> admin_pb2.GetStatusResponse:
        await gate_read(self._store, context)
        state = self._store.state()
        now = self._clock()
        ages = self._leases.ages(list(state.nodes), now)
        leader = self._store.leader_id() or ""
        details = {k: str(v) for k, v in self._store.describe().items()}
        info = admin_pb2.CoordinatorInfo(
            node_id=self._id, is_leader=self._store.is_leader(), leader_id=leader,
            leader_endpoint=self._endpoints.get(leader, ""), revision=state.revision,
            backend=details.get("backend", ""), details=details)
        groups = []
        for g in sorted(state.groups.values(), key=lambda g: g.name):
            members = []
            for m in sorted(g.members.values(), key=lambda m: (-m.priority, m.name)):
                ms = admin_pb2.MemberStatus(name=m.name, node=m.node,
                                            role=ROLE_TO_PB[g.role_of(m.name)],
                                            health=HEALTH_TO_PB[m.health], priority=m.priority,
                                            quarantined=m.quarantined)
                if self._leases.last_seen(m.node) is not None:
                    ms.lease_age_seconds = ages[m.node]
                members.append(ms)
            gs = admin_pb2.GroupStatus(
                name=g.name, mode=MODE_TO_PB[g.mode], vip=g.vip, epoch=g.epoch,
                active=g.active or "", releasing=g.releasing or "",
                handover_to=g.handover_to or "", members=members, deleting=g.deleting)
            _add_pool_and_data(state, g.name, gs)
            groups.append(gs)
        nodes = []
        for n in sorted(state.nodes.values(), key=lambda n: n.name):
            ns = admin_pb2.NodeStatus(name=n.name, address=n.address, maintenance=n.maintenance,
                                      stopped=n.stopped)
            if self._leases.last_seen(n.name) is not None:
                ns.lease_age_seconds = ages[n.name]
            nodes.append(ns)
        return admin_pb2.GetStatusResponse(coordinator=info, groups=groups, nodes=nodes,
                                           paused=state.paused,
                                           failsafe_lease_ms=state.failsafe_lease_ms)

    async def Switchover(self, request: admin_pb2.SwitchoverRequest,
                         context: grpc.aio.ServicerContext) -> admin_pb2.SwitchoverResponse:
        await require(context, lambda: names.check_name("group", request.group))
        if request.to_member:
            await require(context, lambda: names.check_name("member", request.to_member))
        before = self._store.state().groups.get(request.group)
        from_member = before.active if before is not None else None
        cmd = C.switchover(request.group, request.to_member or None,
                           rid=await request_id(context, request.request_id))
        result = await submit_or_abort(self._store, context, cmd)
        self._on_change()
        demote_epoch = int(result.get("epoch", 0))
        group = self._store.state().groups[request.group]
        target = group.handover_to or (group.active or "")
        if result.get("duplicate") and from_member is None:
            from_member = group.releasing
        log.info("switchover requested", extra={"group": request.group, "from": from_member,
                                                "to": target, "epoch": demote_epoch})

        def promoted(state: ClusterState) -> bool:
            g = state.groups.get(request.group)
            return g is not None and g.active is not None and g.epoch > demote_epoch

        state, report = await self._wait_serving(request.group, promoted, request.wait_ms)
        group = state.groups.get(request.group)
        if group is None or not promoted(state):
            return admin_pb2.SwitchoverResponse(from_member=from_member or "",
                                                to_member=target, epoch=demote_epoch,
                                                completed=False,
                                                has_vip=bool(group and group.vip))
        return admin_pb2.SwitchoverResponse(
            from_member=from_member or "", to_member=group.active or "", epoch=group.epoch,
            completed=True, serving=report is not None,
            vip_held=report is not None and report.vip_held, has_vip=bool(group.vip))

    async def SetMaintenance(self, request: admin_pb2.SetMaintenanceRequest,
                             context: grpc.aio.ServicerContext
                             ) -> admin_pb2.SetMaintenanceResponse:
        await require(context, lambda: names.check_name("node", request.node))
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context,
                                       C.set_maintenance(request.node, request.on, rid=rid))
        self._on_change()
        return admin_pb2.SetMaintenanceResponse(changed=bool(result.get("changed")))

    async def ApplyGroups(self, request: admin_pb2.ApplyGroupsRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.ApplyGroupsResponse:
        await require_count(context, "groups", len(request.groups), C.MAX_GROUPS_PER_APPLY)
        specs = []
        for g in request.groups:
            await require(context, lambda g=g: names.check_name("group", g.name))
            vip = await require(context, lambda g=g: names.check_vip(g.vip))
            mode = MODE_FROM_PB.get(g.mode)
            if mode is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"group {g.name}: mode is unspecified or unknown "
                                    f"({g.mode})")
            specs.append({"name": g.name, "mode": mode.value, "vip": vip})
        if not specs:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no groups given")
        if len({s["name"] for s in specs}) != len(specs):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a group is listed twice")
        rid = await request_id(context, request.request_id)
        await submit_or_abort(self._store, context, C.apply_groups(specs, rid=rid))
        return admin_pb2.ApplyGroupsResponse(revision=self._store.state().revision)

    async def ListEvents(self, request: admin_pb2.ListEventsRequest,
                         context: grpc.aio.ServicerContext) -> admin_pb2.ListEventsResponse:
        await gate_read(self._store, context)
        events = self._store.state().events
        if request.limit:
            events = events[-request.limit:]
        return admin_pb2.ListEventsResponse(events=[event_to_pb(e) for e in events])

    async def WatchEvents(self, request: admin_pb2.WatchEventsRequest,
                          context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[admin_pb2.WatchEventsResponse]:
        await gate_read(self._store, context)
        after = request.after_seq
        async for state in self._feed.states(self._store.state, self._watch_poll):
            new = [e for e in state.events if e.seq > after]
            if new:
                after = new[-1].seq
                yield admin_pb2.WatchEventsResponse(events=[event_to_pb(e) for e in new])

    # --- lifecycle (docs/cli.md): pause/resume, failover, member reset, removals ---------

    async def SetPaused(self, request: admin_pb2.SetPausedRequest,
                        context: grpc.aio.ServicerContext) -> admin_pb2.SetPausedResponse:
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context, C.set_paused(request.paused, rid=rid))
        self._on_change()
        log.info("failover paused" if request.paused else "failover resumed",
                 extra={"changed": bool(result.get("changed"))})
        return admin_pb2.SetPausedResponse(changed=bool(result.get("changed")))

    async def SetFailsafe(self, request: admin_pb2.SetFailsafeRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.SetFailsafeResponse:
        if request.lease_ms > C.MAX_FAILSAFE_LEASE_MS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"failsafe lease {request.lease_ms} ms is above the maximum "
                                f"{C.MAX_FAILSAFE_LEASE_MS} ms")
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context,
                                       C.set_failsafe(int(request.lease_ms), rid=rid))
        self._on_change()
        log.info("failsafe on" if request.lease_ms else "failsafe off",
                 extra={"lease_ms": request.lease_ms, "changed": bool(result.get("changed"))})
        return admin_pb2.SetFailsafeResponse(changed=bool(result.get("changed")))

    async def Failover(self, request: admin_pb2.FailoverRequest,
                       context: grpc.aio.ServicerContext) -> admin_pb2.FailoverResponse:
        await require(context, lambda: names.check_name("group", request.group))
        await require(context, lambda: names.check_name("member", request.to_member))
        before = self._store.state().groups.get(request.group)
        from_member = before.active if before is not None else None
        cmd = C.failover(request.group, request.to_member, force=request.force,
                         rid=await request_id(context, request.request_id))
        result = await submit_or_abort(self._store, context, cmd)
        self._on_change()
        epoch = int(result.get("epoch", 0))
        log.info("failover requested", extra={"group": request.group, "from": from_member,
                                              "to": request.to_member, "force": request.force,
                                              "epoch": epoch})

        def done(state: ClusterState) -> bool:
            g = state.groups.get(request.group)
            return g is None or (g.active is not None and g.epoch >= epoch)

        state, report = await self._wait_serving(request.group, done, request.wait_ms)
        group = state.groups.get(request.group)
        completed = group is not None and done(state)
        return admin_pb2.FailoverResponse(
            from_member=from_member or "",
            to_member=(group.active or "") if completed and group else request.to_member,
            epoch=group.epoch if completed and group else epoch, completed=completed,
            serving=report is not None, vip_held=report is not None and report.vip_held,
            has_vip=bool(group and group.vip))

    async def ResetMember(self, request: admin_pb2.ResetMemberRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.ResetMemberResponse:
        await require(context, lambda: names.check_name("group", request.group))
        await require(context, lambda: names.check_name("member", request.member))
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context,
                                       C.clear_quarantine(request.group, request.member, rid=rid))
        self._on_change()
        return admin_pb2.ResetMemberResponse(changed=bool(result.get("changed")))

    async def RemoveNode(self, request: admin_pb2.RemoveNodeRequest,
                         context: grpc.aio.ServicerContext) -> admin_pb2.RemoveNodeResponse:
        await require(context, lambda: names.check_name("node", request.node))
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context,
                                       C.remove_node(request.node, request.force, rid=rid))
        self._on_change()
        if not result.get("removed") and request.force:
            pending = set(result.get("pending", []))

            def released(state: ClusterState) -> bool:
                return not any(g.releasing and g.members[g.releasing].node == request.node
                               for n in pending if (g := state.groups.get(n)) is not None)

            await self._wait(released, request.wait_ms)
            # A second command (its request id derived, so a retried call stays one):
            # removes the node now, or still answers pending if the wait ran out.
            result = await submit_or_abort(self._store, context, C.remove_node(
                request.node, True, rid=f"{rid}-2" if rid else None))
            self._on_change()
        return admin_pb2.RemoveNodeResponse(removed=bool(result.get("removed")),
                                            members=result.get("members", []),
                                            pending=result.get("pending", []))

    async def ReadmitNode(self, request: admin_pb2.ReadmitNodeRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.ReadmitNodeResponse:
        await require(context, lambda: names.check_name("node", request.node))
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context,
                                       C.readmit_node(request.node, rid=rid))
        return admin_pb2.ReadmitNodeResponse(changed=bool(result.get("changed")))

    async def DeleteGroup(self, request: admin_pb2.DeleteGroupRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.DeleteGroupResponse:
        await require(context, lambda: names.check_name("group", request.group))
        rid = await request_id(context, request.request_id)
        result = await submit_or_abort(self._store, context,
                                       C.delete_group(request.group, request.force, rid=rid))
        self._on_change()
        if not result.get("removed") and request.force:
            def released(state: ClusterState) -> bool:
                g = state.groups.get(request.group)
                return g is None or g.releasing is None

            await self._wait(released, request.wait_ms)
            result = await submit_or_abort(self._store, context, C.delete_group(
                request.group, True, rid=f"{rid}-2" if rid else None))
            self._on_change()
        return admin_pb2.DeleteGroupResponse(removed=bool(result.get("removed")))

    async def _wait_serving(self, group: str, promoted: Callable[[ClusterState], bool],
                            wait_ms: int) -> tuple[ClusterState, Report | None]:
        """Wait until the promotion is committed (`promoted` holds for the applied state)
        *and* the new active's agent reported, in a keepalive to this coordinator, that
        it acts as active at that epoch or later: for a switchover, done means the new
        active serves (holds the VIP), not just that the log says so. Returns the state
        and that report, or None for it when the wait (wait_ms; 0: the default) ran out.
        Woken by commits and by agents' report changes (feed.reports_changed)."""
        wait = min(wait_ms / 1000.0 or DEFAULT_SWITCHOVER_WAIT, MAX_SWITCHOVER_WAIT)
        deadline = self._clock() + wait
        while True:
            tickets = [self._feed.ticket(), self._feed.report_ticket()]
            state = self._store.state()
            report = None
            g = state.groups.get(group)
            if g is not None and g.active is not None and promoted(state):
                node = g.members[g.active].node
                r = self._leases.report(node, group, g.active)
                if r is not None and r.active_epoch >= g.epoch:
                    report = r
            left = deadline - self._clock()
            if report is not None or left <= 0:
                return state, report
            await self._feed.wait_any(tickets, left)

    async def _wait(self, done: Callable[[ClusterState], bool], wait_ms: int) -> ClusterState:
        """The applied state once `done` holds for it, or when the wait (wait_ms; 0: the
        default) is over: a command that returns once its effect is committed."""
        wait = min(wait_ms / 1000.0 or DEFAULT_SWITCHOVER_WAIT, MAX_SWITCHOVER_WAIT)
        deadline = self._clock() + wait
        while True:
            ticket = self._feed.ticket()
            state = self._store.state()
            left = deadline - self._clock()
            if done(state) or left <= 0:
                return state
            await self._feed.wait(ticket, left)
