"""The inputs of the leader's rules (`decide`, `decide_pool`, `decide_dirty`): what
this coordinator has observed of agents, and the policy's constants.

Its own module so that the rule modules import it instead of each other
(`decide` dispatches to `decide_pool`, which needs these types). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vnfha.coordinator.model import Health, Member


@dataclass(frozen=True)
class Policy:
    ttl: float  # member lease TTL on the coordinator's side, seconds
    stabilization: float  # healthy-for time before a failed member is eligible again
    # Active-active: request a recovery without waiting for a load balancer's ack
    # when no LB agent serves the group (decide_pool.lb_confirmed).
    recover_without_lb: bool = False


@dataclass(frozen=True)
class MemberReport:
    """The latest keepalive's word on one member."""

    health: Health
    seen_epoch: int = 0  # highest epoch of the member's group the agent has processed
    active_epoch: int = 0  # epoch under which the agent holds the active role now; 0: none
    healthy_since: float | None = None  # leader monotonic time the current healthy run began
    # The agent's lease generation when it sent the report (a new one per lease
    # acquisition; 0: an agent from before generations) and whether a lease ran then.
    generation: int = 0
    leased: bool = False


@dataclass(frozen=True)
class NodeSeen:
    last_keepalive: float  # leader monotonic arrival time of the latest keepalive
    members: Mapping[tuple[str, str], MemberReport] = field(default_factory=dict)
    # When the current unbroken run of keepalives began (no gap above one TTL): the
    # failsafe rejoin grace (decide.py rule 9). None: unknown, as good as "long ago".
    heard_since: float | None = None


@dataclass(frozen=True)
class Observations:
    leader_since: float
    nodes: Mapping[str, NodeSeen] = field(default_factory=dict)
    # Nodes a majority of coordinators (this one included) have not acknowledged
    # for one TTL. None: this coordinator's own view is final (single coordinator,
    # unit tests). With several coordinators an agent's lease is renewed by a
    # majority of them, so the leader alone must not declare a node lost.
    quorum_expired: frozenset[str] | None = None
    # Active-active members a load balancer's own checks call failing (LB as the
    # cluster manager, coordinator/lbhealth.py): (group, member) -> why.
    lb_down: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # Per node, a counter that moves whenever its member reports change in a way the
    # rules read (leases.LeaseTable): lets the controller skip groups nothing changed
    # for (decide_dirty.py). Not read by the rules themselves.
    versions: Mapping[str, int] = field(default_factory=dict)

    def fresh(self, node: str, now: float, ttl: float) -> bool:
        """This coordinator itself heard from `node` within one TTL: its report is current."""
        seen = self.nodes.get(node)
        return seen is not None and now - seen.last_keepalive <= ttl

    def node_alive(self, node: str, now: float, ttl: float) -> bool:
        """Not (yet) lost. A new leader expires nothing for one TTL after it took over
        (DESIGN §3); with several coordinators a node is lost only when a majority
        of them have not heard from it for one TTL."""
        if self.fresh(node, now, ttl) or now - self.leader_since <= ttl:
            return True
        return self.quorum_expired is not None and node not in self.quorum_expired

    def report(self, member: Member) -> MemberReport | None:
        seen = self.nodes.get(member.node)
        return None if seen is None else seen.members.get((member.group, member.name))
