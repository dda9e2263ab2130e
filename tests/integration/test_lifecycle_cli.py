"""Lifecycle commands end to end: the `vnfha` CLI against a real coordinator over real
gRPC, with real agent sessions taking and dropping the active role.

pause/resume, failover [--force], member reset, node remove [--force], group delete
[--force]: success, refusal (exit 1, state unchanged) and bad input (exit 2 or 1 with
INVALID_ARGUMENT), and through all of it never two actives at once.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest
from support import free_port, wait_for
from test_api import INTERVAL, TTL, RoleLog

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.coordinator import cli
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator

MEMBERS = (("vm1", "m1", 200), ("vm2", "m2", 100), ("vm3", "m3", 50))


class Rig:
    def __init__(self, c: Coordinator, endpoint: str, sessions: dict[str, AgentSession],
                 roles: RoleLog, healthy: dict[str, bool]) -> None:
        self.c, self.endpoint, self.sessions = c, endpoint, sessions
        self.roles, self.healthy = roles, healthy

    def vnfha(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = cli.main(["--timeout", "5", "--endpoint", self.endpoint, *argv], out=out)
        return code, out.getvalue()

    def group(self):
        return self.c.store.state().groups.get("web")

    def kinds(self) -> list[str]:
        return [e.kind for e in self.c.store.state().events]


@pytest.fixture
def rig() -> Iterator[Rig]:
    port = free_port()
    cfg = parse_config({
        "node_id": "c1",
        "cluster": {"members": [{"id": "c1", "api": f"127.0.0.1:{port}",
                                 "raft": f"127.0.0.1:{free_port()}"}]},
        "store": {"backend": "memory"},
        # A long stabilization: a member that failed stays quarantined for the test.
        "leases": {"ttl": TTL, "keepalive_interval": INTERVAL, "stabilization": 60},
        "groups": [{"name": "web", "vip": "198.18.0.100/24"}],
    })
    c = Coordinator(cfg)
    c.start()
    endpoint = f"127.0.0.1:{port}"
    roles = RoleLog()
    healthy = {m: True for _, m, _ in MEMBERS}
    sessions: dict[str, AgentSession] = {}
    try:
        wait_for(lambda: "web" in c.store.state().groups, 5, what="declared group")
        for node, member, prio in MEMBERS:
            s = AgentSession(node, [HostedMember("web", member, prio)], [endpoint], ttl=TTL,
                             interval=INTERVAL, on_role=roles.callback(node),
                             health=lambda g, m: healthy[m])
            s.start()
            sessions[node] = s
        wait_for(lambda: roles.active_now() == {"m1"}, 5, what="m1 active")
        wait_for(lambda: all(m.health.value == "healthy"
                             for m in c.store.state().groups["web"].members.values())
                 and len(c.store.state().groups["web"].members) == 3, 5, what="3 healthy")
        yield Rig(c, endpoint, sessions, roles, healthy)
    finally:
        for s in sessions.values():
            s.stop()
        c.stop()
    assert roles.max_concurrent_actives() <= 1, "two actives at once"


def test_pause_keeps_lost_active_then_resume_fails_over(rig: Rig,
                                                        capsys: pytest.CaptureFixture[str]):
    assert rig.vnfha("pause") == (0, "automatic failover paused\n")
    assert rig.vnfha("pause") == (0, "automatic failover paused (unchanged)\n")
    code, out = rig.vnfha("status")
    assert code == 0 and "PAUSED" in out.splitlines()[0]
    code, out = rig.vnfha("status", "-o", "json")
    assert json.loads(out)["paused"] is True
    assert "paused" in rig.kinds()
    # vm1 goes silent. Its own lease still ends its role (pause never weakens the
    # lease), but nobody replaces it while paused.
    rig.sessions["vm1"].paused = True
    wait_for(lambda: rig.roles.active_now() == set(), 5, what="m1 dropped by its own lease")
    time.sleep(TTL * 3)
    assert rig.group().active == "m1" and rig.roles.active_now() == set()
    assert rig.vnfha("resume") == (0, "automatic failover resumed\n")
    wait_for(lambda: rig.roles.active_now() == {"m2"}, 5, what="m2 promoted after resume")
    assert json.loads(rig.vnfha("status", "--json")[1])["paused"] is False
    assert rig.kinds().count("resumed") == 1
    assert rig.vnfha("pause", "now")[0] == 2  # bad input: a usage error
    assert "unrecognized arguments" in capsys.readouterr().err


def test_failover_plain_forced_and_refused(rig: Rig, capsys: pytest.CaptureFixture[str]):
    code, out = rig.vnfha("failover", "web", "--to", "m3")
    # These sessions manage no VIP: done is "m3's agent took the role", and it has by the
    # time the command returns (not merely committed).
    assert code == 0 and out.strip() == ("failover of web: m1 -> m3 at epoch 3 (completed; "
                                         "m3 took the role, its agent does not manage the VIP)")
    assert rig.roles.active_now() == {"m3"}
    before = rig.c.store.state().groups
    for argv, code, text in [
        (("failover", "web", "--to", "ghost"), 1, "(NOT_FOUND)"),
        (("failover", "nope", "--to", "m2"), 1, "(NOT_FOUND)"),
        (("failover", "web", "--to", "m3"), 1, "already the active member"),
        (("failover", "web", "--to", "bad name"), 1, "(INVALID_ARGUMENT)"),
        (("failover", "web"), 2, "--to"),
        (("failover", "web", "--to", "m2", "--wait", "-1"), 2, "--wait must be >= 0"),
    ]:
        assert rig.vnfha(*argv)[0] == code, argv
        assert text in capsys.readouterr().err, argv
    assert rig.c.store.state().groups == before
    # m2 fails and recovers: healthy but quarantined. Plain failover refuses it;
    # --force takes it; an unhealthy member is refused even with --force.
    rig.healthy["m2"] = False
    wait_for(lambda: rig.group().members["m2"].health.value == "unhealthy", 5, what="m2 down")
    code, _ = rig.vnfha("failover", "web", "--to", "m2", "--force")
    assert code == 1 and "unhealthy" in capsys.readouterr().err
    rig.healthy["m2"] = True
    wait_for(lambda: rig.group().members["m2"].health.value == "healthy", 5, what="m2 up")
    assert rig.group().members["m2"].quarantined
    code, _ = rig.vnfha("failover", "web", "--to", "m2")
    assert code == 1 and "--force" in capsys.readouterr().err
    code, out = rig.vnfha("failover", "web", "--to", "m2", "--force", "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["completed"] and doc["to_member"] == "m2" and doc["forced"]
    assert doc["serving"] and not doc["vip_held"]
    assert rig.roles.active_now() == {"m2"}
    assert "quarantine_cleared" in rig.kinds()


def test_member_reset(rig: Rig, capsys: pytest.CaptureFixture[str]):
    rig.healthy["m3"] = False
    wait_for(lambda: rig.group().members["m3"].quarantined, 5, what="m3 quarantined")
    rig.healthy["m3"] = True
    assert rig.vnfha("member", "reset", "web", "m3") == (
        0, "member web/m3: quarantine cleared\n")
    assert not rig.group().members["m3"].quarantined
    assert rig.vnfha("member", "reset", "web", "m3") == (
        0, "member web/m3: was not quarantined (unchanged)\n")
    assert rig.vnfha("member", "reset", "web", "ghost")[0] == 1
    assert "(NOT_FOUND)" in capsys.readouterr().err
    assert rig.vnfha("member", "reset", "web")[0] == 2
    assert rig.vnfha("member", "reset", "web", "x!y")[0] == 1
    assert "(INVALID_ARGUMENT)" in capsys.readouterr().err


def test_node_remove(rig: Rig, capsys: pytest.CaptureFixture[str]):
    before = rig.c.store.state().groups
    assert rig.vnfha("node", "remove", "vm1")[0] == 1
    assert "--force" in capsys.readouterr().err
    assert rig.vnfha("node", "remove", "vm9")[0] == 1
    assert "(NOT_FOUND)" in capsys.readouterr().err
    assert rig.vnfha("node", "remove")[0] == 2
    assert rig.c.store.state().groups == before
    # A standby's node: stop its agent, then remove it.
    rig.sessions["vm3"].stop()
    assert rig.vnfha("node", "remove", "vm3") == (0, "removed node vm3 and 1 member(s): web/m3\n")
    assert "m3" not in rig.group().members and "vm3" not in rig.c.store.state().nodes
    # The active's node, forced: handed over first (release before promote).
    code, out = rig.vnfha("node", "remove", "vm1", "--force", "-o", "json")
    assert code == 0 and json.loads(out) == {"node": "vm1", "removed": True,
                                             "members": ["web/m1"], "pending": []}
    wait_for(lambda: rig.roles.active_now() == {"m2"}, 5, what="m2 active")
    assert rig.kinds().count("node_removed") == 2
    # vm1's agent still runs: its keepalives are answered UNKNOWN_NODE and its attempts
    # to register again are refused, so it holds no lease and no role.
    time.sleep(TTL * 3)
    assert "vm1" not in rig.c.store.state().nodes and rig.roles.active_now() == {"m2"}
    assert not rig.sessions["vm1"].lease.valid(time.monotonic())
    assert rig.vnfha("node", "readmit", "vm1") == (0, "node vm1: may register again\n")
    wait_for(lambda: "vm1" in rig.c.store.state().nodes, 10, what="vm1 registered again")
    assert rig.group().active == "m2"  # back as a standby


def test_group_delete(rig: Rig, capsys: pytest.CaptureFixture[str]):
    before = rig.c.store.state().groups
    assert rig.vnfha("group", "delete", "web")[0] == 1
    assert "--force" in capsys.readouterr().err
    assert rig.vnfha("group", "delete", "nope")[0] == 1
    assert "(NOT_FOUND)" in capsys.readouterr().err
    assert rig.vnfha("group", "delete")[0] == 2
    assert rig.c.store.state().groups == before
    assert rig.vnfha("group", "delete", "web", "--force") == (0, "deleted group web\n")
    assert rig.group() is None and "group_deleted" in rig.kinds()
    wait_for(lambda: rig.roles.active_now() == set(), 5, what="m1 let go")
    time.sleep(TTL)
    assert rig.roles.active_now() == set()  # nobody was promoted in the deleted group
