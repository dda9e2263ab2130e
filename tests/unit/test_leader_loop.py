"""LeaderLoop: acts only while leading, survives failing rounds, and a persistent fault
gives one traceback and then one line per interval, not a traceback per round."""

from __future__ import annotations

import logging
import threading

import pytest

from vnfha.coordinator.leader_loop import LeaderLoop


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(step, leading=lambda: True, clock=None, on_error=None):
    return LeaderLoop("test", step, leading, lambda: 0.01, logging.getLogger("vnfha.test.loop"),
                      on_error=on_error, clock=clock or Clock(), error_log_interval=10.0)


def test_steps_only_while_leading() -> None:
    calls: list[int] = []
    leading = [False]
    loop = make(lambda: calls.append(1), leading=lambda: leading[0])
    loop.run_once()
    assert calls == []
    leading[0] = True
    loop.run_once()
    assert calls == [1]


def test_a_persistent_failure_logs_one_traceback_then_one_line_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    errors: list[int] = []

    def boom() -> None:
        raise OSError(28, "No space left on device")

    loop = make(boom, clock=clock, on_error=lambda: errors.append(1))
    with caplog.at_level(logging.INFO, logger="vnfha.test.loop"):
        for _ in range(200):  # 20 s of rounds at 0.1 s
            loop.run_once()
            clock.now += 0.1
    assert len(errors) == 200  # every failed round reaches on_error
    records = [r for r in caplog.records if r.name == "vnfha.test.loop"]
    tracebacks = [r for r in records if r.exc_info]
    assert len(tracebacks) == 1
    lines = [r for r in records if not r.exc_info]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in records]
    assert all("No space left" in r.cause for r in lines)
    assert sum(r.failures for r in lines) <= 199


def test_recovery_is_logged_and_rearms_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    fail = [True]

    def step() -> None:
        if fail[0]:
            raise RuntimeError("store gone")

    loop = make(step, clock=clock)
    with caplog.at_level(logging.INFO, logger="vnfha.test.loop"):
        loop.run_once()
        fail[0] = False
        loop.run_once()
        fail[0] = True
        loop.run_once()
    msgs = [r.getMessage() for r in caplog.records if r.name == "vnfha.test.loop"]
    assert [bool(r.exc_info) for r in caplog.records if r.name == "vnfha.test.loop"] == [
        True, False, True]
    assert "succeed again" in msgs[1]


def test_thread_wakes_on_demand_and_stops() -> None:
    stepped = threading.Event()
    loop = LeaderLoop("test", stepped.set, lambda: True, lambda: 60.0,
                      logging.getLogger("vnfha.test.loop"))
    loop.start()
    try:
        loop.wake()
        assert stepped.wait(5.0)  # woken well before its 60 s wait
    finally:
        loop.stop(timeout=5.0)
    assert loop.stopping


def test_running_is_what_livez_reads() -> None:
    """/livez (coordinator/metrics.live) says "controller not running" from this; it read
    a private attribute of the controller before the loop moved here and so always
    answered 503 after the move (tests/e2e/test_metrics_health.py found it)."""
    import types

    from vnfha.coordinator.control import Controller
    from vnfha.coordinator.decide import Policy
    from vnfha.coordinator.leases import LeaseTable
    from vnfha.coordinator.metrics import live
    from vnfha.coordinator.store.memory import MemoryStore

    store = MemoryStore()
    store.start()
    ctl = Controller(store, LeaseTable(started_at=0.0), Policy(ttl=0.25, stabilization=1.0),
                     interval=0.05, peers={}, quorum=1)
    loop_thread = threading.Thread(target=threading.Event().wait, args=(5.0,), daemon=True)
    loop_thread.start()
    coordinator = types.SimpleNamespace(_loop_thread=loop_thread, controller=ctl)
    try:
        assert live(coordinator) == (False, "controller not running")
        ctl.start()
        assert ctl.running and live(coordinator) == (True, "running")
    finally:
        ctl.stop()
        store.stop()
    assert not ctl.running and live(coordinator)[0] is False
