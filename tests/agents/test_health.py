"""Health checks: rise/fall logic (pure), the probes and the monitor against real local
servers and processes."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import wait_for

from vnfha.agents.health import (
    CheckSpec,
    ExecCheck,
    HealthMonitor,
    HttpCheck,
    RiseFall,
    TcpCheck,
    parse_checks,
)
from vnfha.coordinator.confparse import ConfigError

# -- RiseFall (pure) ---------------------------------------------------------------------------


def test_starts_unhealthy_and_needs_rise_successes() -> None:
    rf = RiseFall(rise=3, fall=2)
    assert rf.healthy is False
    assert rf.observe(True) is None
    assert rf.observe(True) is None
    assert rf.observe(True) is True
    assert rf.healthy is True


def test_a_failure_resets_the_rise_streak() -> None:
    rf = RiseFall(rise=2, fall=1)
    assert rf.observe(True) is None
    assert rf.observe(False) is None  # already unhealthy: no flip, streak reset
    assert rf.observe(True) is None
    assert rf.observe(True) is True


def test_fall_needs_consecutive_failures() -> None:
    rf = RiseFall(rise=1, fall=3, initially_healthy=True)
    assert [rf.observe(x) for x in (False, False, True, False, False)] == [None] * 5
    assert rf.healthy is True
    assert rf.observe(False) is False
    assert rf.healthy is False


def test_rise_and_fall_of_one_follow_every_result() -> None:
    rf = RiseFall(rise=1, fall=1)
    assert [rf.observe(x) for x in (True, True, False, False, True)] == [
        True, None, False, None, True]


@pytest.mark.parametrize(("rise", "fall"), [(0, 1), (1, 0)])
def test_rise_fall_must_be_positive(rise: int, fall: int) -> None:
    with pytest.raises(ValueError):
        RiseFall(rise, fall)


# -- parse_checks ------------------------------------------------------------------------------


def test_parse_checks_all_kinds_with_defaults() -> None:
    specs = parse_checks([
        {"kind": "tcp", "port": 8080},
        {"kind": "http", "url": "http://127.0.0.1:8080/health", "expect_status": 204,
         "interval": 0.5, "timeout": 0.2, "rise": 3, "fall": 1},
        {"kind": "exec", "argv": ["/bin/check", "-q"]},
    ], "members[0].checks")
    assert specs[0] == CheckSpec(kind="tcp", host="127.0.0.1", port=8080, interval=1.0,
                                 timeout=0.5, rise=2, fall=2)
    assert specs[1].url == "http://127.0.0.1:8080/health"
    assert (specs[1].expect_status, specs[1].interval, specs[1].timeout) == (204, 0.5, 0.2)
    assert (specs[1].rise, specs[1].fall) == (3, 1)
    assert specs[2].argv == ("/bin/check", "-q")
    assert parse_checks(None, "x") == ()


@pytest.mark.parametrize(("item", "fragment"), [
    ({"kind": "tcp", "port": 80, "interval": 1, "timeout": 1}, "timeout (1) must be < "),
    ({"kind": "tcp", "port": 80, "interval": 0.3}, None),  # default timeout 0.15: fine
    ({"kind": "tcp", "port": 80, "rise": 0}, "rise (0) must be >= 1"),
    ({"kind": "tcp", "port": 80, "fall": -1}, "fall (-1) must be >= 1"),
    ({"kind": "tcp", "port": 0}, "port (0) must be in 1..65535"),
    ({"kind": "tcp", "port": 65536}, "port (65536) must be in 1..65535"),
    ({"kind": "tcp"}, "port is required"),
    ({"kind": "tcp", "port": "80"}, "port must be an integer"),
    ({"kind": "http", "url": "https://x/"}, "must be an http:// URL"),
    ({"kind": "http", "url": "ftp://x/"}, "must be an http:// URL"),
    ({"kind": "http", "url": "http://"}, "must be an http:// URL"),
    ({"kind": "http"}, "url is required"),
    ({"kind": "exec", "argv": []}, "argv must be a non-empty list of strings"),
    ({"kind": "exec", "argv": "true"}, "argv must be a non-empty list of strings"),
    ({"kind": "exec", "argv": ["true", 1]}, "argv must be a non-empty list of strings"),
    ({"kind": "exec", "argv": ["true"], "port": 80}, "unknown setting m.checks[0].port"),
    ({"kind": "icmp"}, "kind ('icmp') must be one of: tcp, http, exec"),
    ({"port": 80}, "kind is required"),
    ({"kind": "tcp", "port": 80, "intervall": 2}, "did you mean 'interval'"),
    ({"kind": "tcp", "port": 80, "interval": 0}, "interval (0) must be > 0"),
])
def test_parse_checks_rules(item: dict, fragment: str | None) -> None:
    if fragment is None:
        parse_checks([item], "m.checks")
        return
    with pytest.raises(ConfigError) as err:
        parse_checks([item], "m.checks", source="agent.yaml")
    assert str(err.value).startswith("agent.yaml: ")
    assert "m.checks[0]" in str(err.value)
    assert fragment in str(err.value)


def test_parse_checks_needs_a_list() -> None:
    with pytest.raises(ConfigError, match="must be a list of checks"):
        parse_checks({"kind": "tcp"}, "m.checks")


# -- real servers ------------------------------------------------------------------------------


class ScriptedHttp:
    """A local HTTP server answering a scripted sequence of statuses (then the last one
    forever), counting requests."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.served = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    i = min(outer.served, len(outer.statuses) - 1)
                    outer.served += 1
                    status = outer.statuses[i]
                body = b"ok" if status < 400 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        lock = threading.Lock()
        self.lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def count(self) -> int:
        with self.lock:
            return self.served

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)


