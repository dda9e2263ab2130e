"""A restarted Raft store re-applies its journal without logging every event again:
one summary line, then events are logged as before (StateMachine.log_events)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from raft_helpers import cluster_settings, wait_for

from vnfha.coordinator import commands as C
from vnfha.coordinator.store.raft import RaftStore


def event_groups(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.event["group"] for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "vnfha.state" and hasattr(r, "event")]


def test_restart_replays_quietly_then_logs_new_events(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (s,) = cluster_settings(tmp_path, 1, snapshot_on_stop_timeout=0)  # replay, as after a crash
    caplog.set_level(logging.INFO, logger="vnfha")
    first = RaftStore("c1", s, {s.self_address: "c1"})
    first.start()
    try:
        wait_for(first.is_leader, 10, "leadership")
        for i in range(5):
            assert first.submit(C.apply_groups([{"name": f"g{i}"}]))["ok"]
        wait_for(lambda: len(event_groups(caplog)) == 5, 5, "events logged")
    finally:
        first.stop()
    caplog.clear()
    second = RaftStore("c1", s, {s.self_address: "c1"})
    second.start()
    try:
        def summaries() -> list[logging.LogRecord]:
            return [r for r in caplog.records
                    if r.getMessage().startswith("raft journal re-applied")]

        # The summary is logged just after the last entry is applied, by the thread
        # that applied it: wait for it too (a CI run read the state in between).
        wait_for(lambda: second.read_gate() is None and len(second.state().groups) == 5
                 and summaries(), 10, "journal re-applied")
        assert event_groups(caplog) == []  # the old code logged g0..g4 again
        summary = summaries()
        assert len(summary) == 1 and summary[0].events == 5  # type: ignore[attr-defined]
        wait_for(second.is_leader, 10, "leadership after restart")
        assert second.submit(C.apply_groups([{"name": "new"}]))["ok"]
        assert event_groups(caplog) == ["new"]
    finally:
        second.stop()
