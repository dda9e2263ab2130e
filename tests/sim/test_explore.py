"""The randomized explorer (tests/sim/explore.py) over the real cores, and the proof
that it bites: the same explorer, with a known bug put back, finds it.

Figures (schedules, events, simulated seconds) are printed (-s to see them). The
search for violations has a CPU budget with a wall-clock cap, so a loaded machine runs
fewer schedules, never a weaker check. A planted bug must be *found*: those runs have
no wall-clock cap, only a count of schedules (seeded, so the seed that finds each bug
is the same on every machine: 10 to 330 today) and the CPU budget.
VNFHA_SIM_SEED=N replays one schedule and prints its trace; VNFHA_SIM_BUDGET=S
changes the budget (seconds).
"""

from __future__ import annotations

import os

import pytest

from vnfha.agents.lease import QuorumLease

from . import explore

BUDGET = float(os.environ.get("VNFHA_SIM_BUDGET", explore.DEFAULT_BUDGET))
# A planted bug must turn up within this many schedules (about 10 times what the
# slowest needs), however loaded the machine: the count, not the clock, bounds it.
PLANTED_COUNT = 3_000


def planted(first_seed: int = 0) -> explore.Report:
    """Explore for a planted bug: no wall-clock cap, bounded by PLANTED_COUNT."""
    return explore.explore(first_seed, budget=max(BUDGET, 120.0), count=PLANTED_COUNT,
                           wall_cap=False)


def test_no_schedule_breaks_safety() -> None:
    seed = os.environ.get("VNFHA_SIM_SEED")
    if seed is not None:
        w = explore.run(explore.schedule(int(seed)))
        print("\n".join(w.trace))
        assert w.violations == [], "\n".join(w.violations)
        return
    r = explore.explore(0, budget=BUDGET)
    print(f"\nexplorer: {r.schedules} schedules, {r.events} events, "
          f"{r.schedules * explore.DURATION:.0f} simulated s in {r.seconds:.1f} s")
    assert r.schedules > 0
    assert r.failure is None, r.failure


def test_a_schedule_replays_exactly() -> None:
    """One seed, one behaviour: what makes a printed seed worth anything."""
    s = explore.schedule(12345)
    assert explore.run(s).trace == explore.run(s).trace


def test_planted_bug_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put back the bug the announced membership fixed: the agent counts its quorum
    against its own coordinator list, ignoring what the coordinators announce. With
    a cluster grown to five and agents listing three, two acknowledgements renew
    the lease while the other three expire the node: two holders. The explorer must
    find that within its default budget, and say how to replay it."""
    monkeypatch.setattr(QuorumLease, "announce", lambda self, cid, members: False)
    r = planted()
    print(f"\nplanted bug found after {r.schedules} schedules in {r.seconds:.1f} s:\n"
          f"{r.failure}")
    assert r.failure is not None, f"not found in {r.schedules} schedules"
    assert "two VIP holders" in r.failure and "VNFHA_SIM_SEED=" in r.failure


def test_planted_bug_leader_expiring_alone_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second bug put back: the leader expires a node on its own view, without a
    majority's confirmation (coordinator/expiry.py). An agent cut off from the leader
    alone keeps a lease from the others and is replaced anyway: two holders."""
    from vnfha.coordinator import expiry

    monkeypatch.setattr(expiry, "confirmed", lambda tally, quorum: frozenset(tally))
    r = planted()
    print(f"\nplanted bug found after {r.schedules} schedules in {r.seconds:.1f} s:\n"
          f"{r.failure}")
    assert r.failure is not None, f"not found in {r.schedules} schedules"
    assert "two VIP holders" in r.failure


def test_planted_bug_no_new_lease_generation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third bug put back: the agent keeps one lease generation for its whole run, so
    after a lapse it acts again on an assignment given to its earlier lease (the gap
    docs/design.md §3 "Lease generations" closed: explorer seed 224 before the fix)."""
    from vnfha.agents import core as agent_core

    monkeypatch.setattr(agent_core, "starts_generation", lambda before, after, now: False)
    r = planted()
    print(f"\nplanted bug found after {r.schedules} schedules in {r.seconds:.1f} s:\n"
          f"{r.failure}")
    assert r.failure is not None, f"not found in {r.schedules} schedules"
    assert "acts on an assignment from before its lease lapsed" in r.failure


def _failsafe_found(r: explore.Report) -> None:
    print(f"\nplanted bug found after {r.schedules} schedules in {r.seconds:.1f} s:\n"
          f"{r.failure}")
    assert r.failure is not None, f"not found in {r.schedules} schedules"
    assert "two VIP holders" in r.failure and "failsafe=1.0" in r.failure


def test_planted_bug_failsafe_partial_grant_set_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken requester rule (agents/failsafe.py `Grants.until`): the role is kept on
    the grants it has, instead of one from *every* other member. An active cut off from
    the coordinators keeps its role on the grant of a standby cut off with it, while the
    coordinators promote a third member that never promised anything: two holders."""
    from vnfha.agents import failsafe as fs

    def until(self: fs.Grants, group: str, epoch: int, peers: frozenset[str]) -> float | None:
        got = self.held.get((group, epoch), {})
        have = [got[p] for p in peers if p in got]
        return min(have) if have else None

    monkeypatch.setattr(fs.Grants, "until", until)
    _failsafe_found(planted())


def _without_rule_9(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decide rule 9 (the rejoin grace, leaving a dark group alone) only delays a
    failover; take it out to show what the promises alone carry."""
    from vnfha.coordinator import decide

    monkeypatch.setattr(decide, "_vouched", lambda *a: True)
    monkeypatch.setattr(decide, "_dark", lambda *a: False)


def test_failsafe_safety_does_not_rest_on_the_rejoin_grace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/design.md "Failsafe": rule 9 only delays. Without it, the coordinators
    promote a standby as soon as the active's expiry is confirmed, while it may still
    honour a promise: it waits for the promise to end, and no schedule breaks safety."""
    _without_rule_9(monkeypatch)
    r = explore.explore(0, budget=BUDGET)
    print(f"\nwithout rule 9: {r.schedules} schedules in {r.seconds:.1f} s")
    assert r.schedules > 0
    assert r.failure is None, r.failure


def test_planted_bug_failsafe_promise_not_kept_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken granter (agents/failsafe.py `Promises.blocks`): a member that granted a
    failsafe lease claims as soon as it is promoted, ignoring its promise. With rule 9's
    delay taken out (it would mostly hide this), a promoted standby claims while the
    active it granted still holds the VIP on that grant: two holders."""
    from vnfha.agents import failsafe as fs

    _without_rule_9(monkeypatch)
    monkeypatch.setattr(fs.Promises, "blocks", lambda self, group, now, lease: None)
    _failsafe_found(planted())
