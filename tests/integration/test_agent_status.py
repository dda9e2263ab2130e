"""`vnfha agent status`: a real agent (no VIP management: loopback, root namespace)
with its status socket, a real coordinator over gRPC, and the real CLI.

Success (table and JSON follow the lease and the role), refusal (a user other than the
agent's may not connect: the socket is 0600), no agent running, and bad input.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port, wait_for
from test_api import INTERVAL, TTL

from vnfha.agents import status as agent_status
from vnfha.agents.config import parse_agent_config
from vnfha.agents.main import Agent
from vnfha.coordinator import cli
from vnfha.coordinator.config import parse_config
from vnfha.coordinator.server import Coordinator


def vnfha(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A folder others may traverse (pytest's tmp_path is 0700), so a refusal comes
    from the socket's own mode."""
    d = Path(tempfile.mkdtemp(prefix="vnfha-st-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


class Stoppable:
    """The coordinator, stopped at most once (a test may stop it first)."""

    def __init__(self, c: Coordinator) -> None:
        self.c, self.running = c, True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.c.stop()


@pytest.fixture
def running(sockdir: Path) -> Iterator[tuple[Stoppable, Agent, Path]]:
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
    path = sockdir / "agent-status.sock"
    agent = Agent(parse_agent_config({
        "node": "vm1", "coordinators": [f"127.0.0.1:{port}"],
        "lease": {"ttl": TTL, "keepalive_interval": INTERVAL},
        "vip": {"manage": False},
        "status": {"socket": str(path)},
        "members": [{"group": "web", "member": "m1"}],
    }))
    coordinator = Stoppable(c)
    try:
        agent.start()
        wait_for(lambda: agent.session.role("web", "m1").active_epoch == 1, 5,
                 what="m1 active")
        yield coordinator, agent, path
    finally:
        agent.stop()
        coordinator.stop()


def test_agent_status_shows_lease_coordinators_and_role(running) -> None:
    c, _, path = running
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    code, out = vnfha("agent", "status", "--socket", str(path), "-o", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["node"] == "vm1" and doc["pid"] == os.getpid()
    assert doc["lease"]["held"] and 0 < doc["lease"]["remaining_seconds"] <= TTL
    assert doc["lease"]["quorum"] == 1 and doc["lease"]["announced_coordinators"] == ["c1"]
    [link] = doc["coordinators"]
    assert link["id"] == "c1" and link["last_result"] == "ack" and link["acks"] > 0
    assert 0 <= link["last_answer_age_seconds"] < TTL
    [m] = doc["members"]
    assert m["role"] == "active" and m["epoch"] == 1 and m["healthy"]
    assert m["assignment"]["role"] == "active" and m["assignment"]["epoch"] == 1
    assert m["vip"] is None and m["vip_held"] is False
    assert doc["fail_safe"] == {"failed": None, "blocked": {}, "guardian": "off",
                                "kernel_lease": "off", "vip_managed": False}
    # A new cluster has failsafe on (1 s); this agent, without tls, has no listener.
    fs = doc["failsafe"]
    assert fs["listener"] is None and fs["no_listener_reason"].startswith("no tls")
    assert fs["groups"] == [{"group": "web", "lease_seconds": 1.0, "engaged": False,
                             "epoch": None, "grantors": [], "remaining_seconds": None}]
    code, out = vnfha("agent", "status", "--socket", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("agent: vm1") and "lease: held" in lines[0]
    assert any(line.split()[:2] == ["127.0.0.1:" + link["endpoint"].split(":")[1], "c1"]
               for line in lines)
    assert any(line.split()[:5] == ["web", "m1", "active", "1", "healthy"] for line in lines)
    assert "failsafe web: on (lease 1.0s), not engaged" in lines
    # The coordinator goes away: the same command shows the lease gone and m1 standby.
    c.stop()
    wait_for(lambda: not json.loads(vnfha("agent", "status", "--socket", str(path),
                                          "--json")[1])["lease"]["held"], 5,
             what="lease shown as not held")
    doc = json.loads(vnfha("agent", "status", "--socket", str(path), "--json")[1])
    assert doc["members"][0]["role"] == "standby"
    assert "NOT HELD" in vnfha("agent", "status", "--socket", str(path))[1]


def test_agent_status_refused_to_another_user(running) -> None:
    """The real command as `nobody`: the socket is the agent's user's (0600)."""
    _, _, path = running
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            sys.executable, "-m", "vnfha.coordinator.cli", "agent", "status",
            "--socket", str(path)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == cli.EXIT_REFUSED, r.stderr
    assert r.stdout == ""
    assert r.stderr.startswith(f"error: permission denied on {path}")
    assert r.stderr.count("\n") == 1  # one line, no traceback


def test_agent_status_without_an_agent_exits_3(sockdir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "none.sock"
    assert vnfha("agent", "status", "--socket", str(path)) == (3, "")
    err = capsys.readouterr().err
    assert err.startswith(f"error: no agent answers at {path}: is the agent running")
    # A socket file left by a dead agent: the same clear error.
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    assert vnfha("agent", "status", "--socket", str(path))[0] == 3
    assert "no agent answers" in capsys.readouterr().err
    # Something else listening there (not an agent status socket).
    other = socket.socket(socket.AF_UNIX)
    path.unlink()
    other.bind(str(path))
    other.listen(1)
    try:
        code, _ = vnfha("agent", "status", "--socket", str(path), "--timeout", "0.3")
        assert code == 3 and "did not answer" in capsys.readouterr().err
    finally:
        other.close()


def test_agent_status_bad_input_exits_2(sockdir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("node: vm1\ncoordinators: ['127.0.0.1:7401']\n"
                   "members: [{group: web, member: m1}]\n")
    for argv, text in [
        (("--socket", "relative.sock"), "give an absolute path"),
        (("--socket", "/" + "x" * 200), "longer than 107 bytes"),
        (("--socket", "/a", "--config", str(cfg)), "not both"),
        (("--config", str(cfg)), "sets no status.socket"),
        (("--config", str(tmp_path / "missing.yaml")), "missing.yaml"),
        (("-o", "xml"), "invalid choice"),
    ]:
        code, out = vnfha("agent", "status", *argv)
        assert (code, out) == (2, ""), argv
        assert text in capsys.readouterr().err, argv
    cfg.write_text(cfg.read_text() + f"status: {{socket: {sockdir}/a.sock}}\n")
    assert vnfha("agent", "status", "--config", str(cfg))[0] == 3  # read from the config
    assert f"{sockdir}/a.sock" in capsys.readouterr().err
    # Running an agent still needs its config.
    assert vnfha("agent")[0] == 2
    assert "--config FILE" in capsys.readouterr().err


def test_status_server_reads_nothing_and_outlives_bad_clients(sockdir: Path) -> None:
    """The server never reads: a client that sends garbage, or connects and never reads,
    does not stop it answering the next one; the provider runs once per connection."""
    calls = []

    def doc() -> dict:
        calls.append(1)
        return {"node": "vm9", "lease": {"held": False}}

    path = str(sockdir / "s.sock")
    server = agent_status.StatusServer(path, doc)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            try:
                s.sendall(b"\x00" * 1000 + b"GET / HTTP/1.0\r\n\r\n")
            except OSError:
                pass  # the server may have answered and closed already
        idle = socket.socket(socket.AF_UNIX)
        idle.connect(path)  # never reads
        try:
            assert agent_status.fetch(path) == {"node": "vm9", "lease": {"held": False}}
        finally:
            idle.close()
        assert len(calls) == 3
    finally:
        server.stop()
    assert not (sockdir / "s.sock").exists()


def test_a_stuck_agent_still_answers_that_it_is_stuck(sockdir: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """The provider blocks (an agent lock held for ever): the command says so at once
    instead of hanging, and the server keeps answering."""
    import threading

    release = threading.Event()
    server = agent_status.StatusServer(str(sockdir / "s.sock"),
                                       lambda: release.wait(10) and {})
    server.start()
    try:
        code, out = vnfha("agent", "status", "--socket", str(sockdir / "s.sock"))
        assert (code, out) == (3, "")
        assert "did not build its status within 1 s" in capsys.readouterr().err
    finally:
        release.set()
        server.stop()


def test_last_answer_counts_fast_path_acknowledgements(running) -> None:
    """With the keepalive fast path on (the default) acknowledgements arrive as
    datagrams: the LAST ANSWER column must follow them. It used to show the age of the
    last gRPC answer (seconds, growing for ever) while the lease was renewed every round."""
    _, agent, path = running
    wait_for(lambda: agent.session._fast is not None and agent.session._fast.answers > 20, 10,
             what="fast-path answers")
    before = agent.session._fast.answers
    wait_for(lambda: agent.session._fast.answers > before + 10, 10, what="more answers")
    doc = json.loads(vnfha("agent", "status", "--socket", str(path), "-o", "json")[1])
    [link] = doc["coordinators"]
    # the lease is held, so a counted answer came within one TTL
    assert doc["lease"]["held"] and link["last_result"] == "ack"
    assert 0 <= link["last_answer_age_seconds"] <= TTL, link


def test_status_socket_folder_is_made_and_errors_name_the_path(tmp_path: Path) -> None:
    """The docs' path, /run/vnfha/agent-status.sock, is in a folder a fresh machine does
    not have: the agent makes it (it used to stop with a bare "[Errno 2] No such file or
    directory"). A path that cannot be made is refused with the setting and path named."""
    path = tmp_path / "run" / "vnfha" / "agent-status.sock"
    server = agent_status.StatusServer(str(path), lambda: {"node": "vm1"})
    server.start()
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        server.stop()
    (tmp_path / "file").write_text("")
    bad = agent_status.StatusServer(str(tmp_path / "file" / "s.sock"), lambda: {})
    with pytest.raises(OSError) as info:
        bad.start()
    assert f"status.socket {tmp_path / 'file' / 's.sock'}" in str(info.value)
