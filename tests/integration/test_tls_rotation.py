"""Certificate rotation under traffic: no failover, no lease lapse, no dropped stream.

A coordinator (memory store, mTLS) with two agent sessions exchanging keepalives
every 50 ms; the coordinator's and the agents' certificates and keys are replaced
on disk several times while they run. New connections must see the new server
certificate; the running keepalive streams must carry on untouched.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.security.tls import ChannelSource, TlsFiles
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import admin_pb2, admin_pb2_grpc
from vnfha_lab.testpki import LabPki

TTL = 0.6
INTERVAL = 0.05
ROTATIONS = 4


def presented_serial(port: int, client: TlsFiles) -> int:
    """The serial of the certificate the server presents to a new connection."""
    ctx = ssl.create_default_context(cafile=str(client.ca_file))
    ctx.load_cert_chain(str(client.cert_file), str(client.key_file))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial(files: TlsFiles) -> int:
    return x509.load_pem_x509_certificate(files.cert_file.read_bytes()).serial_number


class Roles:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, bool, int]] = []

    def cb(self, group: str, member: str, active: bool, epoch: int, why: str) -> None:
        with self.lock:
            self.log.append((member, active, epoch))


@pytest.fixture
def rig(tmp_path) -> Iterator[tuple[Coordinator, int, LabPki, list[AgentSession], Roles]]:
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
    roles = Roles()
    sessions = [AgentSession(node, [HostedMember("web", member, prio)], [f"127.0.0.1:{port}"],
                             ttl=TTL, interval=INTERVAL, on_role=roles.cb,
                             tls=pki.files(f"node/{node}"))
                for node, member, prio in (("vm1", "web-1", 200), ("vm2", "web-2", 100))]
    try:
        for s in sessions:
            s.start()
        wait_for(lambda: c.store.state().groups["web"].active == "web-1"
                 and len(c.store.state().groups["web"].members) == 2, 10, what="web-1 active")
        wait_for(lambda: roles.log and roles.log[-1][:2] == ("web-1", True), 5,
                 what="vm1 acting")
        wait_for(lambda: all(s._calls[0] is not None for s in sessions), 5,
                 what="keepalive streams open")
        yield c, port, pki, sessions, roles
    finally:
        for s in sessions:
            s.stop()
        c.stop()


def test_rotation_under_traffic_causes_no_failover_and_keeps_streams(rig) -> None:
    c, port, pki, sessions, roles = rig
    server = pki.files("coordinator/c1")
    agent_files = {s.node: pki.files(f"node/{s.node}") for s in sessions}
    streams = [s._calls[0] for s in sessions]
    assert all(call is not None for call in streams)
    epoch = c.store.state().groups["web"].epoch
    acked = c.agent_api.keepalives
    for i in range(ROTATIONS):
        # Re-issue in place: same identities, new keys, same file names.
        name = server.cert_file.name.removesuffix(".pem")
        new = pki.ca.issue_identity("coordinator/c1", file_name=name)
        for node in agent_files:
            pki.ca.issue_identity(f"node/{node}",
                                  file_name=agent_files[node].cert_file.name.removesuffix(".pem"))
        # The next handshake gets the new certificate (the fetcher notices the change).
        wait_for(lambda new=new: presented_serial(port, agent_files["vm1"])
                 == x509.load_pem_x509_certificate(new.cert.read_bytes()).serial_number,
                 5, what=f"rotation {i + 1} served")
        time.sleep(2 * INTERVAL)
    assert c.server_tls.reloads == ROTATIONS
    time.sleep(TTL)  # a full TTL of traffic after the last rotation
    assert c.agent_api.keepalives > acked + ROTATIONS
    g = c.store.state().groups["web"]
    assert g.active == "web-1" and g.epoch == epoch, "a rotation caused a failover"
    with roles.lock:
        assert roles.log == [("web-1", True, epoch)], "a lease lapsed during the rotation"
    assert [s._calls[0] for s in sessions] == streams, "a keepalive stream was re-opened"
    assert all(s.lease.valid(time.monotonic()) for s in sessions)


def test_half_written_rotation_keeps_the_old_certificate(rig) -> None:
    """A new certificate whose key is not written yet is not served; the old one is."""
    c, port, pki, _, _ = rig
    server = pki.files("coordinator/c1")
    before = serial(server)
    stray = pki.ca.issue_identity("coordinator/c1", file_name="stray")
    server.cert_file.write_bytes(stray.cert.read_bytes())  # key left as it was
    assert presented_serial(port, pki.files("node/vm1")) == before
    server.key_file.write_bytes(stray.key.read_bytes())  # the key follows
    wait_for(lambda: presented_serial(port, pki.files("node/vm1")) == serial(server), 5,
             what="the complete pair served")
    assert c.store.state().groups["web"].active == "web-1"


def test_client_channel_follows_its_files(rig) -> None:
    """New calls after a client rotation go out with the new certificate."""
    _, port, pki, _, _ = rig
    files = pki.files("admin/rot")
    src = ChannelSource(f"127.0.0.1:{port}", files, check_every=0.0)
    try:
        first = src.get()
        admin_pb2_grpc.AdminServiceStub(first).GetStatus(admin_pb2.GetStatusRequest(),
                                                         timeout=5)
        pki.ca.issue_identity("admin/rot", file_name=files.cert_file.name.removesuffix(".pem"))
        second = src.get()
        assert second is not first
        admin_pb2_grpc.AdminServiceStub(second).GetStatus(admin_pb2.GetStatusRequest(),
                                                          timeout=5)
        assert src.get() is second  # unchanged files: the same channel
    finally:
        src.close()
