"""The keepalive fast path over real sockets: one coordinator with mTLS, real agents.

Keys come from OpenFastPath over the mTLS channel, keepalives and answers travel as
UDP datagrams on loopback. What must hold: the lease is kept by datagrams, a node's
key cannot keep another node alive, a key the coordinator forgot (a restart) is
replaced without a lapse, and junk on the port is counted and changes nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator import fastwire as W
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.security.tls import channel_credentials
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from vnfha_lab.testpki import LabPki

TTL = 0.6
INTERVAL = 0.1


class Rig:
    def __init__(self, c: Coordinator, port: int, pki: LabPki,
                 sessions: dict[str, AgentSession]) -> None:
        self.c, self.port, self.pki, self.sessions = c, port, pki, sessions
        self.lapses: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch_leases, daemon=True)

    def _watch_leases(self) -> None:
        """Sample every agent's lease every 10 ms (bounded by the test's length)."""
        deadline = time.monotonic() + 60
        while not self._stop.wait(0.01) and time.monotonic() < deadline:
            for node, s in self.sessions.items():
                if not s.lease.valid(time.monotonic()):
                    self.lapses.append(node)

    def group(self):
        return self.c.store.state().groups["web"]

    def stub(self, identity: str) -> tuple[grpc.Channel, agent_pb2_grpc.AgentServiceStub]:
        ch = grpc.secure_channel(f"127.0.0.1:{self.port}",
                                 channel_credentials(self.pki.files(identity)))
        return ch, agent_pb2_grpc.AgentServiceStub(ch)


@pytest.fixture
def rig(tmp_path) -> Iterator[Rig]:
    pki = LabPki(tmp_path / "pki")
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}"}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.2},
        "groups": [{"name": "web"}],
        "tls": pki.section("coordinator/c1"),
    })
    c = Coordinator(cfg)
    c.start()
    assert c.fastpath is not None and c.fastpath.port == port  # UDP on the API's number
    sessions = {node: AgentSession(node, [HostedMember("web", member, prio)],
                                   [f"127.0.0.1:{port}"], ttl=TTL, interval=INTERVAL,
                                   tls=pki.files(f"node/{node}"))
                for node, member, prio in (("vm1", "web-1", 200), ("vm2", "web-2", 100))}
    r = Rig(c, port, pki, sessions)
    try:
        for s in sessions.values():
            s.start()
        wait_for(lambda: r.group().active == "web-1" and len(r.group().members) == 2
                 and all(m.health.value == "healthy" for m in r.group().members.values()),
                 15, what="web-1 active, web-2 a healthy standby")
        wait_for(lambda: all(s._routes.is_open(0) for s in sessions.values()), 10,
                 what="both agents on the fast path")
        wait_for(lambda: all(s.lease.valid(time.monotonic()) for s in sessions.values()), 5,
                 what="both leases held")
        r._thread.start()
        yield r
    finally:
        r._stop.set()
        for s in sessions.values():
            s.stop()
        c.stop()


def test_leases_are_held_by_datagrams(rig: Rig) -> None:
    c = rig.c
    assert c.fastpath is not None
    epoch = rig.group().epoch
    fast0, total0 = c.fastpath.answered, c.agent_api.keepalives
    time.sleep(3.0)
    fast = c.fastpath.answered - fast0
    over_grpc = (c.agent_api.keepalives - total0) - fast
    # Two agents, one round per INTERVAL each: at least half of the rounds counted
    # (the machine is shared), nearly all of them as datagrams.
    assert fast >= 3.0 / INTERVAL
    assert over_grpc <= 0.1 * fast, (fast, over_grpc)
    assert rig.lapses == []
    assert rig.group().active == "web-1" and rig.group().epoch == epoch
    assert sum(c.fastpath.dropped.values()) == 0
    for s in rig.sessions.values():
        assert s._fast is not None and s._fast.answers > 0


def test_a_nodes_key_cannot_keep_another_node_alive(rig: Rig) -> None:
    """vm3 holds a valid certificate and a valid fast-path key of its own; datagrams it
    seals for node vm1 are dropped, so vm1's silence fails web-1 over as usual."""
    c = rig.c
    assert c.fastpath is not None
    ch, stub = rig.stub("node/vm3")
    try:
        with pytest.raises(grpc.RpcError) as denied:
            stub.OpenFastPath(agent_pb2.OpenFastPathRequest(node="vm1"), timeout=5)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stub.RegisterNode(agent_pb2.RegisterNodeRequest(node="vm3"), timeout=5)
        issued = stub.OpenFastPath(agent_pb2.OpenFastPathRequest(node="vm3"), timeout=5)
    finally:
        ch.close()
    key = W.SessionKey(issued.key_id, issued.key)
    epoch = rig.group().epoch
    forged = agent_pb2.KeepaliveRequest(node="vm1", seq=1, members=[agent_pb2.MemberReport(
        group="web", member="web-1", health=types_pb2.HEALTH_HEALTHY, seen_epoch=epoch,
        active_epoch=epoch)]).SerializeToString()
    stop = threading.Event()
    sent = [0]

    def forge() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            deadline = time.monotonic() + 20
            while not stop.wait(INTERVAL / 2) and time.monotonic() < deadline:
                sent[0] += 1
                sock.sendto(key.seal(W.KIND_KEEPALIVE, sent[0], forged),
                            ("127.0.0.1", issued.port))

    forger = threading.Thread(target=forge, daemon=True)
    forger.start()
    try:
        rig.sessions["vm1"].paused = True  # vm1 goes silent; only the forger speaks for it
        wait_for(lambda: rig.group().active == "web-2", 10,
                 what="web-1 failed over despite the forged datagrams")
    finally:
        stop.set()
        forger.join(timeout=5)
    assert sent[0] > 0 and c.fastpath.dropped["wrong_node"] >= 1
    assert rig.group().epoch > epoch


