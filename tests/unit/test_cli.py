"""CLI: pure formatting on hand-built messages, endpoint parsing, and exit codes against a
real in-test gRPC AdminService on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from vnfha.coordinator import cli
from vnfha.v1 import admin_pb2, admin_pb2_grpc, types_pb2

# --------------------------------------------------------------------------- fixtures


def sample_status() -> admin_pb2.GetStatusResponse:
    return admin_pb2.GetStatusResponse(
        coordinator=admin_pb2.CoordinatorInfo(node_id="c2", is_leader=False, leader_id="c1",
                                              leader_endpoint="127.0.0.1:7401", revision=42,
                                              backend="raft", details={"term": "3"}),
        groups=[
            admin_pb2.GroupStatus(
                name="web", mode=types_pb2.GROUP_MODE_ACTIVE_STANDBY, vip="198.18.0.100/24",
                epoch=7, active="web-a", releasing="", handover_to="web-b",
                members=[
                    admin_pb2.MemberStatus(name="web-a", node="n1", role=types_pb2.ROLE_ACTIVE,
                                           health=types_pb2.HEALTH_HEALTHY, priority=100,
                                           lease_age_seconds=0.08),
                    admin_pb2.MemberStatus(name="web-b", node="n2", role=types_pb2.ROLE_STANDBY,
                                           health=types_pb2.HEALTH_UNHEALTHY, priority=90,
                                           quarantined=True),
                ]),
            admin_pb2.GroupStatus(name="empty", mode=types_pb2.GROUP_MODE_ACTIVE_ACTIVE,
                                  epoch=0),
        ],
        nodes=[admin_pb2.NodeStatus(name="n1", address="127.0.0.1", lease_age_seconds=0.08),
               admin_pb2.NodeStatus(name="n2", address="127.0.0.1", maintenance=True)],
    )


def sample_pool_and_sync_status() -> admin_pb2.GetStatusResponse:
    """An active-active group with one member excluded (recovery running), one whose
    recovery gave up, one whose recovery succeeded and is back; an active/standby group
    with a checkpoint and a queue; one with a queue only."""
    written = Timestamp()
    written.FromMilliseconds(1_700_000_000_500)
    R = types_pb2
    return admin_pb2.GetStatusResponse(
        coordinator=admin_pb2.CoordinatorInfo(node_id="c1", is_leader=True, leader_id="c1",
                                              revision=90, backend="raft"),
        groups=[
            admin_pb2.GroupStatus(
                name="api", mode=R.GROUP_MODE_ACTIVE_ACTIVE, epoch=0,
                members=[admin_pb2.MemberStatus(name=n, node=f"vm{i}", role=R.ROLE_STANDBY,
                                                health=h, priority=100)
                         for i, (n, h) in enumerate([("api-1", R.HEALTH_HEALTHY),
                                                     ("api-2", R.HEALTH_LOST),
                                                     ("api-3", R.HEALTH_HEALTHY),
                                                     ("api-4", R.HEALTH_UNHEALTHY)], 1)],
                pool=admin_pb2.PoolStatus(
                    pool_version=7, in_service=["api-1", "api-3"],
                    excluded=[
                        admin_pb2.ExcludedMember(
                            member="api-2", node="vm2", excluded_at_version=6,
                            reason="member api-2 lease expired (node vm2)",
                            blocked_by="member 'api-2' is lost"),
                        admin_pb2.ExcludedMember(member="api-4", node="vm4")],
                    lb_applied=[admin_pb2.LbApplied(node="lb1", pool_version=7),
                                admin_pb2.LbApplied(node="lb2", pool_version=6)]),
                recoveries=[
                    admin_pb2.RecoveryStatus(member="api-2", node="vm2", failure=6,
                                             reason="member api-2 lease expired (node vm2)",
                                             state=R.RECOVERY_STATE_REQUESTED, attempts=2,
                                             message="exec exited 1: vnfm busy"),
                    admin_pb2.RecoveryStatus(member="api-3", node="vm3", failure=3,
                                             reason="member api-3 reported unhealthy",
                                             state=R.RECOVERY_STATE_SUCCEEDED, attempts=1),
                    admin_pb2.RecoveryStatus(member="api-4", node="vm4", failure=4,
                                             state=R.RECOVERY_STATE_GAVE_UP, attempts=3,
                                             message="gave up after 3 attempts")]),
            admin_pb2.GroupStatus(
                name="db", mode=R.GROUP_MODE_ACTIVE_STANDBY, epoch=3, active="db-1",
                checkpoint=admin_pb2.CheckpointStatus(epoch=3, version=12, size_bytes=2048,
                                                      sync_sequence=77, written_at=written),
                queue=admin_pb2.QueueStatus(first_offset=10, next_offset=15, message_count=5,
                                            size_bytes=640)),
            admin_pb2.GroupStatus(
                name="sip", mode=R.GROUP_MODE_ACTIVE_STANDBY, epoch=1,
                queue=admin_pb2.QueueStatus(first_offset=4, next_offset=4)),
        ])


def event(seq: int, **kw: Any) -> admin_pb2.Event:
    ts = Timestamp()
    ts.FromMilliseconds(1_700_000_000_123 + seq)
    return admin_pb2.Event(seq=seq, time=ts, **kw)


class FakeAdmin(admin_pb2_grpc.AdminServiceServicer):
    """AdminService with canned answers; records what it was asked."""

    def __init__(self, name: str = "c1") -> None:
        self.name = name
        self.requests: list[tuple[str, Any]] = []
        self.events = [event(1, kind="group_created", group="web", reason="mode active-standby"),
                       event(2, kind="promoted", group="web", member="web-a", node="n1", epoch=1,
                             reason="initial")]
        self.unavailable = False

    def _abort_if_down(self, context: grpc.ServicerContext) -> None:
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not ready")

    def GetStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("GetStatus", request))
        self._abort_if_down(context)
        st = sample_status()
        st.coordinator.node_id = self.name
        return st

    def Switchover(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("Switchover", request))
        self._abort_if_down(context)
        if request.group != "web":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no group {request.group!r}")
        if request.to_member == "web-z":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "web-z is not eligible")
        done = request.wait_ms != 1
        return admin_pb2.SwitchoverResponse(from_member="web-a",
                                            to_member=request.to_member or "web-b",
                                            epoch=9, completed=done, serving=done,
                                            vip_held=done, has_vip=True)

    def Failover(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("Failover", request))
        return admin_pb2.FailoverResponse(from_member="web-a", to_member=request.to_member,
                                          epoch=9, completed=True, serving=True,
                                          vip_held=True, has_vip=True)

    def SetMaintenance(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("SetMaintenance", request))
        self._abort_if_down(context)
        return admin_pb2.SetMaintenanceResponse(changed=request.on)

    def SetFailsafe(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("SetFailsafe", request))
        self._abort_if_down(context)
        return admin_pb2.SetFailsafeResponse(changed=request.lease_ms != 2000)

    def ApplyGroups(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("ApplyGroups", request))
        self._abort_if_down(context)
        return admin_pb2.ApplyGroupsResponse(revision=43)

    def ListEvents(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(("ListEvents", request))
        self._abort_if_down(context)
        evs = self.events[-request.limit:] if request.limit else self.events
        return admin_pb2.ListEventsResponse(events=evs)

    def WatchEvents(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(("WatchEvents", request))
        self._abort_if_down(context)
        yield admin_pb2.WatchEventsResponse(events=[e for e in self.events
                                                    if e.seq > request.after_seq])


@pytest.fixture
def admin() -> Iterator[tuple[FakeAdmin, str]]:
    servicer = FakeAdmin()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def dead_endpoint() -> str:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--timeout", "3", *argv], out=out)
    return code, out.getvalue()


# --------------------------------------------------------------------------- pure formatting


def test_format_status_table() -> None:
    text = cli.format_status(sample_status(), "127.0.0.1:7402")
    lines = text.splitlines()
    assert lines[0] == ("coordinator: c2 (127.0.0.1:7402)  leader: c1  revision: 42  "
                        "backend: raft  failsafe: OFF")
    assert lines[1].split() == ["GROUP", "EPOCH", "MEMBER", "NODE", "ROLE", "HEALTH", "LEASE",
                                "AGE", "FLAGS"]
    assert lines[2].split() == ["web", "7", "web-a", "n1", "active", "healthy", "0.08s"]
    assert lines[3].split() == ["web", "7", "web-b", "n2", "standby", "unhealthy", "-",
                                "quarantined,maintenance,handover-target"]
    assert lines[4].split() == ["empty", "0", "-", "-", "-", "-", "-"]
    assert len(lines) == 5
    # columns line up: every row has HEALTH where the header has it
    col = lines[1].index("HEALTH")
    assert lines[2][col:].startswith("healthy") and lines[3][col:].startswith("unhealthy")
    assert all(line == line.rstrip() for line in lines)


def test_format_status_leader_and_releasing() -> None:
    st = sample_status()
    st.coordinator.is_leader = True
    st.coordinator.leader_id = "c2"
    st.groups[0].releasing = "web-a"
    st.groups[0].handover_to = ""
    text = cli.format_status(st)
    assert text.splitlines()[0].startswith("coordinator: c2  leader: c2 (this one)  revision: 42")
    assert text.splitlines()[2].endswith("releasing")


def test_format_status_without_leader_or_groups() -> None:
    st = admin_pb2.GetStatusResponse(coordinator=admin_pb2.CoordinatorInfo(node_id="c3"))
    assert cli.format_status(st).splitlines() == [
        "coordinator: c3  leader: none  revision: 0  failsafe: OFF",
        "GROUP  EPOCH  MEMBER  NODE  ROLE  HEALTH  LEASE AGE  FLAGS",
    ]


def test_status_to_dict_is_plain_json() -> None:
    d = cli.status_to_dict(sample_status(), "127.0.0.1:7402")
    assert json.loads(json.dumps(d)) == d
    assert d["coordinator"] == {"node_id": "c2", "endpoint": "127.0.0.1:7402",
                                "is_leader": False, "leader_id": "c1",
                                "leader_endpoint": "127.0.0.1:7401", "revision": 42,
                                "backend": "raft", "details": {"term": "3"}}
    web, empty = d["groups"]
    assert web["mode"] == "active-standby" and web["epoch"] == 7 and web["releasing"] is None
    assert web["members"][0] == {"name": "web-a", "node": "n1", "role": "active",
                                 "health": "healthy", "priority": 100, "quarantined": False,
                                 "maintenance": False, "lease_age_seconds": 0.08, "flags": []}
    assert web["members"][1]["lease_age_seconds"] is None
    assert web["members"][1]["flags"] == ["quarantined", "maintenance", "handover-target"]
    assert empty == {"name": "empty", "mode": "active-active", "vip": None, "epoch": 0,
                     "active": None, "releasing": None, "handover_to": None,
                     "deleting": False, "members": [], "pool": None, "recoveries": [],
                     "checkpoint": None, "queue": None}
    assert d["nodes"][1] == {"name": "n2", "address": "127.0.0.1", "maintenance": True,
                             "stopped": False, "lease_age_seconds": None}
    assert d["paused"] is False


RECOVERIES = "recoveries (open, or given up while still out):"


def section(text: str, title: str) -> list[list[str]]:
    """The rows (split on runs of 2+ spaces) of the table under `title`, header first."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return [[c for c in re.split(r"\s{2,}", line) if c] for line in lines[start:end]]


