"""The session's failsafe hook (agents/session.py reconcile): failsafe leases keep an
active role the agent already holds, never start one, and a failsafe promise delays a
claim until it ends. A fake clock and hand-set assignments; no coordinator is contacted
(the session is never started)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.v1 import agent_pb2, types_pb2

TTL = 0.3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Hook:
    keep_until: float = 0.0  # failsafe grants end (0: none)
    promise_until: float = 0.0  # a promise this agent gave ends
    asked: list[tuple[str, int]] = field(default_factory=list)

    def holds(self, group: str, epoch: int, now: float) -> bool:
        self.asked.append((group, epoch))
        return now < self.keep_until

    def blocks(self, group: str, now: float) -> float | None:
        return self.promise_until if now < self.promise_until else None


@pytest.fixture
def rig():
    clock = Clock()
    changes: list[tuple[bool, int, str]] = []
    s = AgentSession("vm1", [HostedMember("web", "web-1")], ["127.0.0.1:9"], ttl=TTL,
                     interval=0.1, clock=clock,
                     on_role=lambda g, m, active, epoch, why: changes.append(
                         (active, epoch, why)))
    yield s, clock, changes
    s._stubs.close()


def renew(s: AgentSession, clock: Clock) -> None:
    """A keepalive round sent now and acknowledged by the only coordinator."""
    s._seq += 1
    s.lease.sent(s._seq, clock.now)
    s.lease.acked(s._seq, "c1", 0)


def assign(s: AgentSession, epoch: int, active: bool = True) -> None:
    s._assignments = {("web", "web-1"): agent_pb2.Assignment(
        group="web", member="web-1", epoch=epoch,
        role=types_pb2.ROLE_ACTIVE if active else types_pb2.ROLE_STANDBY)}


def test_without_the_hook_the_role_ends_with_the_quorum_lease(rig):
    s, clock, changes = rig
    renew(s, clock)
    assign(s, 3)
    s.reconcile("t")
    assert changes == [(True, 3, "t")]
    clock.now += TTL
    s.reconcile("t")
    assert changes[-1] == (False, 3, "lease expired")


def test_failsafe_keeps_a_held_role_past_the_quorum_lease_and_drops_it_when_it_ends(rig):
    s, clock, changes = rig
    hook = Hook()
    s.failsafe = hook
    renew(s, clock)
    assign(s, 3)
    s.reconcile("t")
    hook.keep_until = clock.now + 2.0
    clock.now += 1.0  # the quorum lease is long gone
    s.reconcile("t")
    assert changes == [(True, 3, "t")] and ("web", 3) in hook.asked
    clock.now += 1.0  # the grants end
    s.reconcile("t")
    assert changes[-1] == (False, 3, "lease expired")


def test_failsafe_never_starts_a_role(rig):
    s, clock, changes = rig
    s.failsafe = Hook(keep_until=clock.now + 10)
    assign(s, 3)  # active in the assignment, but no quorum lease ever
    s.reconcile("t")
    assert changes == []


def test_failsafe_does_not_keep_a_role_at_another_epoch(rig):
    s, clock, changes = rig
    hook = Hook()
    s.failsafe = hook
    renew(s, clock)
    assign(s, 3)
    s.reconcile("t")
    hook.keep_until = clock.now + 10
    clock.now += 1.0
    assign(s, 4)  # the assignment moved on: the role held at 3 ends, 4 is not started
    s.reconcile("t")
    assert changes == [(True, 3, "t"), (False, 3, "lease expired")]


def test_a_promise_delays_a_claim_until_it_ends(rig):
    """A member promoted while it honours a failsafe promise claims only afterwards."""
    s, clock, changes = rig
    s.failsafe = Hook(promise_until=clock.now + 0.5)
    renew(s, clock)
    assign(s, 4)
    s.reconcile("promoted")
    assert changes == []
    assert s.role("web", "web-1").seen_epoch == 4, "seen, not acted on"
    clock.now += 0.5
    renew(s, clock)
    s.reconcile("promise over")
    assert changes == [(True, 4, "promise over")]