@pytest.fixture
def http_server() -> Iterator[type[ScriptedHttp]]:
    made: list[ScriptedHttp] = []

    def make(statuses: list[int]) -> ScriptedHttp:
        s = ScriptedHttp(statuses)
        made.append(s)
        return s

    yield make  # type: ignore[misc]
    for s in made:
        s.close()


def listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def test_tcp_check_against_a_listener_that_closes() -> None:
    s = listener()
    port = s.getsockname()[1]
    try:
        assert TcpCheck("127.0.0.1", port).check(0.5) == (True, "connected")
    finally:
        s.close()
    ok, why = TcpCheck("127.0.0.1", port).check(0.5)
    assert not ok and why.startswith("connect failed")


def test_http_check_statuses(http_server) -> None:
    srv = http_server([200, 500, 204])
    assert HttpCheck(srv.url).check(1.0) == (True, "status 200")
    assert HttpCheck(srv.url).check(1.0) == (False, "status 500, expected 200")
    assert HttpCheck(srv.url, expect_status=204).check(1.0) == (True, "status 204")
    srv.close()
    ok, why = HttpCheck(srv.url).check(0.5)
    assert not ok and why.startswith("GET failed")


def test_http_check_times_out_on_a_silent_server() -> None:
    s = listener()  # accepts (backlog) but never answers
    try:
        t0 = time.monotonic()
        ok, why = HttpCheck(f"http://127.0.0.1:{s.getsockname()[1]}/").check(0.2)
        assert not ok and "timed out" in why
        assert time.monotonic() - t0 < 1.0
    finally:
        s.close()


def test_exec_check_exit_status() -> None:
    assert ExecCheck(("true",)).check(1.0) == (True, "exit 0")
    assert ExecCheck(("false",)).check(1.0) == (False, "exit 1")
    ok, why = ExecCheck((sys.executable, "-c", "import sys; sys.exit('db down')")).check(5)
    assert (ok, why) == (False, "exit 1: db down")
    ok, why = ExecCheck(("/nonexistent/check",)).check(1.0)
    assert not ok and why.startswith("cannot run")


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie some other parent has yet to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_exec_check_timeout_kills_the_process_group_without_zombies(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f'sleep 5 & echo $$ $! > {pids}; wait'
    t0 = time.monotonic()
    ok, why = ExecCheck(("sh", "-c", script)).check(0.2)
    elapsed = time.monotonic() - t0
    assert (ok, why) == (False, "timed out after 0.2s (killed)")
    assert elapsed < 1.5
    shell, child = (int(p) for p in pids.read_text().split())
    with pytest.raises(ProcessLookupError):  # reaped by us: not even a zombie
        os.kill(shell, 0)
    wait_for(lambda: _gone(child), 2, what="the grandchild sleep to be killed")


def test_exec_sleep_5_with_timeout_fails_fast() -> None:
    t0 = time.monotonic()
    assert ExecCheck(("sleep", "5")).check(0.2)[0] is False
    assert time.monotonic() - t0 < 1.5


# -- the monitor -------------------------------------------------------------------------------


class Changes:
    def __init__(self, probe: ScriptedHttp | None = None) -> None:
        self.items: list[tuple[str, str, bool, str, int]] = []
        self.probe = probe
        self.lock = threading.Lock()

    def __call__(self, group: str, member: str, healthy: bool, reason: str) -> None:
        with self.lock:
            served = self.probe.count() if self.probe else -1
            self.items.append((group, member, healthy, reason, served))

    def states(self) -> list[bool]:
        with self.lock:
            return [c[2] for c in self.items]


@pytest.fixture
def monitors() -> Iterator[list[HealthMonitor]]:
    made: list[HealthMonitor] = []
    yield made
    for m in made:
        m.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("health-")]


def spec(kind: str, **kw: object) -> CheckSpec:
    base: dict = {"interval": 0.05, "timeout": 0.04, "rise": 1, "fall": 1}
    base.update(kw)
    return CheckSpec(kind=kind, **base)


