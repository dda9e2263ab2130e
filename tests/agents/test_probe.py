"""The outage arithmetic the demo and the failover benchmark report."""

from vnfha_lab.probe import Attempt, outage


def A(at: float, ok: bool, who: str) -> Attempt:
    return Attempt(at=at, ok=ok, who=who)


def test_crash_outage_runs_from_fault_to_first_answer_of_new_holder():
    attempts = [A(0.0, True, "vm1"), A(1.0, True, "vm1"), A(1.1, False, "timeout"),
                A(1.5, False, "timeout"), A(1.6, True, "vm2"), A(1.7, True, "vm2")]
    assert abs(outage(attempts, fault_at=1.05, new_holder="vm2") - 0.55) < 1e-9


def test_switchover_gap_runs_from_last_old_answer():
    attempts = [A(0.0, True, "vm1"), A(0.02, True, "vm1"), A(0.05, True, "vm2")]
    assert abs(outage(attempts, fault_at=0.01, new_holder="vm2") - 0.03) < 1e-9


def test_no_answer_from_new_holder_is_none():
    assert outage([A(0.0, True, "vm1"), A(1.0, False, "x")], 0.5, "vm2") is None
