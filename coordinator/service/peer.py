"""PeerService (coordinator to coordinator) and the client the leader uses."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from vnfha.coordinator.leases import LeaseTable, PeerView
from vnfha.coordinator.security.tls import ChannelSource, TlsFiles
from vnfha.coordinator.service.errors import guarded, require_count
from vnfha.v1 import peer_pb2, peer_pb2_grpc

MAX_NODES_PER_QUERY = 10_000


@guarded
class PeerServicer(peer_pb2_grpc.PeerServiceServicer):
    def __init__(self, leases: LeaseTable, coordinator_id: str,
                 clock: Callable[[], float] = time.monotonic,
                 overloaded: Callable[[float], bool] | None = None) -> None:
        self._leases = leases
        self._overloaded = overloaded or (lambda now: False)
        self._id = coordinator_id
        self._clock = clock

    async def GetLeaseAges(self, request: peer_pb2.GetLeaseAgesRequest,
                           context: grpc.aio.ServicerContext) -> peer_pb2.GetLeaseAgesResponse:
        await require_count(context, "nodes in one query", len(request.nodes),
                            MAX_NODES_PER_QUERY)
        # Names are not checked against the name rule: the leader asks about every
        # registered node, and one node named under older rules must not fail the query
        # for all. The count and gRPC's message size bound it; unknown names leave no
        # trace in the table (LeaseTable.known_nodes).
        now = self._clock()
        over = self._overloaded(now)
        # The overload rule is applied here, per node (LeaseTable.vouched): exact
        # fast-path ages as they are, others only beyond several TTLs (else capped at
        # one TTL: no vote). The flag, which makes a leader discount every age of the
        # answer, is raised only when no age in it is exact: those above one TTL are
        # then all long ones anyway, so leaders old and new count the same votes.
        ages, exact = self._leases.vouched(list(request.nodes), now, self._leases.ttl,
                                           over)
        return peer_pb2.GetLeaseAgesResponse(coordinator_id=self._id, age_seconds=ages,
                                             overloaded=over and not exact)


class CoordinatorPeerClient:
    """Lease-age queries to one peer coordinator over a long-lived channel."""

    def __init__(self, endpoint: str, tls: TlsFiles | None = None) -> None:
        self._channels = ChannelSource(endpoint, tls, options=[
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ])

    def lease_ages(self, nodes: list[str], timeout: float) -> PeerView:
        stub = peer_pb2_grpc.PeerServiceStub(self._channels.get())
        resp = stub.GetLeaseAges(peer_pb2.GetLeaseAgesRequest(nodes=nodes), timeout=timeout)
        return PeerView(ages=dict(resp.age_seconds), overloaded=resp.overloaded)

    def close(self) -> None:
        self._channels.close()