def test_format_status_pool_recoveries_and_state_sync() -> None:
    text = cli.format_status(sample_pool_and_sync_status())
    lines = text.splitlines()
    assert all(line == line.rstrip() for line in lines)
    # member table: pool membership shows as a flag
    assert lines[3].split() == ["api", "0", "api-2", "vm2", "out", "lost", "-",
                                "out-of-service"]
    assert lines[2].split() == ["api", "0", "api-1", "vm1", "in-pool", "healthy", "-"]
    assert section(text, "pools (active-active):") == [
        ["GROUP", "VERSION", "IN SERVICE", "OUT OF SERVICE", "LB APPLIED"],
        ["api", "7", "api-1,api-3", "api-2,api-4", "lb1=7, lb2=6 (behind)"]]
    assert section(text, "out of service:") == [
        ["GROUP", "MEMBER", "NODE", "AT VERSION", "WHY", "BLOCKED BY"],
        ["api", "api-2", "vm2", "6", "member api-2 lease expired (node vm2)",
         "member 'api-2' is lost"],
        ["api", "api-4", "vm4", "-", "-", "-"]]
    # the succeeded recovery (api-3 is back) is history, not shown
    assert section(text, RECOVERIES) == [
        ["GROUP", "MEMBER", "NODE", "FAILURE", "STATUS", "ATTEMPTS", "MESSAGE"],
        ["api", "api-2", "vm2", "6", "requested", "2", "exec exited 1: vnfm busy"],
        ["api", "api-4", "vm4", "4", "gave-up", "3", "gave up after 3 attempts"]]
    assert section(text, "state sync (sizes only):") == [
        ["GROUP", "CKPT EPOCH", "CKPT VERSION", "CKPT BYTES", "SYNC SEQ", "QUEUE FIRST",
         "QUEUE NEXT", "MESSAGES", "QUEUE BYTES"],
        ["db", "3", "12", "2048", "77", "10", "15", "5", "640"],
        ["sip", "-", "-", "-", "-", "4", "4", "0", "0"]]


