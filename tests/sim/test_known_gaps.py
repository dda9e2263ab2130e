"""Gaps the simulator found in the product that are not fixed yet. Each test states
the property that should hold and is marked xfail(strict): when a fix lands, the
test passes, pytest reports XPASS as a failure, and the fix's author removes the
mark (and adds the schedule to the explorer's default model).
"""

from __future__ import annotations

import pytest

from . import explore
from .world import World

COORDS = ["c1", "c2", "c3"]
AGENTS = {"n1": [("g", "a", 100)], "n2": [("g", "b", 90)]}
PLAIN = {name: 1.0 for name in [*COORDS, *AGENTS]}


@pytest.mark.xfail(strict=True, reason=(
    "an agent whose lease lapsed re-claims on the assignment it had before the lapse "
    "when its coordinator connections broke meanwhile: acks of the rounds queued during "
    "the break renew the lease before the watch re-subscribes (0.1 s later) and brings "
    "the promotion of the standby; docs/design.md §3 'Known gaps'"))
def test_a_lapsed_agent_does_not_reclaim_on_a_stale_assignment() -> None:
    w = World(1, COORDS, AGENTS, rates=PLAIN, first_leader="c1")
    w.run_for(2)
    w.partition([["n1"], [*COORDS, "n2"]])
    # The connections from the coordinators to n1 break: the watch updates sent
    # while it is cut off (b promoted at epoch 2) are lost, not retransmitted.
    for c in COORDS:
        w.net.hold_rules[(c, "n1", "watch")] = 1_000
    w.run_for(3)
    assert w.coords["c1"].state.groups["g"].active == "b"  # the failover happened
    w.net.hold_rules.clear()  # reconnected: the watches re-send their snapshot
    w.net.held.clear()  # what the broken connections carried is lost
    w.heal()
    w.run_for(1)
    assert w.violations == [] and w.known == [], "\n".join(w.trace)


@pytest.mark.xfail(strict=True, reason=(
    "the same gap with no connection lost: a lapsed agent's first round after its "
    "release is acknowledged by a majority while the leader's expiry, confirmed a "
    "moment before those keepalives arrived, commits the promotion; the agent re-claims "
    "on its old assignment until the watch brings the promotion (explorer seed 224)"))
def test_a_renewal_racing_an_expiry_does_not_reclaim() -> None:
    w = explore.run(explore.schedule(224))
    assert w.violations == [] and w.known == [], "\n".join(w.trace)
