"""Clients check WHO serves, not only that some certificate of the CA does.

Before: every vnfha certificate carried 127.0.0.1 (and the host's addresses), and
gRPC's client checks only DNS/IP names, so a host holding any valid certificate
(say node/vm2's) that could take a coordinator's address passed for that
coordinator: it could acknowledge a partitioned active's keepalives and keep its
lease alive, or hand out assignments. Now a client asks for the server's role name
(`coordinator.vnfha.internal`, `node.vnfha.internal`), which only the CA sets and
only on certificates of that kind. Real gRPC over real sockets.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from support import free_port

from vnfha.agents.statesync.receiver import SyncConfigError, SyncReceiver, is_local_bind
from vnfha.coordinator.security.identity import ROLE_DNS_SUFFIX, role_dns_name
from vnfha.coordinator.security.tls import (
    ChannelSource,
    ReloadingServerCredentials,
    TlsError,
    TlsFiles,
)
from vnfha_lab.testpki import LabPki

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pki(tmp_path: Path) -> LabPki:
    return LabPki(tmp_path / "pki")


def _serve(files: TlsFiles, serves_as: str | None = None) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    h = health.HealthServicer()
    h.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(h, server)
    target = f"127.0.0.1:{free_port()}"
    assert server.add_secure_port(
        target, ReloadingServerCredentials(files, serves_as=serves_as).credentials())
    server.start()
    return server, target


@pytest.fixture
def servers() -> Iterator[list[grpc.Server]]:
    started: list[grpc.Server] = []
    yield started
    for s in started:
        s.stop(None)


def _check(target: str, client: TlsFiles, server_kind: str = "coordinator") -> str:
    """'SERVING', or the gRPC status name when the call fails."""
    src = ChannelSource(target, client, server_kind=server_kind)
    try:
        stub = health_pb2_grpc.HealthStub(src.get())
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=3)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as e:
        return e.code().name
    finally:
        src.close()


def test_a_node_certificate_does_not_pass_for_a_coordinator(pki, servers) -> None:
    rogue, target = _serve(pki.files("node/vm2", ("127.0.0.1",)))
    servers.append(rogue)
    assert _check(target, pki.files("node/vm1")) == "UNAVAILABLE"


def test_a_coordinator_certificate_passes_for_a_coordinator(pki, servers) -> None:
    real, target = _serve(pki.files("coordinator/c1"), serves_as="coordinator")
    servers.append(real)
    assert _check(target, pki.files("node/vm1")) == "SERVING"


def test_a_coordinator_certificate_does_not_pass_for_a_state_sync_peer(pki, servers) -> None:
    server, target = _serve(pki.files("coordinator/c1"))
    servers.append(server)
    assert _check(target, pki.files("node/vm1"), server_kind="node") == "UNAVAILABLE"
    peer, target2 = _serve(pki.files("node/vm2"), serves_as="node")
    servers.append(peer)
    assert _check(target2, pki.files("node/vm1"), server_kind="node") == "SERVING"


def test_a_server_whose_certificate_lacks_its_role_name_refuses_to_start(pki) -> None:
    files = pki.files("node/vm2")
    with pytest.raises(TlsError, match=r"lacks the DNS name coordinator\.vnfha\.internal"):
        ReloadingServerCredentials(files, serves_as="coordinator")


def test_the_ca_refuses_role_names_asked_for_by_hand(pki) -> None:
    with pytest.raises(ValueError, match="role names"):
        pki.ca.issue_identity("node/vm9", san_dns=("coordinator.vnfha.internal",))


def test_vnfha_certs_issue_refuses_a_role_name_with_one_line(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "vnfha.coordinator.cli", "certs"]
    subprocess.run([*cli, "init", "--dir", str(tmp_path)], check=True, capture_output=True)
    r = subprocess.run([*cli, "issue", "--dir", str(tmp_path), "--identity", "node/vm1",
                        "--san-dns", "Coordinator.VNFHA.internal"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "role names" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "node-vm1.pem").exists()


def test_ansible_cert_check_reissues_a_certificate_without_its_role_name(pki) -> None:
    spec = importlib.util.spec_from_file_location(
        "cert_check", ROOT / "ansible/roles/vnfha_common/files/cert_check.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.ROLE_DNS_SUFFIX == ROLE_DNS_SUFFIX
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    good = pki.files("coordinator/c1")
    assert mod.reason(good.cert_file, good.ca_file, "vnfha://coordinator/c1", [], [], 0,
                      now) is None
    old = pki.ca.issue_client("coordinator-c1-old")  # no role name (as before this change)
    why = mod.reason(old.cert, good.ca_file, "vnfha://coordinator/c1", [], [], 0, now)
    assert why is not None


def test_role_names_are_per_kind() -> None:
    assert role_dns_name("coordinator") == "coordinator.vnfha.internal"
    assert role_dns_name("node") != role_dns_name("coordinator")
    with pytest.raises(ValueError):
        role_dns_name("root")


@pytest.mark.parametrize("bind,local", [
    ("127.0.0.1:7601", True), ("localhost:0", True), ("[::1]:7601", True),
    ("unix:/run/x.sock", True), ("0.0.0.0:7601", False), ("[::]:7601", False),
    ("198.18.0.5:7601", False), ("sync.example:7601", False),
])
def test_which_binds_are_local(bind: str, local: bool) -> None:
    assert is_local_bind(bind) is local


def test_a_plaintext_sync_receiver_refuses_a_network_bind() -> None:
    with pytest.raises(SyncConfigError, match="without TLS"):
        SyncReceiver("web", object(), lambda g, e: 1, bind="0.0.0.0:0")  # type: ignore[arg-type]
    # said out loud, it is allowed (labs)
    SyncReceiver("web", object(), lambda g, e: 1, bind="0.0.0.0:0",  # type: ignore[arg-type]
                 insecure=True)