def test_format_status_sections_only_when_there_is_something_to_show() -> None:
    st = sample_pool_and_sync_status()
    del st.groups[1:]  # only the pool group
    st.groups[0].pool.lb_applied[1].pool_version = 7
    del st.groups[0].recoveries[2]  # api-4's gave-up record
    st.groups[0].recoveries[0].state = types_pb2.RECOVERY_STATE_CANCELLED
    text = cli.format_status(st)
    assert "lb1=7, lb2=7" in text and "behind" not in text
    assert "recoveries" not in text and "state sync" not in text
    # a given-up recovery of a member back in service needs nothing from the operator
    st.groups[0].recoveries.add(member="api-1", node="vm1", failure=2,
                                state=types_pb2.RECOVERY_STATE_GAVE_UP, attempts=3)
    assert "recoveries" not in cli.format_status(st)
    st.groups[0].recoveries[2].member = "api-4"  # still out: shown
    rows = section(cli.format_status(st), RECOVERIES)
    assert [r[:5] for r in rows[1:]] == [["api", "api-4", "vm1", "2", "gave-up"]]


def test_multi_line_hook_output_stays_in_its_row() -> None:
    st = sample_pool_and_sync_status()
    st.groups[0].recoveries[0].message = "exec exited 2: line one\n  line two\tend\n"
    rows = section(cli.format_status(st), RECOVERIES)
    assert rows[1] == ["api", "api-2", "vm2", "6", "requested", "2",
                       "exec exited 2: line one line two end"]
    assert cli.status_to_dict(st)["groups"][0]["recoveries"][0]["message"].count("\n") == 2


def test_status_to_dict_pool_recoveries_and_state_sync() -> None:
    d = cli.status_to_dict(sample_pool_and_sync_status())
    assert json.loads(json.dumps(d)) == d
    api, db, sip = d["groups"]
    assert api["pool"] == {
        "pool_version": 7, "in_service": ["api-1", "api-3"],
        "excluded": [{"member": "api-2", "node": "vm2", "excluded_at_version": 6,
                      "reason": "member api-2 lease expired (node vm2)",
                      "blocked_by": "member 'api-2' is lost"},
                     {"member": "api-4", "node": "vm4", "excluded_at_version": None,
                      "reason": None, "blocked_by": None}],
        "lb_applied": {"lb1": 7, "lb2": 6}}
    # JSON carries every record, closed ones included, with their status
    assert [(r["member"], r["failure"], r["status"], r["attempts"])
            for r in api["recoveries"]] == [("api-2", 6, "requested", 2),
                                            ("api-3", 3, "succeeded", 1),
                                            ("api-4", 4, "gave-up", 3)]
    assert api["recoveries"][0]["message"] == "exec exited 1: vnfm busy"
    assert api["recoveries"][2]["reason"] is None
    assert api["members"][1]["flags"] == ["out-of-service"]
    assert api["checkpoint"] is None and api["queue"] is None
    assert db["pool"] is None and db["recoveries"] == []
    assert db["checkpoint"] == {"epoch": 3, "version": 12, "size_bytes": 2048,
                                "sync_sequence": 77, "written_at": "2023-11-14T22:13:20.500Z"}
    assert db["queue"] == {"first_offset": 10, "next_offset": 15, "message_count": 5,
                           "size_bytes": 640}
    assert sip["checkpoint"] is None
    assert sip["queue"] == {"first_offset": 4, "next_offset": 4, "message_count": 0,
                            "size_bytes": 0}


def test_enum_labels() -> None:
    assert cli.role_label(types_pb2.ROLE_UNSPECIFIED) == "-"
    assert cli.health_label(types_pb2.HEALTH_LOST) == "lost"
    assert cli.mode_label(types_pb2.GROUP_MODE_ACTIVE_STANDBY) == "active-standby"
    assert cli.health_label(99) == "99"  # a newer server's value still prints
    assert cli.recovery_label(types_pb2.RECOVERY_STATE_AWAITING_LB) == "awaiting-lb"
    assert cli.recovery_label(types_pb2.RECOVERY_STATE_UNSPECIFIED) == "-"


