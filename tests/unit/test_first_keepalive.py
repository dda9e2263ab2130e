"""A node that has just registered is not silent yet (issue 14): the first-keepalive
grace of the lease table (leases.FIRST_KEEPALIVE_GRACE), through the leader's real round
(core.leader_round) with a peer's real table answering, on a fake clock.

What it guards: a burst of agents registering at once takes seconds to open channels
and send a first keepalive. The old table dated a never-heard node's silence from the
leader's first question about it (one TTL) and the peer's from the leader's first
question to it (one TTL more), so every such agent was declared lost two TTLs after
registering (observed: 135-160 `unknown -> lost` of one burst).
"""

from __future__ import annotations

from cluster_builders import build

from vnfha.coordinator import core
from vnfha.coordinator.leases import FIRST_KEEPALIVE_GRACE, LeaseTable, PeerView, Report
from vnfha.coordinator.model import Health
from vnfha.coordinator.observations import Policy

TTL = 0.25  # the default timing
STEP = 0.05  # the leader's round interval here
MEMBERS = (("a", "n1", 100), ("b", "n2", 90))


def rounds(grace: float | None, registered: float, first_keepalive: float | None,
           until: float) -> set[str]:
    """A 2-of-3 cluster serving since t=0 (leader and one peer answering; the third is
    down); n1 (the active) keeps alive throughout; n2 registers at `registered` and is
    heard from `first_keepalive` on (None: never). Returns the nodes any round expired."""
    known: dict[str, object] = {}
    leader = LeaseTable(started_at=0.0, ttl=TTL, known_nodes=lambda: known,
                        first_keepalive_grace=grace)
    peer = LeaseTable(started_at=0.0, ttl=TTL, known_nodes=lambda: known,
                      first_keepalive_grace=grace)
    with_n1 = build(MEMBERS[:1], active="a")
    with_both = build(MEMBERS, health=None, active=None, state=None)
    expired: set[str] = set()
    policy = Policy(ttl=TTL, stabilization=1.0)
    now = 0.0
    while now < until:
        state = with_both if now >= registered else with_n1
        known.clear()
        known.update(state.nodes)
        for table in (leader, peer):
            table.record("n1", [Report("g", "a", Health.HEALTHY, 1, 1)], now)
            if first_keepalive is not None and now >= first_keepalive:
                table.record("n2", [Report("g", "b", Health.HEALTHY, 1, 0)], now)

        def ask(stale: list[str], at: float = now) -> list[PeerView | None]:
            return [PeerView(ages=peer.ages(stale, at)), None]

        r = core.leader_round(state, leader, policy, now, leader_since=0.0, quorum=2,
                              ask=ask, ids=lambda: "rid", at=0.0)
        expired |= r.expired
        now = round(now + STEP, 6)
    return expired


def test_a_node_heard_within_its_grace_after_registering_is_not_lost() -> None:
    # First heard 1 s (4 TTLs) after registering: a burst's connection set-up.
    assert rounds(FIRST_KEEPALIVE_GRACE, registered=1.0, first_keepalive=2.0,
                  until=4.0) == set()
    # Up to the grace itself.
    assert rounds(FIRST_KEEPALIVE_GRACE, registered=1.0,
                  first_keepalive=1.0 + FIRST_KEEPALIVE_GRACE - STEP,
                  until=3.0 + FIRST_KEEPALIVE_GRACE) == set()


def test_the_old_rule_declared_it_lost_two_ttls_after_registering() -> None:
    """Without the grace (the table before the fix): lost at about 2 TTLs."""
    assert rounds(None, registered=1.0, first_keepalive=2.0, until=4.0) == {"n2"}
    assert rounds(None, registered=1.0, first_keepalive=None,
                  until=1.0 + 2 * TTL + 4 * STEP) == {"n2"}


def test_a_node_that_never_keeps_alive_is_still_declared_lost() -> None:
    """The grace delays, never prevents: the leader waits its grace, then the peer
    (first asked then) its own."""
    assert rounds(FIRST_KEEPALIVE_GRACE, registered=1.0, first_keepalive=None,
                  until=1.0 + FIRST_KEEPALIVE_GRACE) == set()
    assert rounds(FIRST_KEEPALIVE_GRACE, registered=1.0, first_keepalive=None,
                  until=1.0 + 2 * FIRST_KEEPALIVE_GRACE + 4 * STEP) == {"n2"}


def test_a_node_known_before_the_coordinator_started_gets_no_extra_grace() -> None:
    """After a restart a known node is dated from when we started serving: a node that
    died while the coordinators were down must still fail over promptly."""
    known = {"n2": object()}
    t = LeaseTable(started_at=10.0, ttl=TTL, known_nodes=lambda: known,
                   first_keepalive_grace=FIRST_KEEPALIVE_GRACE)
    t.serving_from(10.0)
    assert t.age("n2", 9.0) == 0.0  # first asked before we served: dated from serving
    assert t.age("n2", 10.5) == 0.5
    # A node that registers after we serve: not silent during its grace.
    known["n3"] = object()
    assert t.age("n3", 11.0) == 0.0
    assert t.age("n3", 11.0 + FIRST_KEEPALIVE_GRACE - TTL) == 0.0
    assert t.age("n3", 11.0 + FIRST_KEEPALIVE_GRACE) == TTL
    t.record("n3", [], 12.0)  # heard: ordinary silence from then on
    assert t.age("n3", 12.5) == 0.5
