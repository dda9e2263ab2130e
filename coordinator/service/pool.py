"""PoolService: stream an active-active group's pool to LB agents; take their acks."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

from vnfha.coordinator import commands as C
from vnfha.coordinator import names
from vnfha.coordinator.lbhealth import LbHealthTable
from vnfha.coordinator.model import ClusterState, GroupMode
from vnfha.coordinator.service.convert import HEALTH_TO_PB, REPORTABLE_HEALTH
from vnfha.coordinator.service.errors import (
    gate_read,
    guarded,
    require,
    require_count,
    submit_or_abort,
)
from vnfha.coordinator.service.feed import ChangeFeed
from vnfha.coordinator.store.base import Store
from vnfha.v1 import pool_pb2, pool_pb2_grpc, types_pb2

log = logging.getLogger("vnfha.pool_api")

MAX_SERVERS = 4096


def pool_snapshot(state: ClusterState, group: str) -> tuple[int, list[pool_pb2.PoolMember]]:
    g = state.groups[group]
    members = []
    for m in sorted(g.members.values(), key=lambda m: m.name):
        node = state.nodes.get(m.node)
        members.append(pool_pb2.PoolMember(member=m.name, node=m.node,
                                           address=node.address if node else "",
                                           in_service=m.name in g.pool,
                                           health=HEALTH_TO_PB[m.health]))
    return g.pool_version, members


@guarded
class PoolServicer(pool_pb2_grpc.PoolServiceServicer):
    def __init__(self, store: Store, feed: ChangeFeed, lb_health: LbHealthTable,
                 on_change: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic, watch_poll: float = 1.0) -> None:
        self._store = store
        self._feed = feed
        self._lb_health = lb_health
        self._on_change = on_change
        self._clock = clock
        self._watch_poll = watch_poll

    async def _check_group(self, context: grpc.aio.ServicerContext, group: str) -> None:
        await require(context, lambda: names.check_name("group", group))
        g = self._store.state().groups.get(group)
        if g is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown group {group!r}")
        if g.mode != GroupMode.ACTIVE_ACTIVE:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"group {group!r} is {g.mode.value}: pools exist only for "
                                "active-active groups")

    async def WatchPool(self, request: pool_pb2.WatchPoolRequest,
                        context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[pool_pb2.WatchPoolResponse]:
        await self._check_group(context, request.group)
        await gate_read(self._store, context)
        last = None
        async for state in self._feed.states(self._store.state, self._watch_poll):
            if request.group not in state.groups:
                await context.abort(grpc.StatusCode.NOT_FOUND,
                                    f"group {request.group!r} was removed")
            current = pool_snapshot(state, request.group)
            if current != last:
                last = current
                yield pool_pb2.WatchPoolResponse(revision=state.revision, group=request.group,
                                                 pool_version=current[0], members=current[1])

    async def ReportPoolApplied(self, request: pool_pb2.ReportPoolAppliedRequest,
                                context: grpc.aio.ServicerContext
                                ) -> pool_pb2.ReportPoolAppliedResponse:
        await self._check_group(context, request.group)
        await require(context, lambda: names.check_name("node", request.node))
        await require_count(context, "servers", len(request.servers), MAX_SERVERS)
        state = self._store.state()
        if request.node not in state.nodes:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"node {request.node!r} is not registered: the LB agent "
                                "registers its node before reporting")
        group = state.groups[request.group]
        servers: dict[str, tuple[bool, str]] = {}
        for s in request.servers:
            health = REPORTABLE_HEALTH.get(s.health)
            if s.member not in group.members or health is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"server {names.quoted(s.member)}: must be a member of "
                                    f"{request.group!r} reported HEALTHY or UNHEALTHY")
            if len(s.detail) > names.TEXT_MAX:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"server {s.member}: detail is {len(s.detail)} characters; "
                                    f"the limit is {names.TEXT_MAX}")
            servers[s.member] = (s.health == types_pb2.HEALTH_HEALTHY, s.detail)
        if servers and self._lb_health.record(request.group, request.node, servers,
                                              self._clock()):
            self._on_change()
        if request.pool_version > group.lb_applied.get(request.node, 0):
            # Same rid from every coordinator the agent tells: applied once.
            rid = f"pool-applied/{request.group}/{request.node}/{request.pool_version}"
            await submit_or_abort(self._store, context,
                                  C.pool_applied(request.group, request.node,
                                                 request.pool_version, rid=rid))
        return pool_pb2.ReportPoolAppliedResponse(revision=self._store.state().revision)
