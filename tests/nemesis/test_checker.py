"""The whole-history checker and the schedule, on hand-made inputs (pure, fast).

Each property has a history that must pass and one or more that must fail, so a
checker that always says "ok" cannot pass these tests.
"""

from __future__ import annotations

import pytest

from . import history as H
from .faults import DEFAULT_OFF, PENDING_FIX, SETUP, default_kinds
from .metrics import failovers, outage_windows, spread
from .schedule import KindSpec, describe, make_schedule


def clean() -> H.History:
    """A history with a failover at t=10 (vm1 -> vm2, epoch 1 -> 2) and nothing wrong."""
    h = H.History()
    h.faults = [H.FaultEvent(9.5, 11.0, "kill_agent", "vm1")]
    h.holders = [H.HolderChange(0.0, frozenset({"vm1"})), H.HolderChange(10.0, frozenset()),
                 H.HolderChange(10.2, frozenset({"vm2"}))]
    for r in ("c1", "c2", "c3"):
        h.epochs += [H.EpochRead(0.0, r, 1, "web-1"), H.EpochRead(10.1, r, 2, "web-2")]
    h.writes = [H.Write(1.0, 1.1, "w0", "a", 1), H.Write(9.8, 10.5, "w1", "b", None),
                H.Write(10.6, 10.7, "w2", "c", 2), H.Write(10.8, 10.9, "w3", "d", 2)]
    h.probes = [H.StaleProbe(12.0, 1, {"sync": {"attempted": 2, "stale_epoch": 2},
                                       "publish": {"attempted": 2, "stale_epoch": 2},
                                       "checkpoint": {"attempted": 2, "stale_epoch": 2}})]
    h.final = H.FinalRead(13.0, {"w0": "a", "w2": "c", "w3": "d"})
    h.converged = H.Converged(12.5, True)
    return h


def test_clean_history_passes_every_property():
    verdicts = H.check(clean())
    assert set(verdicts) == set(H.PROPERTIES)
    assert H.ok(verdicts), verdicts


def test_two_holders_at_once_is_a_violation_with_its_faults():
    h = clean()
    h.holders.insert(1, H.HolderChange(9.9, frozenset({"vm1", "vm2"})))
    v = H.check(h)["single_holder"]
    assert len(v) == 1 and "['vm1', 'vm2']" in v[0] and "0.100s" in v[0]
    assert "kill_agent(vm1)" in v[0]
    assert not H.ok(H.check(h))


def test_dual_holders_until_the_end_are_reported():
    h = clean()
    h.holders.append(H.HolderChange(20.0, frozenset({"vm1", "vm2"})))
    assert "until the end" in H.check(h)["single_holder"][0]


def test_an_accepted_stale_probe_is_a_violation():
    h = clean()
    h.probes.append(H.StaleProbe(14.0, 1, {"checkpoint": {"attempted": 2, "accepted": 1,
                                                          "stale_epoch": 1}}))
    v = H.check(h)["no_stale_epoch"]
    assert len(v) == 1 and "checkpoint accepted 1" in v[0] and "epoch 1" in v[0]


def test_refusals_other_than_accepted_are_not_violations():
    h = clean()
    h.probes.append(H.StaleProbe(14.0, 1, {"sync": {"attempted": 2, "unavailable": 2}}))
    assert H.check(h)["no_stale_epoch"] == []


def test_a_write_acked_at_an_older_epoch_after_a_newer_ack_is_a_violation():
    h = clean()
    h.writes.append(H.Write(11.0, 11.2, "w4", "e", 1))  # the deposed active, acked late
    h.final = H.FinalRead(13.0, {**(h.final.data or {}), "w4": "e"})
    v = H.check(h)["no_stale_epoch"]
    assert len(v) == 1 and "w4" in v[0] and "w2 was acknowledged at epoch 2" in v[0]


def test_overlapping_writes_at_two_epochs_are_not_ordered():
    # w5 started before w2 (epoch 2) was acknowledged: its older epoch proves nothing.
    h = clean()
    h.writes.append(H.Write(10.65, 10.75, "w5", "f", 1))
    h.final = H.FinalRead(13.0, {**(h.final.data or {}), "w5": "f"})
    assert H.check(h)["no_stale_epoch"] == []


def test_a_missing_or_changed_acknowledged_write_is_lost():
    h = clean()
    h.final = H.FinalRead(13.0, {"w0": "a", "w2": "zombie"})
    v = H.check(h)["no_lost_write"]
    assert len(v) == 2
    assert any("w2" in x and "'zombie'" in x for x in v)
    assert any("w3" in x and "missing" in x for x in v)


def test_an_unacknowledged_write_may_be_lost():
    h = clean()  # w1 failed and is absent: fine
    assert "w1" not in (h.final.data or {}) and H.check(h)["no_lost_write"] == []


