"""Events are logged once per applied command, and not again when a store re-applies
its own journal after a restart (StateMachine.log_events; issue 14: at 5,000 groups
writing the replayed events again cost as much CPU as the replay)."""

from __future__ import annotations

import logging

import pytest

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import Health
from vnfha.coordinator.state_machine import StateMachine


def kinds(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vnfha.state"]


def test_each_new_event_is_logged_once_in_order(caplog: pytest.LogCaptureFixture) -> None:
    sm = StateMachine()
    caplog.set_level(logging.INFO, logger="vnfha.state")
    sm.apply(C.apply_groups([{"name": f"g{i}"} for i in range(3)]))
    sm.apply(C.register_node("n1", "198.18.0.1", [{"group": "g0", "member": "a"}]))
    assert kinds(caplog) == ["group_created"] * 3 + ["member_added", "node_registered"]
    seqs = [r.event["seq"] for r in caplog.records if hasattr(r, "event")]  # type: ignore[attr-defined]
    assert seqs == [1, 2, 3, 4, 5]


def test_a_full_history_window_is_logged_whole(caplog: pytest.LogCaptureFixture) -> None:
    """Events are read from the end of the history: a command that fills the whole
    window (1,000 events) after an earlier one still logs each of its own once."""
    sm = StateMachine()
    caplog.set_level(logging.INFO, logger="vnfha.state")
    sm.apply(C.apply_groups([{"name": f"a{i}"} for i in range(10)]))
    sm.apply(C.apply_groups([{"name": f"g{i}"} for i in range(1000)]))
    logged = [r.event["group"] for r in caplog.records  # type: ignore[attr-defined]
              if hasattr(r, "event")]
    assert logged == [f"a{i}" for i in range(10)] + [f"g{i}" for i in range(1000)]


def test_quiet_while_replaying_counts_instead(caplog: pytest.LogCaptureFixture) -> None:
    sm = StateMachine()
    sm.log_events = False
    caplog.set_level(logging.INFO, logger="vnfha.state")
    sm.apply(C.apply_groups([{"name": "g0"}, {"name": "g1"}]))
    sm.apply(C.set_health("g0", "nobody", Health.HEALTHY))  # refused: not logged either
    assert kinds(caplog) == [] and sm.quiet_events == 2
    sm.log_events = True
    sm.apply(C.apply_groups([{"name": "g2"}]))
    assert kinds(caplog) == ["group_created"]
