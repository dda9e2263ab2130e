"""The recovery hook runner: commit-then-call, retries with back-off, a limit, exactly once.

Runs against the in-memory store (the real state machine) with a fake clock; the
exec and webhook hooks are exercised for real (a script, an HTTP server on loopback).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from cluster_builders import GROUP, build, run

from vnfha.coordinator import commands as C
from vnfha.coordinator.recovery import (
    RecoveryConfig,
    RecoveryHook,
    RecoveryRunner,
    backoff_delay,
)
from vnfha.coordinator.store.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def store_with_request() -> MemoryStore:
    """Group g active-active; member a excluded (failure 2) and its recovery requested."""
    st = build()
    st = run(st, C.apply_groups([{"name": GROUP, "mode": "active-active"}]),
             C.pool_exclude(GROUP, "a", 1, reason="member a lease expired (node n1)"),
             C.recovery_update(GROUP, "a", 2, "requested"))
    store = MemoryStore()
    store.start()
    store._sm.state = st  # the starting point; every change below goes through submit
    return store


def settle(runner: RecoveryRunner, store: MemoryStore, until, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.step()
        if until(store.state().groups[GROUP].recoveries["a"]):
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out: {store.state().groups[GROUP].recoveries['a']}")


def kinds(store: MemoryStore) -> list[str]:
    return [e.kind for e in store.state().events if e.kind.startswith("recovery_")]


def test_backoff_doubles_and_is_capped():
    assert [backoff_delay(n, 0.5, 3.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_success_is_committed_and_never_requested_again():
    store = store_with_request()
    calls: list[dict[str, Any]] = []
    runner = RecoveryRunner(store, RecoveryConfig(max_attempts=3),
                            hook=lambda body: (calls.append(body), (True, "ok"))[1])
    settle(runner, store, lambda r: r.status == "succeeded")
    assert len(calls) == 1
    assert calls[0] == {"group": GROUP, "member": "a", "node": "n1",
                        "reason": "member a lease expired (node n1)", "epoch": 2,
                        "attempt": 1, "request_id": "g/a/2"}
    # A new runner (a new leader) reads the committed success and does nothing.
    other = RecoveryRunner(store, RecoveryConfig(), hook=lambda b: (calls.append(b), (True,
                                                                                     ""))[1])
    assert other.step() == 0 and runner.step() == 0
    time.sleep(0.05)
    assert len(calls) == 1
    assert kinds(store) == ["recovery_requested", "recovery_attempt", "recovery_succeeded"]


def test_failures_retry_with_backoff_then_give_up():
    store = store_with_request()
    clock = Clock()
    calls: list[float] = []
    runner = RecoveryRunner(store, RecoveryConfig(max_attempts=3, backoff=2.0, backoff_max=10),
                            hook=lambda body: (calls.append(clock.t), (False, "exit 1"))[1],
                            clock=clock)
    settle(runner, store, lambda r: r.attempts == 1 and "exit 1" in r.message)
    time.sleep(0.05)
    runner.step()
    clock.t += 1.9  # back-off after the first failure: 2 s
    runner.step()
    time.sleep(0.05)
    assert len(calls) == 1
    clock.t += 0.2
    settle(runner, store, lambda r: r.attempts == 2)
    time.sleep(0.05)
    clock.t += 3.9  # after the second: 4 s
    runner.step()
    time.sleep(0.05)
    assert len(calls) == 2
    clock.t += 0.2
    settle(runner, store, lambda r: r.status == "gave_up")
    assert len(calls) == 3
    assert kinds(store) == ["recovery_requested"] + ["recovery_attempt", "recovery_failed"] * 3 \
        + ["recovery_gave_up"]
    runner.step()
    time.sleep(0.05)
    assert len(calls) == 3


def test_two_leaders_cannot_run_the_same_attempt():
    store = store_with_request()
    gate = threading.Event()
    calls: list[str] = []

    def slow(name: str):
        def hook(body):
            calls.append(name)
            gate.wait(2)
            return True, "ok"
        return hook

    r1 = RecoveryRunner(store, RecoveryConfig(), hook=slow("r1"))
    r2 = RecoveryRunner(store, RecoveryConfig(), hook=slow("r2"))
    r1.step()
    r2.step()
    time.sleep(0.2)
    gate.set()
    settle(r1, store, lambda r: r.status == "succeeded")
    assert len(calls) == 1
    assert store.state().groups[GROUP].recoveries["a"].attempts == 1


def test_a_runner_that_is_not_leader_does_nothing():
    store = store_with_request()
    calls: list[Any] = []
    runner = RecoveryRunner(store, RecoveryConfig(), hook=lambda b: (calls.append(b), (True,
                                                                                      ""))[1],
                            interval=0.01)
    store.is_leader = lambda: False  # type: ignore[method-assign]
    runner.start()
    time.sleep(0.2)
    runner.stop()
    assert calls == []


def test_exec_hook_gets_the_body_on_stdin_and_in_the_environment(tmp_path: Path):
    out = tmp_path / "calls.jsonl"
    script = tmp_path / "heal.py"
    script.write_text(
        "import json, os, sys\n"
        "body = json.load(sys.stdin)\n"
        f"open({str(out)!r}, 'a').write(json.dumps([body, os.environ['VNFHA_MEMBER']]) + '\\n')\n"
        "sys.exit(int(os.environ.get('FAIL', '0')))\n")
    hook = RecoveryHook(RecoveryConfig(exec=(sys.executable, str(script)), timeout=5))
    body = {"group": "g", "member": "a", "node": "n1", "reason": "r", "epoch": 2, "attempt": 1,
            "request_id": "g/a/2"}
    assert hook(body) == (True, "exec exited 0")
    got, env_member = json.loads(out.read_text())
    assert got == body and env_member == "a"
    bad = RecoveryHook(RecoveryConfig(exec=(sys.executable, "-c", "import sys; sys.exit(3)")))
    ok, msg = bad(body)
    assert not ok and "exited 3" in msg
    slow = RecoveryHook(RecoveryConfig(exec=(sys.executable, "-c", "import time; time.sleep(5)"),
                                       timeout=0.2))
    ok, msg = slow(body)
    assert not ok and "timed out" in msg
    missing = RecoveryHook(RecoveryConfig(exec=("/nonexistent/heal",)))
    assert missing(body)[0] is False


def test_webhook_posts_json_and_needs_a_2xx():
    got: list[tuple[str, dict, str]] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.path, body, self.headers["Idempotency-Key"]))
            self.send_response(status[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/recover?x=1"
        hook = RecoveryHook(RecoveryConfig(webhook=url, timeout=2))
        body = {"group": "g", "member": "a", "node": "n1", "reason": "r", "epoch": 2,
                "attempt": 1, "request_id": "g/a/2"}
        assert hook(body)[0] is True
        assert got == [("/recover?x=1", body, "g/a/2")]
        status[0] = 503
        ok, msg = hook(body)
        assert not ok and "503" in msg
    finally:
        srv.shutdown()
        srv.server_close()
    ok, msg = RecoveryHook(RecoveryConfig(webhook=url, timeout=0.5))(body)
    assert not ok and "webhook failed" in msg


def test_new_leader_retries_an_unfinished_attempt_only_after_timeout_and_backoff():
    """The old leader committed attempt 1 and died before reporting a result."""
    store = store_with_request()
    store.submit(C.recovery_update(GROUP, "a", 2, "attempt", expect_attempts=0))
    clock = Clock()
    calls: list[float] = []
    runner = RecoveryRunner(store, RecoveryConfig(timeout=5.0, backoff=1.0),
                            hook=lambda body: (calls.append(clock.t), (True, "ok"))[1],
                            clock=clock)
    runner.step()
    time.sleep(0.05)
    clock.t += 5.9
    runner.step()
    time.sleep(0.05)
    assert calls == []  # the old attempt may still be running at the VNF manager
    clock.t += 0.2
    settle(runner, store, lambda r: r.status == "succeeded")
    assert len(calls) == 1 and store.state().groups[GROUP].recoveries["a"].attempts == 2