def test_format_event() -> None:
    ev = event(2, kind="promoted", group="web", member="web-a", node="n1", epoch=3,
               reason="leader lost")
    assert cli.format_event(ev).split() == ["2023-11-14T22:13:20.125Z", "promoted",
                                            "web/web-a@n1", "epoch=3", "leader", "lost"]


def test_event_target_variants() -> None:
    assert cli.event_target(admin_pb2.Event(group="web")) == "web"
    assert cli.event_target(admin_pb2.Event(node="n1")) == "@n1"
    assert cli.event_target(admin_pb2.Event()) == "-"
    assert cli.event_time(admin_pb2.Event()) == "-"


def test_event_to_dict() -> None:
    d = cli.event_to_dict(event(5, kind="maintenance_on", node="n2"))
    assert d == {"seq": 5, "time": "2023-11-14T22:13:20.128Z", "kind": "maintenance_on",
                 "group": None, "member": None, "node": "n2", "epoch": 0, "reason": "",
                 "actor": None}
    d = cli.event_to_dict(event(6, kind="maintenance_on", node="n2",
                                actor="vnfha://admin/alice"))
    assert d["actor"] == "vnfha://admin/alice"


def test_format_switchover_says_what_is_committed_and_what_is_confirmed() -> None:
    r = admin_pb2.SwitchoverResponse(from_member="a", to_member="b", epoch=4, completed=True,
                                     serving=True, vip_held=True, has_vip=True)
    assert cli.format_switchover("web", r) == ("switchover of web: a -> b at epoch 4 "
                                               "(completed; b holds the VIP)")
    assert cli.switchover_exit(r) == 0
    r.vip_held = False
    assert cli.format_switchover("web", r).endswith(
        "(completed; b took the role, its agent does not manage the VIP)")
    r.has_vip = False
    assert cli.format_switchover("web", r).endswith("(completed; b took the role)")
    assert cli.switchover_exit(r) == 0
    r.serving = False
    assert cli.format_switchover("web", r).endswith(
        "(promotion committed; b has not yet reported that it took the role)")
    r.has_vip = True
    assert cli.format_switchover("web", r).endswith(
        "(promotion committed; b has not yet reported that it holds the VIP)")
    assert cli.switchover_exit(r) == cli.EXIT_NOT_CONFIRMED
    r.completed = False
    assert cli.format_switchover("web", r).endswith(
        "(in progress: demotion committed, b not promoted yet)")
    assert cli.switchover_exit(r) == cli.EXIT_NOT_CONFIRMED
    assert cli.switchover_doc("web", r) == {"group": "web", "from_member": "a",
                                            "to_member": "b", "epoch": 4, "completed": False,
                                            "serving": False, "vip_held": False}


# --------------------------------------------------------------------------- endpoints


def test_parse_endpoints() -> None:
    assert cli.parse_endpoints("127.0.0.1:7401") == ["127.0.0.1:7401"]
    assert cli.parse_endpoints(" 127.0.0.1:7401, 127.0.0.1:7402,,127.0.0.1:7401 ") == [
        "127.0.0.1:7401", "127.0.0.1:7402"]
    assert cli.parse_endpoints("[::1]:7401,localhost:1") == ["[::1]:7401", "localhost:1"]


@pytest.mark.parametrize("bad", ["", " , ", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:7401,x"])
def test_parse_endpoints_rejects(bad: str) -> None:
    with pytest.raises(cli.UsageError):
        cli.parse_endpoints(bad)


def test_bad_endpoint_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--endpoint", "nope", "status")[0] == 2
    assert "error: --endpoint 'nope'" in capsys.readouterr().err


def test_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch,
                                   admin: tuple[FakeAdmin, str]) -> None:
    _, ep = admin
    monkeypatch.setenv(cli.ENDPOINT_ENV, ep)
    code, out = run("status")
    assert code == 0 and f"({ep})" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["maintenance", "n1", "maybe"]) == 2
    assert cli.main(["--timeout", "0", "status"]) == 2
    assert cli.main(["--help"]) == 0
    capsys.readouterr()


# --------------------------------------------------------------------------- against a server


def test_status_against_server(admin: tuple[FakeAdmin, str]) -> None:
    _, ep = admin
    code, out = run("--endpoint", ep, "status")
    assert code == 0
    assert out.startswith(f"coordinator: c1 ({ep})  leader: c1")
    code, out = run("--endpoint", ep, "status", "--json")
    assert code == 0 and json.loads(out)["coordinator"]["endpoint"] == ep


