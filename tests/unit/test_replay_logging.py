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


def mass_failover_batch(sm: StateMachine, groups: int) -> dict:
    """`groups` groups with one member each on n1, then one batch that marks each
    healthy and promotes it: two events per group in one command."""
    assert sm.apply(C.apply_groups([{"name": f"g{i}"} for i in range(groups)]))["ok"]
    assert sm.apply(C.register_node("n1", "198.18.0.1", [{"group": f"g{i}", "member": "a"}
                                                        for i in range(groups)]))["ok"]
    items = []
    for i in range(groups):
        items += [C.set_health(f"g{i}", "a", Health.HEALTHY),
                  C.promote(f"g{i}", "a", 0, reason="test")]
    return C.batch(items)


def test_a_command_with_more_events_than_the_history_keeps_logs_every_one(
        caplog: pytest.LogCaptureFixture) -> None:
    """The history keeps the last MAX_EVENTS (1,000); a mass failover's batch can
    create more (a health change and a promotion per group of a lost node). Each is
    logged: the old code logged from the history's tail after the command, so the
    batch's first events were already gone (found with bench/scale.py: promotions
    never logged)."""
    sm = StateMachine()
    batch = mass_failover_batch(sm, 512)
    first = sm.state.next_event_seq
    caplog.set_level(logging.INFO, logger="vnfha.state")
    assert sm.apply(batch)["ok"]
    seqs = [r.event["seq"] for r in caplog.records  # type: ignore[attr-defined]
            if hasattr(r, "event")]
    assert seqs == list(range(first, first + 1024))
    assert kinds(caplog).count("promoted") == 512
    assert len(sm.state.events) == 1000  # the history itself stays bounded


def test_a_refused_batch_logs_nothing_and_its_numbers_are_used_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """A batch is all or nothing: events its first items created before a later item
    was refused were never committed, and the next command reuses their numbers."""
    sm = StateMachine()
    sm.apply(C.apply_groups([{"name": "g0"}]))
    sm.apply(C.register_node("n1", "198.18.0.1", [{"group": "g0", "member": "a"}]))
    first = sm.state.next_event_seq
    caplog.set_level(logging.INFO, logger="vnfha.state")
    result = sm.apply(C.batch([C.set_health("g0", "a", Health.HEALTHY),
                               C.promote("g0", "nobody", 0, reason="test")]))
    assert not result["ok"] and result["error"] != "invalid", result
    assert [r for r in caplog.records if hasattr(r, "event")] == []
    assert sm.apply(C.apply_groups([{"name": "y"}]))["ok"]
    logged = [(r.event["seq"], r.event["kind"]) for r in caplog.records  # type: ignore[attr-defined]
              if hasattr(r, "event")]
    assert logged == [(first, "group_created")]
    assert sm.state.events[-1].seq == first and sm.state.events[-1].group == "y"