def test_an_unreadable_store_leaves_writes_unverified():
    h = clean()
    h.final = H.FinalRead(13.0, None)
    assert "could not be read" in H.check(h)["no_lost_write"][0]
    h.final = None
    assert H.check(h)["no_lost_write"]


def test_a_reused_key_holds_its_last_acknowledged_value_or_a_later_attempt():
    h = clean()
    h.writes += [H.Write(11.0, 11.1, "w0", "a2", 2), H.Write(11.2, 11.3, "w0", "a3", None)]
    for final, ok in (("a2", True), ("a3", True), ("a", False)):
        h.final = H.FinalRead(13.0, {**(h.final.data or {}), "w0": final})
        v = H.check(h)["no_lost_write"]
        assert (v == []) == ok, (final, v)
    assert "w0='a2'" in v[0] and "'a'" in v[0]


def test_many_lost_writes_are_summarised():
    h = clean()
    h.writes = [H.Write(i, i + 0.1, f"w{i}", "x", 1) for i in range(30)]
    h.final = H.FinalRead(40.0, {})
    v = H.check(h)["no_lost_write"]
    assert len(v) == 21 and "10 more" in v[-1]


def test_an_epoch_going_back_on_one_reader_is_a_violation():
    h = clean()
    h.epochs.append(H.EpochRead(11.5, "c2", 1, "web-1"))  # a restarted c2, behind
    v = H.check(h)["monotonic_epochs"]
    assert len(v) == 1 and "reader c2" in v[0] and "epoch 2" in v[0] and "then 1" in v[0]


def test_an_excerpt_names_the_last_fault_when_none_is_near():
    h = clean()
    h.epochs.append(H.EpochRead(30.0, "c1", 1, "web-1"))
    v = H.check(h)["monotonic_epochs"]
    assert "none within 3s; last before: kill_agent(vm1)" in v[0]


def test_readers_are_checked_separately_and_in_time_order():
    h = clean()
    # Appended out of order (threads), but in time order c3 only ever rose.
    h.epochs.append(H.EpochRead(5.0, "c3", 1, "web-1"))
    assert H.check(h)["monotonic_epochs"] == []


def test_not_converging_is_a_violation():
    h = clean()
    h.converged = H.Converged(12.5, False, "no active")
    assert "no active" in H.check(h)["converged"][0]
    h.converged = None
    assert H.check(h)["converged"]


def test_schedule_is_a_function_of_the_seed():
    kinds = [KindSpec("a", ("x", "y")), KindSpec("b", ("z",), 0.1, 0.2)]
    one, two = make_schedule(7, 50, kinds), make_schedule(7, 50, kinds)
    assert one == two and len(one) == 50
    assert make_schedule(8, 50, kinds) != one
    assert all(0.1 <= s.duration <= 0.2 for s in one if s.kind == "b")
    assert {s.kind for s in one} == {"a", "b"}
    text = describe(7, one, ["a", "b"])
    assert "--seed 7 --faults 50 --kinds a,b" in text and text.count("\n") == 50


def test_schedule_refuses_bad_input():
    with pytest.raises(ValueError, match="no fault kinds"):
        make_schedule(1, 5, [])
    with pytest.raises(ValueError, match=">= 0"):
        make_schedule(1, -1, [KindSpec("a", ("x",))])


def test_every_fault_kind_including_disk_runs_by_default():
    assert {"disk_enospc", "disk_eio"} <= set(default_kinds())
    assert not DEFAULT_OFF & set(default_kinds())
    # the disk kinds put every coordinator on a disk of its own before it starts
    assert SETUP["disk_enospc"] is SETUP["disk_eio"]
    assert set(PENDING_FIX) <= set(default_kinds())  # the bench runs them
    for required in ("kill_agent", "kill_guardian", "kill_coordinator", "kill_leader",
                     "stop_agent", "stop_guardian", "stop_vm", "stop_leader", "cut_host",
                     "cut_pair", "isolate_pair", "link_down", "drop_inbound",
                     "restart_coordinator"):
        assert required in default_kinds()


class A:
    def __init__(self, at: float, ok: bool, who: str = "") -> None:
        self.at, self.ok, self.who = at, ok, who


def test_outage_windows_and_failovers_from_probe_attempts():
    attempts = [A(0.0, True, "vm1"), A(0.1, False), A(0.2, False), A(0.3, True, "vm2"),
                A(0.4, True, "vm2"), A(0.5, False), A(0.6, True, "vm2")]
    windows = outage_windows(attempts)
    assert [(round(s, 3), round(d, 3)) for s, d in windows] == [(0.0, 0.3), (0.4, 0.2)]
    f = failovers(attempts)
    assert len(f) == 1 and f[0][2:] == ("vm1", "vm2") and round(f[0][1], 3) == 0.3
    assert spread([0.3, 0.2, 0.1]) == {"n": 3, "p50": 0.2, "max": 0.3}
    assert spread([]) == {"n": 0}
