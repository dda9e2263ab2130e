"""A burst of agents registering at once is not declared lost (issue 14).

Three real coordinator processes (embedded Raft) on loopback. NODES nodes register at
once over real gRPC, each is first heard DELAY after its registration returned (what a
burst's connection set-up costs a real agent: channels and handshakes to every
coordinator, the fast-path key; 1-2.5 s were measured under load), then keeps alive
normally on a Keepalive stream to every coordinator. None may be declared lost.

On the old code every one of them was: a never-heard node's silence was dated from its
registration with one TTL on the leader and one more on the peer the leader asked, so
2 TTLs after registering, with no keepalive yet, it became `unknown -> lost`
(coordinator/leases.py FIRST_KEEPALIVE_GRACE).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import grpc
import loadgen
import pytest
from support import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from cluster import CoordinatorCluster

from vnfha.v1 import admin_pb2, agent_pb2, agent_pb2_grpc, types_pb2

TTL = 1.0  # as test_overload: elections survive the shared machine
INTERVAL = 0.1
NODES = 60
DELAY = 3 * TTL  # beyond the old 2 TTLs, well within the grace
KEEP = 3.0  # seconds of normal keepalives after the first one

pytestmark = pytest.mark.slow


def events(c: CoordinatorCluster) -> list[admin_pb2.Event]:
    for cid in c.ids:
        try:
            ch, admin = c.admin(cid)
            with ch:
                return list(admin.ListEvents(admin_pb2.ListEventsRequest(), timeout=10).events)
        except grpc.RpcError:
            continue
    raise AssertionError("no coordinator answered ListEvents")


async def burst(endpoints: list[str]) -> dict[str, set[str]]:
    """Register every node at once, then keep each alive from DELAY after its own
    registration for KEEP seconds. Returns, per node, the coordinators that acked."""
    channels = [grpc.aio.insecure_channel(ep) for ep in endpoints]
    stubs = [agent_pb2_grpc.AgentServiceStub(ch) for ch in channels]
    acked: dict[str, set[str]] = {}

    async def keepalive(name: str, members: list[agent_pb2.MemberReport], k: int) -> None:
        async def requests():
            for seq in range(1, int(KEEP / INTERVAL) + 1):
                yield agent_pb2.KeepaliveRequest(node=name, seq=seq, members=members)
                await asyncio.sleep(INTERVAL)

        async for resp in stubs[k].Keepalive(requests(), timeout=KEEP + 10):
            if resp.result == agent_pb2.KEEPALIVE_RESULT_ACK:
                acked[name].add(resp.coordinator_id)

    async def node(i: int) -> None:
        name = loadgen.node_name(i)
        spec = loadgen.hosted(i, NODES, None)
        acked[name] = set()
        for attempt in range(20):
            try:
                await stubs[attempt % len(stubs)].RegisterNode(agent_pb2.RegisterNodeRequest(
                    node=name, address="198.18.1.1", members=[
                        agent_pb2.MemberSpec(group=g, member=m, priority=p)
                        for g, m, p in spec]), timeout=5)
                break
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"could not register {name}")
        await asyncio.sleep(DELAY)
        members = [agent_pb2.MemberReport(group=g, member=m, health=types_pb2.HEALTH_HEALTHY)
                   for g, m, _ in spec]
        await asyncio.gather(*(keepalive(name, members, k) for k in range(len(stubs))))

    try:
        await asyncio.wait_for(asyncio.gather(*(node(i) for i in range(NODES))), 120)
    finally:
        for ch in channels:
            await ch.close()
    return acked


def test_a_burst_of_new_nodes_heard_after_a_few_ttls_is_not_declared_lost(tmp_path):
    c = CoordinatorCluster(tmp_path, ttl=TTL, interval=INTERVAL, tls=False,
                           stabilization=1.0)
    try:
        c.start_all()
        loadgen.create_groups(c.api[wait_for(c.leader, 20, what="a leader")], NODES)
        since = time.time()
        acked = asyncio.run(burst(c.endpoints))
        # The nodes were alive: each was acknowledged by a majority once it spoke.
        quiet = sorted(n for n, by in acked.items() if len(by) < 2)
        assert quiet == [], f"nodes no majority acknowledged: {quiet[:5]}"
        lost = [f"{e.group}/{e.member}: {e.reason}" for e in events(c)
                if e.kind == "health_changed" and "-> lost" in e.reason
                and e.time.ToNanoseconds() / 1e9 >= since]
        assert lost == [], f"{len(lost)} members of live new nodes declared lost: {lost[:5]}"
    finally:
        c.stop_all()