def test_endpoint_fallback_first_dead_second_answers(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", f"{dead_endpoint()},{ep}", "status")
    assert code == 0
    assert f"({ep})" in out
    assert [r[0] for r in servicer.requests] == ["GetStatus"]


def test_unavailable_answer_moves_on_with_the_same_request_id(
        admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    other = FakeAdmin("c2")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    admin_pb2_grpc.add_AdminServiceServicer_to_server(other, server)
    ep2 = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        servicer.unavailable = True
        code, out = run("--endpoint", f"{ep},{ep2}", "switchover", "web", "--to", "web-c")
        assert code == 0
        assert out.strip() == ("switchover of web: web-a -> web-c at epoch 9 "
                               "(completed; web-c holds the VIP)")
        first, second = servicer.requests[0][1], other.requests[0][1]
        assert first.request_id and first.request_id == second.request_id
    finally:
        server.stop(grace=None)


def test_all_endpoints_dead_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = dead_endpoint(), dead_endpoint()
    code, _ = run("--endpoint", f"{a},{b}", "status")
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: no coordinator reachable at {a}, {b}")
    assert "UNAVAILABLE" in err


def test_not_found_exits_1_without_trying_other_endpoints(
        admin: tuple[FakeAdmin, str], capsys: pytest.CaptureFixture[str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", f"{ep},{dead_endpoint()}", "switchover", "nope")
    assert code == 1 and out == ""
    assert capsys.readouterr().err.strip() == "error: no group 'nope' (NOT_FOUND)"
    assert len(servicer.requests) == 1


def test_failed_precondition_exits_1(admin: tuple[FakeAdmin, str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, ep = admin
    assert run("--endpoint", ep, "switchover", "web", "--to", "web-z")[0] == 1
    assert "(FAILED_PRECONDITION)" in capsys.readouterr().err


def test_switchover_wait_and_in_progress(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", ep, "switchover", "web", "--wait", "0.001")
    # Committed but not confirmed within --wait: says so, with its own exit code.
    assert code == cli.EXIT_NOT_CONFIRMED == 4
    assert out.strip().endswith("(in progress: demotion committed, web-b not promoted yet)")
    assert servicer.requests[-1][1].wait_ms == 1


def test_maintenance(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", ep, "maintenance", "n1", "on")
    assert code == 0 and out.strip() == "maintenance on for node n1"
    req = servicer.requests[-1][1]
    assert (req.node, req.on) == ("n1", True) and req.request_id
    code, out = run("--endpoint", ep, "maintenance", "n1", "off")
    assert out.strip() == "maintenance off for node n1 (unchanged)"


def test_failsafe_on_off_and_lease(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", ep, "failsafe", "on")
    assert code == 0 and out.strip() == "failsafe on (lease 1s)"
    req = servicer.requests[-1][1]
    assert req.lease_ms == 1000 and req.request_id
    code, out = run("--endpoint", ep, "failsafe", "on", "--lease", "2")
    assert code == 0 and out.strip() == "failsafe on (lease 2s) (unchanged)"
    code, out = run("--endpoint", ep, "-o", "json", "failsafe", "off")
    assert code == 0 and json.loads(out) == {"failsafe_lease_ms": 0, "changed": True}
    n = len(servicer.requests)
    assert run("--endpoint", ep, "failsafe", "off", "--lease", "2")[0] == 2
    assert run("--endpoint", ep, "failsafe", "on", "--lease", "61")[0] == 2
    assert len(servicer.requests) == n, "a usage error must not reach the server"


def test_status_shows_failsafe() -> None:
    st = sample_status()
    assert "failsafe: OFF" in cli.format_status(st)  # the exception is never silent
    st.failsafe_lease_ms = 1500
    assert "failsafe: on (lease 1.5s)" in cli.format_status(st)
    assert "OFF" not in cli.format_status(st)
    assert cli.status_to_dict(st)["failsafe_lease_ms"] == 1500


def test_events_list_and_json(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", ep, "events", "--limit", "1")
    assert code == 0
    assert out.splitlines() == [cli.format_event(servicer.events[1])]
    assert servicer.requests[-1][1].limit == 1
    code, out = run("--endpoint", ep, "events", "--json")
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2]


def test_events_follow_fails_over_then_gives_up(admin: tuple[FakeAdmin, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # The fake stream ends after one message, so --follow reconnects until a whole round of
    # endpoints failed; it must resume after the last seen seq and never repeat an event.
    servicer, ep = admin
    servicer.events.append(event(3, kind="demoted", group="web", epoch=2))
    code, out = run("--endpoint", ep, "events", "--follow", "--limit", "2")
    assert code == 3
    assert [line.split()[1] for line in out.splitlines()] == ["promoted", "demoted"]
    watch = [r for name, r in servicer.requests if name == "WatchEvents"]
    assert watch[0].after_seq == 3
    assert "no coordinator reachable" in capsys.readouterr().err


def test_group_apply(admin: tuple[FakeAdmin, str], tmp_path: Path) -> None:
    servicer, ep = admin
    f = tmp_path / "groups.yaml"
    f.write_text("groups:\n  - name: web\n    vip: 198.18.0.100/24\n"
                 "  - name: lb\n    mode: active-active\n")
    code, out = run("--endpoint", ep, "group", "apply", "-f", str(f))
    assert code == 0 and out.strip() == "applied 2 group(s): web, lb (revision 43)"
    req = servicer.requests[-1][1]
    assert [(g.name, g.mode, g.vip) for g in req.groups] == [
        ("web", types_pb2.GROUP_MODE_ACTIVE_STANDBY, "198.18.0.100/24"),
        ("lb", types_pb2.GROUP_MODE_ACTIVE_ACTIVE, "")]
    assert req.request_id


def test_group_apply_bad_file_exits_2(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "groups.yaml"
    f.write_text("groups:\n  - name: web\n    mode: hot\n")
    assert run("group", "apply", "-f", str(f))[0] == 2
    assert capsys.readouterr().err.startswith(f"error: {f}: groups[0].mode ('hot')")


# --------------------------------------------------------------------------- local commands


def test_coordinator_bad_config_exits_2(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("node_id: c1\n")
    assert cli.main(["coordinator", "--config", str(f)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {f}: cluster.members is required")


def test_coordinator_calls_server_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    seen = []
    fake = types.ModuleType("vnfha.coordinator.server")
    fake.run = lambda cfg: seen.append(cfg) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vnfha.coordinator.server", fake)
    f = tmp_path / "c.yaml"
    f.write_text("node_id: c1\ncluster:\n  members:\n"
                 "    - {id: c1, api: 127.0.0.1:7401, raft: 127.0.0.1:7501}\n")
    assert cli.main(["coordinator", "--config", str(f)]) == 7
    assert seen[0].node_id == "c1"


def test_demo_gets_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    seen = []
    fake = types.ModuleType("vnfha_lab.demo")
    fake.main = lambda args: seen.append(args) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vnfha_lab.demo", fake)
    assert cli.main(["--timeout", "2", "demo", "--help", "-x", "y"]) == 0
    assert seen == [["--help", "-x", "y"]]


def test_demo_missing_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vnfha_lab.demo", None)  # import -> not found
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "lab harness" in err and "pip install ./lab" in err


# --------------------------------------------------------------------------- issue 15: the CLI


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vnfha {version('vnfha')}"


def test_global_options_after_the_command(admin: tuple[FakeAdmin, str]) -> None:
    _, ep = admin
    code, out = run("status", "--endpoint", ep, "--timeout", "2")
    assert code == 0 and f"({ep})" in out
    # given on both sides, the one after the command word wins
    code, out = run("--endpoint", dead_endpoint(), "status", "--endpoint", ep, "-o", "json")
    assert code == 0 and json.loads(out)["coordinator"]["endpoint"] == ep
    # given before, it is not reset by the subcommand's copy of the option
    code, out = run("--endpoint", ep, "-o", "json", "status")
    assert code == 0 and json.loads(out)["coordinator"]["endpoint"] == ep
    code, out = run("group", "apply", "--endpoint", ep, "--output", "json", "-f", "/dev/null")
    assert code == 2  # an empty file: refused before anything is sent


def test_every_printing_command_speaks_json_and_yaml(admin: tuple[FakeAdmin, str],
                                                     tmp_path: Path) -> None:
    import yaml

    _, ep = admin
    code, out = run("--endpoint", ep, "status", "-o", "yaml")
    assert code == 0 and yaml.safe_load(out) == cli.status_to_dict(sample_status(), ep) | {
        "coordinator": cli.status_to_dict(sample_status(), ep)["coordinator"] | {"node_id": "c1"}}
    code, out = run("--endpoint", ep, "switchover", "web", "--to", "web-c", "--json")
    assert code == 0 and json.loads(out) == {"group": "web", "from_member": "web-a",
                                             "to_member": "web-c", "epoch": 9,
                                             "completed": True, "serving": True,
                                             "vip_held": True}
    code, out = run("--endpoint", ep, "maintenance", "n1", "on", "-o", "yaml")
    assert yaml.safe_load(out) == {"node": "n1", "maintenance": True, "changed": True}
    code, out = run("--endpoint", ep, "events", "-o", "yaml")
    docs = list(yaml.safe_load_all(out))
    assert [d["seq"] for d in docs] == [1, 2] and docs[1]["kind"] == "promoted"
    f = tmp_path / "groups.yaml"
    f.write_text("groups:\n  - name: web\n")
    code, out = run("--endpoint", ep, "-o", "json", "group", "apply", "-f", str(f))
    assert json.loads(out) == {"applied": ["web"], "revision": 43}


def test_bad_output_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "-o", "xml"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_active_active_members_show_pool_membership_not_standby() -> None:
    st = sample_pool_and_sync_status()
    roles = {m["name"]: m["role"] for m in cli.status_to_dict(st)["groups"][0]["members"]}
    assert roles == {"api-1": "in-pool", "api-2": "out", "api-3": "in-pool", "api-4": "out"}
    st.groups[0].ClearField("pool")
    assert {cli.member_role(st.groups[0], m) for m in st.groups[0].members} == {"member"}
    web = sample_status().groups[0]
    assert [cli.member_role(web, m) for m in web.members] == ["active", "standby"]


def test_status_watch_redraws_count_times(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    code, out = run("--endpoint", ep, "status", "--watch", "--interval", "0.01", "--count", "3")
    assert code == 0
    assert len(re.findall(r"^every 0.01s  \S+Z  \(Ctrl-C to stop\)$", out, re.M)) == 3
    assert out.count(f"coordinator: c1 ({ep})") == 3
    assert [name for name, _ in servicer.requests] == ["GetStatus"] * 3
    code, out = run("--endpoint", ep, "status", "-w", "--interval", "0.01", "--count", "2",
                    "--json")
    frames = [json.loads(line) for line in out.splitlines()]
    assert len(frames) == 2 and all(f["coordinator"]["endpoint"] == ep for f in frames)


def test_status_watch_outlives_an_outage_and_ends_on_ctrl_c(admin: tuple[FakeAdmin, str]) -> None:
    servicer, ep = admin
    client = cli.AdminClient([ep], timeout=3)
    flips = iter([True, False])

    def sleep(_: float) -> None:  # between frames: the coordinator goes away, comes back
        servicer.unavailable = next(flips)

    out = io.StringIO()
    try:
        assert cli.watch_status(client, "json", 0.01, 3, out, sleep=sleep) == 0
        frames = [json.loads(line) for line in out.getvalue().splitlines()]
        assert ["error" in f for f in frames] == [False, True, False]
        assert frames[1]["error"].startswith(f"no coordinator reachable at {ep}")

        def interrupt(_: float) -> None:
            raise KeyboardInterrupt

        assert cli.watch_status(client, "table", 5.0, None, io.StringIO(), sleep=interrupt) == 0
    finally:
        client.close()
    dead = cli.AdminClient([dead_endpoint()], timeout=1)
    try:
        assert cli.watch_status(dead, "table", 0.01, 1, io.StringIO()) == cli.EXIT_UNREACHABLE
    finally:
        dead.close()


@pytest.mark.parametrize("argv", [["status", "--watch", "--interval", "0"],
                                  ["status", "--watch", "--count", "0"],
                                  ["status", "--interval", "soon"],
                                  ["status", "--count", "3"]])
def test_status_watch_bad_input_exits_2(argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: argument" in err or err == "error: --interval and --count go with --watch\n"


def test_closed_pipe_exits_quietly(admin: tuple[FakeAdmin, str]) -> None:
    """`vnfha status | head -1`: the reader is gone before we write. No traceback, exit
    141 (what a shell reports for SIGPIPE), as documented in docs/cli.md."""
    import os
    import subprocess
    import sys

    _, ep = admin
    vnfha = str(Path(sys.executable).with_name("vnfha"))
    for argv in (["status"], ["events"], ["status", "-o", "yaml"]):
        r, w = os.pipe()
        os.close(r)
        try:
            proc = subprocess.run([vnfha, "--endpoint", ep, *argv], stdout=w,
                                  stderr=subprocess.PIPE, timeout=30, text=True)
        finally:
            os.close(w)
        assert proc.returncode == cli.EXIT_PIPE_CLOSED, (argv, proc.stderr)
        assert proc.stderr == "", argv


def complete(script: str, *words: str) -> list[str]:
    """What bash offers after `words` (the last one is the word being completed)."""
    import subprocess

    cmd = (f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); "
           f"COMP_CWORD={len(words) - 1}; _vnfha; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", cmd], capture_output=True,
                          text=True, timeout=30, check=True)
    return [w for w in proc.stdout.splitlines() if w]


def test_completion_bash_offers_commands_options_and_values(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert complete(script, "vnfha", "st") == ["status"]
    assert complete(script, "vnfha", "--endpoint", "x:1", "gr") == ["group"]
    assert complete(script, "vnfha", "status", "--w") == ["--watch"]
    assert complete(script, "vnfha", "status", "-o", "") == ["table", "json", "yaml"]
    assert set(complete(script, "vnfha", "group", "")) >= {"apply", "--endpoint", "-o"}
    assert complete(script, "vnfha", "config", "check", "--kind", "a") == ["agent"]
    assert complete(script, "vnfha", "maintenance", "n1", "o") == ["on", "off"]
    assert complete(script, "vnfha", "--timeout", "") == []  # a number: nothing to offer
    # -f reads a FILE in `group apply` but is --follow in `events`
    assert complete(script, "vnfha", "events", "-f", "--li") == ["--limit"]
    assert complete(script, "vnfha", "events", "-f", "-o", "j") == ["json"]
    assert complete(script, "vnfha", "group", "apply", "-f", "x.yaml", "--out") == ["--output"]
    assert cli.main(["completion", "zsh"]) == 0
    assert "bashcompinit" in capsys.readouterr().out
    assert cli.main(["completion", "fish"]) == 2
    assert "invalid choice: 'fish'" in capsys.readouterr().err


AGENT_YAML = ("node: vm1\ncoordinators: [127.0.0.1:7401, 127.0.0.1:7402, 127.0.0.1:7403]\n"
              "members: [{group: web, member: web-a}]\n")
COORD_YAML = ("node_id: c1\ncluster:\n  members:\n    - {id: c1, api: 127.0.0.1:7401}\n"
              "store: {backend: memory}\ngroups: [{name: web}]\n")


def test_config_check_valid_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(AGENT_YAML)
    (tmp_path / "c.yaml").write_text(COORD_YAML)
    code, out = run("config", "check", str(tmp_path / "a.yaml"))
    assert code == 0
    assert out == f"{tmp_path}/a.yaml: valid agent config (node vm1, 3 coordinator(s), " \
                  "1 member(s))\n"
    code, out = run("config", "check", str(tmp_path / "c.yaml"), "--kind", "coordinator",
                    "-o", "json")
    assert code == 0 and json.loads(out) == {
        "file": str(tmp_path / "c.yaml"), "kind": "coordinator", "valid": True,
        "summary": "node c1, 1 coordinator(s), store memory, 1 group(s)"}


@pytest.mark.parametrize("text,kind,message", [
    (AGENT_YAML, "coordinator", "unknown setting node (did you mean 'node_id'?)"),
    (AGENT_YAML + "lease: {ttl: 0.1}\n", None, "lease.keepalive_interval"),
    ("groups: []\n", None, "cannot tell a coordinator config"),
    ("node: [\n", None, "not valid YAML"),
    (COORD_YAML.replace("memory", "mem"), None, "store.backend"),
])
def test_config_check_refuses_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        text: str, kind: str | None, message: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(text)
    code, out = run("config", "check", str(f), *(["--kind", kind] if kind else []))
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert err.startswith(f"error: {f}: ") and message in err and err.count("\n") == 1


def test_config_check_missing_file_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "check", "/nonexistent/vnfha.yaml"]) == 2
    assert capsys.readouterr().err == "error: /nonexistent/vnfha.yaml: no such file\n"
    assert cli.main(["config", "check"]) == 2
    assert cli.main(["config", "check", "x", "--kind", "lb"]) == 2
    capsys.readouterr()


def test_client_commands_do_not_import_grpc() -> None:
    """Start-up: --version, completion and config check never load the gRPC stack."""
    import subprocess
    import sys

    code = ("import sys; from vnfha.coordinator import cli; cli.main(['--version']); "
            "cli.main(['completion', 'bash'], out=open('/dev/null', 'w')); "
            "print('grpc' in sys.modules, 'vnfha.coordinator.config' in sys.modules); "
            "assert cli.main(['config', 'check', sys.argv[1]]) == 0; "
            "print('grpc' in sys.modules)")
    example = Path(__file__).parents[2] / "examples" / "single.yaml"
    proc = subprocess.run([sys.executable, "-c", code, str(example)], capture_output=True,
                          text=True, timeout=30, check=True)
    lines = proc.stdout.splitlines()
    assert (lines[1], lines[3]) == ("False False", "False"), proc.stdout


def test_switchover_failover_and_agent_status_do_not_import_protobuf(
        admin: tuple[FakeAdmin, str], tmp_path: Path) -> None:
    """Start-up: the commands an operator scripts in a maintenance window encode their
    few fields themselves (coordinator/cli_wire.py); `agent status` speaks JSON."""
    import subprocess
    import sys

    _, ep = admin
    code = ("import sys; from vnfha.coordinator import cli; null = open('/dev/null', 'w'); "
            "print(cli.main(['--endpoint', sys.argv[1], 'switchover', 'web', '--to', 'web-c'], "
            "out=null)); "
            "print(cli.main(['--endpoint', sys.argv[1], 'failover', 'web', '--to', 'web-c'], "
            "out=null)); "
            "print(cli.main(['agent', 'status', '--socket', sys.argv[2]], out=null)); "
            "print(sorted(m for m in sys.modules if m.startswith('google.protobuf') "
            "or m.endswith('_pb2') or m == 'uuid'))")
    proc = subprocess.run([sys.executable, "-c", code, ep, str(tmp_path / "none.sock")],
                          capture_output=True, text=True, timeout=60)
    lines = proc.stdout.splitlines()
    assert lines[0] == "0" and lines[2] == "3", proc.stdout + proc.stderr
    assert lines[3] == "[]", lines[3]


# --------------------------------------------------------------------------- mTLS, certs


def test_unreachable_without_certificates_hints_at_mtls(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    assert cli.main(["--endpoint", f"127.0.0.1:{port}", "--timeout", "0.5", "status"]) \
        == cli.EXIT_UNREACHABLE
    assert "give --cacert, --cert and --key" in capsys.readouterr().err


def test_tls_flags_go_together(capsys) -> None:
    assert cli.main(["--cacert", "/nonexistent/ca.pem", "status"]) == cli.EXIT_USAGE
    assert "--cacert, --cert and --key" in capsys.readouterr().err


def test_tls_files_that_do_not_fit_are_a_usage_error(tmp_path, capsys, monkeypatch) -> None:
    assert cli.main(["certs", "init", "--dir", str(tmp_path)]) == 0
    assert cli.main(["certs", "issue", "--dir", str(tmp_path), "--identity", "admin/a"]) == 0
    assert cli.main(["certs", "issue", "--dir", str(tmp_path), "--identity", "admin/b"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("VNFHA_CACERT", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("VNFHA_CERT", str(tmp_path / "admin-a.pem"))
    monkeypatch.setenv("VNFHA_KEY", str(tmp_path / "admin-b-key.pem"))
    assert cli.main(["status"]) == cli.EXIT_USAGE
    assert "admin-b-key.pem is not the key of" in capsys.readouterr().err


def test_certs_init_and_issue(tmp_path, capsys) -> None:
    from cryptography import x509

    d = tmp_path / "ca"
    assert cli.main(["certs", "init", "--dir", str(d)]) == 0
    assert (d / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert cli.main(["certs", "init", "--dir", str(d)]) == cli.EXIT_USAGE  # never overwrite
    assert "already holds a CA" in capsys.readouterr().err
    assert cli.main(["certs", "issue", "--dir", str(d), "--identity", "node/vm1",
                     "--san-ip", "198.18.0.11"]) == 0
    assert (d / "node-vm1-key.pem").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((d / "node-vm1.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["vnfha://node/vm1"]
    assert "198.18.0.11" in {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert cli.main(["certs", "issue", "--dir", str(d), "--identity", "root/x"]) \
        == cli.EXIT_USAGE
    assert "malformed vnfha identity" in capsys.readouterr().err
    assert cli.main(["certs", "issue", "--dir", str(tmp_path / "none"), "--identity",
                     "node/vm1"]) == cli.EXIT_USAGE
    assert "holds no CA" in capsys.readouterr().err


def test_daemon_with_missing_tls_files_is_one_clear_line(tmp_path, capsys) -> None:
    conf = tmp_path / "c1.yaml"
    conf.write_text("node_id: c1\ncluster:\n  members:\n    - {id: c1, api: 127.0.0.1:7401}\n"
                    "store: {backend: memory}\n"
                    "tls: {ca_file: ca.pem, cert_file: c1.pem, key_file: c1-key.pem}\n")
    assert cli.main(["coordinator", "--config", str(conf)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read {tmp_path / 'ca.pem'}" in err


def test_stopped_node_is_a_flag_not_a_failure():
    from vnfha.v1 import admin_pb2

    g = admin_pb2.GroupStatus(name="web", active="web-2")
    m = admin_pb2.MemberStatus(name="web-1", node="vm1")
    assert cli.member_flags(g, m, set(), {"vm1"}) == ["stopped"]
    st = admin_pb2.GetStatusResponse(groups=[admin_pb2.GroupStatus(
        name="web", members=[m])], nodes=[admin_pb2.NodeStatus(name="vm1", stopped=True)])
    d = cli.status_to_dict(st, "e")
    assert d["nodes"][0]["stopped"] is True
    assert d["groups"][0]["members"][0]["flags"] == ["stopped"]


def test_status_shows_paused_in_header_and_json() -> None:
    status = sample_status()
    assert "PAUSED" not in cli.format_status(status)
    status.paused = True
    assert cli.format_status(status).splitlines()[0].endswith(
        "PAUSED (no automatic failover; vnfha resume)")
    assert cli.status_to_dict(status)["paused"] is True


def test_lifecycle_commands_parse() -> None:
    p = cli.build_parser()
    assert p.parse_args(["failover", "web", "--to", "b", "--force"]).force
    assert p.parse_args(["node", "remove", "vm1"]).force is False
    assert p.parse_args(["group", "delete", "web", "--force", "--wait", "2"]).wait == 2.0
    assert p.parse_args(["member", "reset", "web", "b"]).member == "b"
    assert p.parse_args(["resume"]).command == "resume"
