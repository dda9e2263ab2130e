"""StateService over real gRPC on a running coordinator with real agent sessions:
fenced checkpoints and queue across a failover, bad input, and that data traffic
does not disturb the role machinery (no assignment pushes, no events)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.agents.statesync.errors import RefusedError, StaleEpochError
from vnfha.agents.statesync.store import StateClient
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.model import Health
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import agent_pb2, agent_pb2_grpc

TTL = 0.6
INTERVAL = 0.1


@pytest.fixture
def cluster() -> Iterator[tuple[Coordinator, str, dict[str, AgentSession]]]:
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.5},
        "groups": [{"name": "kv"}],
        "state": {"checkpoint_max_bytes": 1024, "queue_max_message_bytes": 100,
                  "queue_retain_messages": 5, "queue_retain_bytes": 1000},
    })
    c = Coordinator(cfg)
    c.start()
    endpoint = f"127.0.0.1:{port}"
    sessions = {}
    for node, member, prio in (("vm1", "kv-1", 200), ("vm2", "kv-2", 100)):
        s = AgentSession(node, [HostedMember("kv", member, prio)], [endpoint], ttl=TTL,
                         interval=INTERVAL)
        s.start()
        sessions[node] = s
    wait_for(lambda: c.store.state().groups["kv"].active == "kv-1", 10, what="kv-1 active")
    yield c, endpoint, sessions
    for s in sessions.values():
        s.stop()
    c.stop()


def test_checkpoint_and_queue_are_fenced_across_a_failover(cluster):
    c, endpoint, sessions = cluster
    with StateClient([endpoint]) as store:
        assert store.get_checkpoint("kv") is None
        assert store.put_checkpoint("kv", 1, b"state-1", sync_sequence=4) == 1
        assert store.publish("kv", 1, b"m0") == 0
        sessions["vm1"].paused = True  # the active goes silent: failover to kv-2, epoch 2
        wait_for(lambda: c.store.state().groups["kv"].active == "kv-2", 10, what="failover")
        # The new active reads what the old one wrote...
        cp = store.get_checkpoint("kv", min_epoch=2)
        assert cp is not None and (cp.data, cp.epoch, cp.sync_sequence) == (b"state-1", 1, 4)
        # ...and the old one can no longer write anything.
        with pytest.raises(StaleEpochError) as e:
            store.put_checkpoint("kv", 1, b"zombie")
        assert e.value.error == "stale_epoch" and e.value.epoch == 2
        with pytest.raises(StaleEpochError):
            store.publish("kv", 1, b"zombie")
        assert store.get_checkpoint("kv").data == b"state-1"
        assert [m.data for m in store.read("kv").messages] == [b"m0"]
        assert store.put_checkpoint("kv", 2, b"state-2") == 2
        assert store.publish("kv", 2, b"m1") == 1
        assert c.state_api.refused["stale_epoch"] == 2


def status_of(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(RefusedError) as e:
        fn()
    return e.value.error, e.value.message


def test_bad_input_gets_a_clear_error_and_applies_nothing(cluster):
    c, endpoint, _ = cluster
    with StateClient([endpoint]) as store:
        store.put_checkpoint("kv", 1, b"good")
        before = c.store.state()
        err, msg = status_of(lambda: store.put_checkpoint("kv", 1, b"x" * 1025))
        assert err == "too_large" and "1025" in msg and "checkpoint_max_bytes" in msg
        err, msg = status_of(lambda: store.publish("kv", 1, b"x" * 101))
        assert err == "too_large"
        err, msg = status_of(lambda: store.put_checkpoint("kv", 9, b"forged"))
        assert err == "future_epoch" and "forged" in msg
        err, _ = status_of(lambda: store.put_checkpoint("nope", 1, b"x"))
        assert err == "unknown_group"
        err, _ = status_of(lambda: store.put_checkpoint("kv", 0, b"x"))
        assert err == "invalid"
        # Nothing applied. (Not the whole state: under load a lease lapse may commit a
        # role-side change meanwhile; the data sections are what these writes touch.)
        after = c.store.state()
        assert after.checkpoints is before.checkpoints and after.queues is before.queues
        assert store.get_checkpoint("kv").data == b"good"


def test_queue_retention_and_offsets(cluster):
    _, endpoint, _ = cluster
    with StateClient([endpoint]) as store:
        offsets = [store.publish("kv", 1, f"m{i}".encode()) for i in range(8)]
        assert offsets == list(range(8))
        r = store.read("kv", from_offset=4, max_messages=2)
        assert [m.offset for m in r.messages] == [4, 5]
        assert (r.first_offset, r.next_offset) == (3, 8)  # 5 retained
        err, msg = status_of(lambda: store.read("kv", from_offset=1))
        assert err == "out_of_range" and "oldest is 3" in msg


def test_epoch_lookup_and_min_epoch_wait(cluster):
    _, endpoint, _ = cluster
    with StateClient([endpoint]) as store:
        assert store.committed_epoch("kv") == 1
        assert store.committed_epoch("kv", at_least=5) == 1  # waits briefly, then answers
        with pytest.raises(Exception, match="epoch 1 only"):
            store.get_checkpoint("kv", min_epoch=5)


def settled(c: Coordinator) -> bool:
    """Both members healthy, and the state did not move for one TTL."""
    before = c.store.state()
    members = before.groups["kv"].members.values()
    if len(members) != 2 or any(m.health != Health.HEALTHY for m in members):
        return False
    time.sleep(TTL)
    return c.store.state().revision == before.revision


def test_data_traffic_pushes_no_assignments_and_adds_no_events(cluster):
    c, endpoint, _ = cluster
    received: list[int] = []
    ch = grpc.insecure_channel(endpoint)
    call = agent_pb2_grpc.AgentServiceStub(ch).WatchAssignments(
        agent_pb2.WatchAssignmentsRequest(node="vm1"))

    def follow() -> None:
        try:
            for resp in call:
                received.append(resp.revision)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: received, 5, what="the initial snapshot")
    # Settled first: both members healthy and no commit for a whole TTL, so the role
    # machinery's own start-up commits (kv-2's first health report) cannot land among
    # the writes below and be taken for theirs.
    wait_for(lambda: settled(c), 10, what="the roles settled")
    events = c.store.state().events
    rev = c.store.state().revision
    with StateClient([endpoint]) as store:
        for i in range(30):
            store.publish("kv", 1, b"x")
            store.put_checkpoint("kv", 1, str(i).encode())
    assert c.store.state().revision == rev + 60
    assert c.store.state().events is events
    assert len(received) == 1  # still only the initial snapshot
    call.cancel()
    ch.close()
    t.join(2)