def test_forgotten_key_is_replaced_without_a_lapse(rig: Rig) -> None:
    """What an agent sees after a coordinator restart: its key is unknown. It sends
    the next rounds over gRPC as well, opens a new key, and goes back to datagrams."""
    c = rig.c
    assert c.fastpath is not None
    s = rig.sessions["vm1"]
    epoch = rig.group().epoch
    c.fastpath.forget("vm1")  # the agent's key is gone, as after a restart
    wait_for(lambda: c.fastpath is not None and c.fastpath.dropped["unknown_key"] >= 1, 5,
             what="the agent's datagrams refused")
    wait_for(lambda: s._fast is not None and s._fast.answers > 0
             and c.fastpath is not None and c.fastpath.sessions() == 2
             and not s._routes.fallen_back(0), 10, what="a new key in use")
    answered = c.fastpath.answered
    wait_for(lambda: c.fastpath is not None and c.fastpath.answered > answered + 5, 5,
             what="datagrams answered again")
    assert rig.lapses == []
    assert rig.group().active == "web-1" and rig.group().epoch == epoch


def test_junk_is_counted_and_changes_nothing(rig: Rig) -> None:
    c = rig.c
    assert c.fastpath is not None
    epoch = rig.group().epoch
    junk = [b"", b"VF", os.urandom(40), os.urandom(W.MAX_DATAGRAM + 100),
            W.HEADER.pack(W.MAGIC, W.VERSION, W.KIND_KEEPALIVE, b"\x00" * 8, 1) + bytes(40)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(20):
            for d in junk:
                sock.sendto(d, ("127.0.0.1", c.fastpath.port))
    wait_for(lambda: c.fastpath is not None
             and sum(c.fastpath.dropped.values()) >= 20 * len(junk), 5,
             what="every junk datagram counted")
    assert c.fastpath.dropped["oversize"] >= 20
    assert c.fastpath.dropped["unknown_key"] >= 20
    time.sleep(2 * TTL)
    assert rig.lapses == []
    assert rig.group().active == "web-1" and rig.group().epoch == epoch
