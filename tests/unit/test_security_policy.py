"""Pure parts of coordinator/security: identities from certificates, the policy's
object-level checks, TLS file checks. (The RPC x identity matrix over real gRPC is
tests/integration/test_authz_matrix.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from vnfha.coordinator.model import ClusterState, Group, Member, Node
from vnfha.coordinator.security.identity import (
    INSECURE_IDENTITY,
    LOCAL_IDENTITY,
    Identity,
    IdentityError,
    from_auth_context,
    from_certificate,
    parse_uri,
)
from vnfha.coordinator.security.policy import RULES, decide_call, decide_request
from vnfha.coordinator.security.tls import TlsError, TlsFiles
from vnfha.v1 import agent_pb2, state_pb2
from vnfha_lab.testpki import TestCA

VM1 = Identity("node", "vm1")
VM2 = Identity("node", "vm2")


def state() -> ClusterState:
    web = Group(name="web", epoch=3, active="web-1", members={
        "web-1": Member(name="web-1", group="web", node="vm1"),
        "web-2": Member(name="web-2", group="web", node="vm2")})
    return ClusterState(nodes={"vm1": Node("vm1"), "vm2": Node("vm2"), "vm3": Node("vm3")},
                        groups={"web": web})


@pytest.mark.parametrize(("uri", "expected"), [
    ("vnfha://node/vm1", Identity("node", "vm1")),
    ("vnfha://admin/alice.b-c_d", Identity("admin", "alice.b-c_d")),
    ("vnfha://lb/lb1", Identity("lb", "lb1")),
])
def test_parse_uri(uri: str, expected: Identity) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize("uri", ["vnfha://root/x", "vnfha://node/", "vnfha://node",
                                 "vnfha://node/a/b", "vnfha://node/-x", "https://node/vm1",
                                 "vnfha://node/" + "a" * 64, "vnfha://node/a\nb",
                                 "vnfha://node/vm1\n"])
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(IdentityError):
        parse_uri(uri)


def _cert(ca: TestCA, name: str, **kw) -> x509.Certificate:
    files = ca.issue_identity(name, **kw)
    return x509.load_pem_x509_certificate(files.cert.read_bytes())


def test_a_certificate_names_exactly_one_identity(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    assert from_certificate(_cert(ca, "node/vm1")) == VM1
    with pytest.raises(IdentityError, match="2 vnfha identities"):
        from_certificate(_cert(ca, "node/vm1", file_name="two",
                               extra_uris=("vnfha://admin/x",)))
    plain = x509.load_pem_x509_certificate(ca.issue_client("plain").cert.read_bytes())
    with pytest.raises(IdentityError, match="names no vnfha identity"):
        from_certificate(plain)


def test_callers_without_certificates() -> None:
    assert from_auth_context({}, "unix:/run/vnfha/c1.sock", tls=True) == LOCAL_IDENTITY
    assert from_auth_context({}, "ipv4:127.0.0.1:5000", tls=False) == INSECURE_IDENTITY
    with pytest.raises(IdentityError, match="no client certificate"):
        from_auth_context({}, "ipv4:127.0.0.1:5000", tls=True)


def test_unknown_method_is_refused_even_for_admin() -> None:
    d = decide_call("/vnfha.v1.AdminService/DropEverything", Identity("admin", "a"))
    assert not d.allowed and "no rule allows this method" in d.reason


def test_local_passes_everything_insecure_all_but_local_only() -> None:
    for method, rule in RULES.items():
        assert decide_call(method, LOCAL_IDENTITY).allowed
        assert decide_call(method, INSECURE_IDENTITY).allowed == (not rule.local_only)


def test_register_only_itself_and_members_no_one_else_holds() -> None:
    m = "/vnfha.v1.AgentService/RegisterNode"

    def req(node: str, *members: str) -> agent_pb2.RegisterNodeRequest:
        return agent_pb2.RegisterNodeRequest(node=node, members=[
            agent_pb2.MemberSpec(group="web", member=x) for x in members])

    assert decide_request(m, VM1, req("vm1", "web-1", "web-9"), state).allowed
    d = decide_request(m, VM2, req("vm1"), state)
    assert not d.allowed and "vnfha://node/vm2" in d.reason and "'vm1'" in d.reason
    d = decide_request(m, VM2, req("vm2", "web-2", "web-1"), state)
    assert not d.allowed and "web/web-1 belongs to node vm1" in d.reason


def test_state_writes_only_from_the_actives_node() -> None:
    for m in ("/vnfha.v1.StateService/Publish", "/vnfha.v1.StateService/PutCheckpoint"):
        req = state_pb2.PublishRequest(group="web", epoch=3)
        assert decide_request(m, VM1, req, state).allowed
        assert not decide_request(m, VM2, req, state).allowed
        assert not decide_request(m, VM1, state_pb2.PublishRequest(group="nope"), state).allowed


def test_state_reads_only_by_the_groups_nodes_and_readers() -> None:
    m = "/vnfha.v1.StateService/GetCheckpoint"
    req = state_pb2.GetCheckpointRequest(group="web")
    assert decide_request(m, VM2, req, state).allowed
    assert not decide_request(m, Identity("node", "vm3"), req, state).allowed
    assert decide_request(m, Identity("viewer", "noc"), req, state).allowed


def test_mismatched_key_and_certificate_are_refused(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    a, b = ca.issue_identity("node/a"), ca.issue_identity("node/b")
    TlsFiles(ca.ca_file, a.cert, a.key).load()
    with pytest.raises(TlsError, match="is not the key of"):
        TlsFiles(ca.ca_file, a.cert, b.key).load()
    with pytest.raises(TlsError, match="cannot read"):
        TlsFiles(ca.ca_file, a.cert, tmp_path / "missing.pem").load()
    with pytest.raises(TlsError, match="not a PEM certificate"):
        TlsFiles(ca.ca_file, a.key, a.key).load()