def test_monitor_fall_two_ignores_a_single_failure(http_server, monitors) -> None:
    # request:     1    2    3    4    5
    srv = http_server([200, 500, 200, 500, 500, 200, 200])
    changes = Changes(srv)
    mon = HealthMonitor({("web", "web-1"): [spec("http", url=srv.url, rise=2, fall=2)]},
                        changes)
    monitors.append(mon)
    assert mon.healthy("web", "web-1") is False  # unhealthy until rise successes
    mon.start()
    wait_for(lambda: srv.count() >= 8, 5, what="8 probes")
    items = list(changes.items)
    # 200,500: the rise streak is broken; 200,500,500 -> still unhealthy; 200,200 -> up.
    assert [(c[2], c[4]) for c in items] == [(True, 7)]
    assert mon.healthy("web", "web-1") is True
    assert items[0][:2] == ("web", "web-1")


def test_monitor_counts_fall_on_the_real_loop(http_server, monitors) -> None:
    # rise=1 -> healthy at 1; 500 at 2 is a single failure (fall=2); 500,500 at 4,5 -> down
    srv = http_server([200, 500, 200, 500, 500, 500])
    changes = Changes(srv)
    mon = HealthMonitor({("web", "web-1"): [spec("http", url=srv.url, rise=1, fall=2)]},
                        changes)
    monitors.append(mon)
    mon.start()
    wait_for(lambda: len(changes.items) >= 2, 5, what="two flips")
    assert [(c[2], c[4]) for c in changes.items] == [(True, 1), (False, 5)]
    assert "status 500, expected 200 (2 consecutive failures)" in changes.items[1][3]
    assert "status 500" in mon.reason("web", "web-1")
    time.sleep(0.2)
    assert len(changes.items) == 2  # stays down: no repeated reports


def test_monitor_member_needs_every_check(monitors) -> None:
    s = listener()
    port = s.getsockname()[1]
    changes = Changes()
    mon = HealthMonitor({
        ("db", "db-1"): [spec("tcp", host="127.0.0.1", port=port),
                         spec("exec", argv=("true",), timeout=0.5, interval=0.6)],
        ("db", "db-2"): [spec("tcp", host="127.0.0.1", port=port),
                         spec("exec", argv=("false",), timeout=0.5, interval=0.6)],
        ("db", "db-3"): [],
    }, changes)
    monitors.append(mon)
    assert mon.healthy("db", "db-3") is True  # no checks: always healthy
    assert mon.healthy("other", "x") is True
    mon.start()
    try:
        wait_for(lambda: mon.healthy("db", "db-1"), 3, what="db-1 healthy")
        time.sleep(0.3)
        assert mon.healthy("db", "db-2") is False  # its exec check fails
    finally:
        s.close()
    wait_for(lambda: not mon.healthy("db", "db-1"), 3, what="db-1 down after close")
    assert [c[:3] for c in changes.items] == [("db", "db-1", True), ("db", "db-1", False)]
    assert "tcp 127.0.0.1" in changes.items[1][3]
    assert "connect failed" in changes.items[1][3]


def test_monitor_exec_timeout_counts_as_failure_and_stop_is_bounded(monitors) -> None:
    changes = Changes()
    mon = HealthMonitor({
        ("g", "slow"): [spec("exec", argv=("sleep", "5"), timeout=0.2, interval=0.3,
                             rise=1, fall=1)],
        ("g", "ok"): [spec("exec", argv=("true",), timeout=0.2, interval=0.3)],
    }, changes)
    mon.start()
    wait_for(lambda: mon.healthy("g", "ok"), 3, what="the fast member healthy")
    time.sleep(0.5)  # at least one sleep probe timed out and was killed
    assert mon.healthy("g", "slow") is False
    t0 = time.monotonic()
    mon.stop()
    assert time.monotonic() - t0 < 2.5
    assert not [t for t in threading.enumerate() if t.name.startswith("health-")]
    assert changes.states() == [True]


class Trickler:
    """A real HTTP server on loopback that answers OK until told to trickle: then it
    sends one header byte every 30 ms for at most `limit` seconds, so every single
    socket read finishes inside the probe's timeout but the response never ends."""

    def __init__(self, limit: float = 4.0) -> None:
        self.trickle = threading.Event()
        self.limit = limit
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/health"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                if not self.trickle.is_set():
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                end = time.monotonic() + self.limit
                while time.monotonic() < end and not self._stop.is_set():
                    conn.sendall(b"X")
                    time.sleep(0.03)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def test_stuck_probe_makes_the_member_unhealthy(monitors) -> None:
    """Gray failure: the check neither passes nor fails (each read returns in time, the
    response never ends). The old monitor kept the last result, "healthy", for as long
    as the probe hung; now the watchdog fails it past its timeout."""
    srv = Trickler(limit=4.0)
    try:
        changes = Changes()
        mon = HealthMonitor({("web", "web-1"): [spec("http", url=srv.url, interval=0.2,
                                                     timeout=0.1)]}, changes)
        monitors.append(mon)
        mon.start()
        wait_for(lambda: mon.healthy("web", "web-1"), 5, what="healthy")
        srv.trickle.set()
        wait_for(lambda: not mon.healthy("web", "web-1"), 3,
                 what="unhealthy while the probe is stuck")
        assert "probe stuck" in mon.reason("web", "web-1")
        assert changes.states()[-1] is False
    finally:
        srv.close()
