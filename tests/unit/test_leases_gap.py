"""A healthy run is broken by a silence longer than one TTL (stabilization restarts)."""

from __future__ import annotations

from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import Health


def healthy(t: LeaseTable, at: float) -> float | None:
    t.record("n1", [Report("g", "a", Health.HEALTHY, 0, 0)], at)
    return t.observations(0.0, None).nodes["n1"].members[("g", "a")].healthy_since


def test_run_continues_across_regular_keepalives():
    t = LeaseTable(started_at=0.0, ttl=0.25)
    assert healthy(t, 10.0) == 10.0
    assert healthy(t, 10.2) == 10.0
    assert healthy(t, 10.45) == 10.0


def test_silence_longer_than_ttl_starts_a_new_run():
    """A crashed node heard again (a late, retransmitted keepalive of its dead agent,
    or its new agent) must not count as healthy since before the crash."""
    t = LeaseTable(started_at=0.0, ttl=0.25)
    healthy(t, 10.0)
    assert healthy(t, 12.0) == 12.0
    assert healthy(t, 12.1) == 12.0


def test_without_ttl_the_old_behaviour_is_kept():
    t = LeaseTable(started_at=0.0)
    healthy(t, 10.0)
    assert healthy(t, 12.0) == 10.0


def test_an_unchanged_report_moves_only_the_time():
    """The cheap path for a repeated report (most keepalives) changes exactly what the
    full path would: the last-heard time, nothing a decision reads."""
    t = LeaseTable(started_at=0.0, ttl=0.25)
    reports = [Report("g", "a", Health.HEALTHY, 3, 3, generation=7, leased=True)]
    assert t.record("n1", reports, 10.0) is True  # first keepalive
    before = t.observations(0.0, None)
    assert t.record("n1", list(reports), 10.1) is False
    after = t.observations(0.0, None)
    assert t.last_seen("n1") == 10.1
    assert after.versions == before.versions
    assert after.nodes["n1"].members == before.nodes["n1"].members
    assert after.nodes["n1"].heard_since == 10.0
    # An older keepalive handled late does not move the time back.
    assert t.record("n1", list(reports), 10.05) is False
    assert t.last_seen("n1") == 10.1
    # Any change still takes the full path: a new epoch seen is a change.
    assert t.record("n1", [Report("g", "a", Health.HEALTHY, 4, 3, generation=7,
                                  leased=True)], 10.2) is True
    assert t.observations(0.0, None).versions["n1"] > before.versions["n1"]
