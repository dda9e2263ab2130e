"""A real coordinator with its metrics listener, scraped over HTTP on loopback.

Two real agent sessions keep their nodes alive over gRPC; the scrapes must show
the roles and epoch the state holds, and follow a switchover and a lost-node
failover (counters by cause, durations observed, new roles).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import admin_pb2, admin_pb2_grpc

TTL = 0.6
INTERVAL = 0.1

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base: str) -> Samples:
    code, text = get(base + "/metrics")
    assert code == 200
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def active_member(samples: Samples) -> set[str]:
    return {dict(k[1])["member"] for k, v in samples.items()
            if k[0] == "vnfha_member_role" and dict(k[1])["role"] == "active" and v == 1}


@pytest.fixture
def cluster() -> Iterator[tuple[Coordinator, str, dict[str, AgentSession], str]]:
    port, mport = free_port(), free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.5},
        "groups": [{"name": "web", "vip": "198.18.0.100/24"}],
        "metrics": {"listen": f"127.0.0.1:{mport}"},
    })
    c = Coordinator(cfg)
    c.start()
    endpoint = f"127.0.0.1:{port}"
    sessions = {}
    try:
        for node, member, prio in (("vm1", "m1", 200), ("vm2", "m2", 100)):
            s = AgentSession(node, [HostedMember("web", member, prio)], [endpoint], ttl=TTL,
                             interval=INTERVAL)
            s.start()
            sessions[node] = s
        wait_for(lambda: c.store.state().groups["web"].active == "m1", 5, what="m1 active")
        yield c, endpoint, sessions, f"http://127.0.0.1:{mport}"
    finally:
        for s in sessions.values():
            s.stop()
        c.stop()


def test_scrape_follows_switchover_and_failover(cluster):
    _, endpoint, sessions, base = cluster
    assert get(base + "/livez")[0] == 200
    code, body = get(base + "/readyz")
    assert code == 200 and "leader c1" in body
    assert get(base + "/nope")[0] == 404

    m = scrape(base)
    assert active_member(m) == {"m1"}
    assert value(m, "vnfha_group_epoch", group="web") == 1
    assert value(m, "vnfha_member_role", group="web", member="m2", node="vm2",
                 role="standby") == 1
    assert value(m, "vnfha_store_leader") == 1
    assert value(m, "vnfha_store_reachable") == 1
    assert value(m, "vnfha_coordinator_ready") == 1
    assert value(m, "vnfha_elections_total", group="web") == 1
    assert value(m, "vnfha_switchovers_total", group="web", cause="switchover") is None
    assert value(m, "vnfha_keepalive_ack_seconds_count") > 0
    assert value(m, "vnfha_store_commit_seconds_count") > 0
    assert 0 <= value(m, "vnfha_node_lease_age_seconds", node="vm1") <= TTL

    with grpc.insecure_channel(endpoint) as ch:
        resp = admin_pb2_grpc.AdminServiceStub(ch).Switchover(
            admin_pb2.SwitchoverRequest(group="web", to_member="m2"))
    assert resp.completed and resp.epoch == 3
    m = scrape(base)
    assert active_member(m) == {"m2"}
    assert value(m, "vnfha_group_epoch", group="web") == 3
    assert value(m, "vnfha_switchovers_total", group="web", cause="switchover") == 1
    assert value(m, "vnfha_failover_commit_seconds_count", cause="switchover") == 1

    sessions["vm2"].paused = True  # the active's node goes silent: lost after one TTL
    wait_for(lambda: active_member(scrape(base)) == {"m1"}, 5, interval=0.1,
             what="m1 active again after vm2 was lost")
    m = scrape(base)
    assert value(m, "vnfha_group_epoch", group="web") == 4
    assert value(m, "vnfha_failovers_total", group="web", cause="lost") == 1
    assert value(m, "vnfha_failover_detection_seconds_count", cause="lost") == 1
    assert value(m, "vnfha_failover_commit_seconds_count", cause="lost") == 1
    # Detection waits at least one TTL of silence, by definition of "lost".
    assert value(m, "vnfha_failover_detection_seconds_sum", cause="lost") >= TTL
    assert value(m, "vnfha_member_health", group="web", member="m2", node="vm2",
                 health="lost") == 1
    assert value(m, "vnfha_member_quarantined", group="web", member="m2", node="vm2") == 1


def test_a_taken_metrics_port_fails_the_start_and_releases_everything():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    mport = taken.getsockname()[1]
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "metrics": {"listen": f"127.0.0.1:{mport}"},
    })
    try:
        with pytest.raises(OSError, match=rf"metrics\.listen 127\.0\.0\.1:{mport}: "):
            Coordinator(cfg).start()
    finally:
        taken.close()
    # The gRPC port was released: a coordinator can start on it now.
    again = Coordinator(cfg)
    again.start()
    try:
        code, body = get(f"http://127.0.0.1:{mport}/readyz")
        assert code == 200 and body.startswith("ok: leader c1")
    finally:
        again.stop()


def test_agent_metrics_and_readiness_follow_its_lease():
    """A real agent (no VIP management: loopback, root namespace) with its listener:
    ready and active while its coordinator acknowledges it, not ready once the
    coordinator is gone and its lease ran out."""
    from vnfha.agents.config import parse_agent_config
    from vnfha.agents.main import Agent

    port = free_port()
    c = Coordinator(parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.5},
        "groups": [{"name": "web"}],
    }))
    c.start()
    aport = free_port()
    agent = Agent(parse_agent_config({
        "node": "vm1", "coordinators": [f"127.0.0.1:{port}"],
        "lease": {"ttl": TTL, "keepalive_interval": INTERVAL},
        "vip": {"manage": False},
        "members": [{"group": "web", "member": "m1"}],
        "metrics": {"listen": f"127.0.0.1:{aport}"},
    }))
    base = f"http://127.0.0.1:{aport}"
    coordinator_running = True
    try:
        agent.start()
        wait_for(lambda: get(base + "/readyz") == (200, "ok: active: web/m1\n"), 5,
                 interval=0.05, what="agent ready and active")
        m = scrape(base)
        assert value(m, "vnfha_agent_lease_valid") == 1
        assert 0 < value(m, "vnfha_agent_lease_remaining_seconds") <= TTL
        assert value(m, "vnfha_agent_keepalive_acks_total", coordinator="c1") > 0
        assert value(m, "vnfha_agent_member_role", group="web", member="m1",
                     role="active") == 1
        assert value(m, "vnfha_agent_seen_epoch", group="web", member="m1") == 1
        assert get(base + "/livez")[0] == 200

        c.stop()
        coordinator_running = False
        _, body = wait_for(lambda: (r := get(base + "/readyz"))[0] == 503 and r, 5,
                              interval=0.05, what="agent not ready without its lease")
        assert "no lease" in body
        m = scrape(base)
        assert value(m, "vnfha_agent_lease_valid") == 0
        assert value(m, "vnfha_agent_member_role", group="web", member="m1",
                     role="active") == 0
    finally:
        agent.stop()
        if coordinator_running:
            c.stop()
