"""Audit: accepted state-changing calls name their caller in the event history and the
log; refused calls are logged (rate-limited) with identity and reason."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import grpc
import pytest
from support import free_port, wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator import cli
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.security.authz import RefusalLog
from vnfha.coordinator.security.tls import channel_credentials
from vnfha.coordinator.server import Coordinator
from vnfha.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from vnfha_lab.testpki import LabPki

TTL = 0.6
INTERVAL = 0.1


@pytest.fixture
def rig(tmp_path) -> Iterator[tuple[Coordinator, str, LabPki]]:
    pki = LabPki(tmp_path / "pki")
    api = f"127.0.0.1:{free_port()}"
    c = Coordinator(parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": api}]},
        "store": {"backend": "memory"},
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 0.2},
        "groups": [{"name": "web"}],
        "tls": pki.section("coordinator/c1"),
    }))
    c.start()
    sessions = [AgentSession(node, [HostedMember("web", member, prio)], [api], ttl=TTL,
                             interval=INTERVAL, tls=pki.files(f"node/{node}"))
                for node, member, prio in (("vm1", "web-1", 200), ("vm2", "web-2", 100))]
    try:
        for s in sessions:
            s.start()
        wait_for(lambda: (g := c.store.state().groups["web"]).active == "web-1"
                 and all(m.health.value == "healthy" for m in g.members.values())
                 and len(g.members) == 2, 10, what="web-1 active, web-2 healthy")
        yield c, api, pki
    finally:
        for s in sessions:
            s.stop()
        c.stop()


def _admin(api: str, pki: LabPki, identity: str) -> grpc.Channel:
    return grpc.secure_channel(api, channel_credentials(pki.files(identity)))


def test_events_name_who_asked(rig, caplog) -> None:
    _, api, pki = rig
    caplog.set_level(logging.INFO, logger="vnfha.authz")
    with _admin(api, pki, "admin/alice") as ch:
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        resp = admin.Switchover(admin_pb2.SwitchoverRequest(group="web", to_member="web-2",
                                                            wait_ms=5000), timeout=10)
        assert resp.completed
        events = admin.ListEvents(admin_pb2.ListEventsRequest(), timeout=5).events
    by_kind = {}
    for e in events:
        by_kind.setdefault(e.kind, []).append(e)
    registered = {e.node: e.actor for e in by_kind["node_registered"]}
    assert registered == {"vm1": "vnfha://node/vm1", "vm2": "vnfha://node/vm2"}
    demoted = by_kind["demoted"][-1]
    assert demoted.member == "web-1" and demoted.actor == "vnfha://admin/alice"
    # The promotion that follows is the coordinators' own decision: no actor.
    assert by_kind["promoted"][-1].member == "web-2" and by_kind["promoted"][-1].actor == ""
    accepted = [r for r in caplog.records if r.getMessage() == "call accepted"
                and getattr(r, "method", "") == "/vnfha.v1.AdminService/Switchover"]
    assert [r.identity for r in accepted] == ["vnfha://admin/alice"]
    # ...and `vnfha events` shows it.
    out = io.StringIO()
    files = pki.files("admin/alice")
    code = cli.main(["--endpoint", api, "--cacert", str(files.ca_file), "--cert",
                     str(files.cert_file), "--key", str(files.key_file), "events"], out=out)
    assert code == 0
    line = next(x for x in out.getvalue().splitlines() if "demoted" in x and "web-1" in x)
    assert "by=vnfha://admin/alice" in line


def test_refused_calls_are_logged_with_identity_and_reason(rig, caplog) -> None:
    c, api, pki = rig
    caplog.set_level(logging.INFO, logger="vnfha.authz")
    with _admin(api, pki, "viewer/noc") as ch:
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        for _ in range(20):
            with pytest.raises(grpc.RpcError) as info:
                admin.SetMaintenance(admin_pb2.SetMaintenanceRequest(node="vm1", on=True),
                                     timeout=5)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    refused = [r for r in caplog.records if r.getMessage() == "call refused"]
    assert len(refused) == 1, "a flood of refusals is logged once per interval"
    assert refused[0].identity == "vnfha://viewer/noc"
    assert "admin only" in refused[0].reason
    assert not c.store.state().nodes["vm1"].maintenance


def test_refusal_log_is_rate_limited_per_identity_and_method() -> None:
    now = [0.0]
    seen: list[int] = []
    rl = RefusalLog(every=10.0, clock=lambda: now[0])

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.suppressed)  # type: ignore[attr-defined]

    h = Capture()
    logging.getLogger("vnfha.authz").addHandler(h)
    try:
        for _ in range(5):
            rl.note("vnfha://node/vm2", "/m", "PERMISSION_DENIED", "r")
        rl.note("vnfha://node/vm3", "/m", "PERMISSION_DENIED", "r")  # another caller: logged
        now[0] = 11.0
        rl.note("vnfha://node/vm2", "/m", "PERMISSION_DENIED", "r")
    finally:
        logging.getLogger("vnfha.authz").removeHandler(h)
    assert seen == [0, 0, 4]
    assert rl.refused == 7


def test_admin_socket_is_local_root_only_and_audited_as_local(tmp_path) -> None:
    pki = LabPki(tmp_path / "pki")
    sock = tmp_path / "run" / "c1.sock"
    c = Coordinator(parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        "groups": [{"name": "web"}],
        "admin_socket": str(sock),
        "tls": pki.section("coordinator/c1"),
    }))
    c.start()
    try:
        assert sock.stat().st_mode & 0o777 == 0o600
        with grpc.insecure_channel(f"unix://{sock}") as ch:  # no certificate: local root
            admin = admin_pb2_grpc.AdminServiceStub(ch)
            admin.ApplyGroups(admin_pb2.ApplyGroupsRequest(groups=[
                admin_pb2.GroupSpec(name="db", mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY)]),
                timeout=5)
            events = admin.ListEvents(admin_pb2.ListEventsRequest(), timeout=5).events
        created = [e for e in events if e.kind == "group_created" and e.group == "db"]
        assert [e.actor for e in created] == ["local"]
    finally:
        c.stop()
