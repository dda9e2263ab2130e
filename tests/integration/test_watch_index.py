"""WatchAssignments streams are woken only by commits that change their node's
assignments (issue 14): real coordinator, real gRPC streams over loopback.

On the old code every commit woke every stream, and each recomputed its node's
assignments by scanning every member of every group; it sent nothing when they had
not changed, so the cost showed in CPU, not in messages. The test counts both.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from support import free_port, wait_for

from vnfha.coordinator import commands as C
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.model import Health
from vnfha.coordinator.server import Coordinator
from vnfha.coordinator.service import agent as agent_service
from vnfha.v1 import agent_pb2, agent_pb2_grpc

TTL = 3.0  # long: no expiry can commit during the test (no keepalives are sent)
COMMITS = 12


@pytest.fixture
def coordinator() -> Iterator[tuple[Coordinator, str]]:
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": 0.5, "stabilization": 0.5},
        "groups": [{"name": "A", "vip": "198.18.0.100/24"},
                   {"name": "B", "vip": "198.18.0.101/24"}],
    })
    c = Coordinator(cfg)
    c.start()
    wait_for(lambda: {"A", "B"} <= set(c.store.state().groups), 5, what="declared groups")
    yield c, f"127.0.0.1:{port}"
    c.stop()


def test_a_commit_to_group_a_reaches_only_the_nodes_hosting_a(coordinator, monkeypatch):
    c, endpoint = coordinator
    computed: Counter[str] = Counter()
    original = agent_service.assignments_for

    def counting(state, node):
        computed[node] += 1
        return original(state, node)

    monkeypatch.setattr(agent_service, "assignments_for", counting)
    store = c.store
    for node, members in (("n1", [("A", "a1")]), ("n2", [("A", "a2")]), ("n3", [("B", "b1")])):
        r = store.submit(C.register_node(node, "198.18.1.1", [
            {"group": g, "member": m, "priority": 100} for g, m in members]))
        assert r["ok"], r
    for g, m in (("A", "a1"), ("A", "a2"), ("B", "b1")):
        assert store.submit(C.set_health(g, m, Health.HEALTHY))["ok"]

    received: dict[str, list[agent_pb2.WatchAssignmentsResponse]] = {"n1": [], "n2": [], "n3": []}
    lock = threading.Lock()
    channel = grpc.insecure_channel(endpoint)
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    streams = {n: stub.WatchAssignments(agent_pb2.WatchAssignmentsRequest(node=n))
               for n in received}

    def read(node: str) -> None:
        try:
            for msg in streams[node]:
                with lock:
                    received[node].append(msg)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    threads = [threading.Thread(target=read, args=(n,), daemon=True) for n in received]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(received.values()), 5, what="every stream's first snapshot")
        time.sleep(0.2)
        before = dict(computed)
        started = time.monotonic()
        # Each change of A's active moves a1's and a2's assignments; B never changes.
        member = "a1"
        for i in range(COMMITS):
            epoch = store.state().groups["A"].epoch
            if store.state().groups["A"].active is None:
                assert store.submit(C.promote("A", member, epoch, reason="t"))["ok"]
            else:
                assert store.submit(C.demote("A", epoch, reason="t"))["ok"]
                assert store.submit(C.confirm_release("A", member, epoch + 1, reason="t"))["ok"]
                member = "a2" if member == "a1" else "a1"
            want = store.state().groups["A"].epoch
            wait_for(lambda w=want: received["n1"][-1].assignments[0].epoch == w
                     and received["n2"][-1].assignments[0].epoch == w, 5,
                     what=f"commit {i} on n1 and n2")
        # A health change of A's member changes no assignment: nobody is sent anything.
        assert store.submit(C.set_health("A", "a2", Health.UNHEALTHY))["ok"]
        time.sleep(0.3)
        elapsed = time.monotonic() - started
        with lock:
            counts = {n: len(msgs) for n, msgs in received.items()}
        assert counts["n3"] == 1, counts  # only its first snapshot
        assert counts["n1"] == counts["n2"] == 1 + COMMITS, counts
        # n3's stream was not even woken by A's commits: it recomputed only on its
        # poll timer (watch_poll, 1 s), not once per commit.
        polls = int(elapsed / 1.0) + 1
        assert computed["n3"] - before.get("n3", 0) <= polls, (dict(computed), elapsed)
        assert computed["n1"] - before.get("n1", 0) <= COMMITS * 2 + polls
    finally:
        for s in streams.values():
            s.cancel()
        channel.close()
        for t in threads:
            t.join(2)
