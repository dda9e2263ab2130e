"""One round of the leader, sans I/O: (state, lease table, peers' answers, now) -> commands.

Why: the controller (control.py) used to interleave the expiry rule, the peer
queries and `decide` with its thread, pool and store calls. The round itself is a
function of its inputs: the committed state, what this coordinator heard
(leases.LeaseTable), what the peers say (`ask`, the one edge: PeerService in the
product, simulated links in tests/sim/), the clock, request ids and the wall-clock
stamp. `Controller.step` and the deterministic simulator both run exactly this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from vnfha.coordinator import expiry
from vnfha.coordinator.commands import Command
from vnfha.coordinator.decide import decide
from vnfha.coordinator.leases import LeaseTable, PeerView
from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.observations import Observations, Policy

# The peers' answers about the stale nodes: per peer, node -> seconds since it heard
# the node, or None for a peer that did not answer.
AskPeers = Callable[[list[str]], Sequence[Mapping[str, float] | PeerView | None]]


@dataclass(frozen=True)
class Round:
    """What one leader round decided, and why (metrics and logs read the why)."""

    commands: list[Command]
    stale: list[str]  # silent for a TTL in this coordinator's own table
    expired: frozenset[str]  # confirmed by a majority: may be declared lost
    votes: Mapping[str, int]
    observations: Observations
    own_votes: frozenset[str] = frozenset()  # the stale nodes this coordinator vouched for


def leader_round(state: ClusterState, leases: LeaseTable, policy: Policy, now: float,
                 leader_since: float, quorum: int, ask: AskPeers, *,
                 ids: Callable[[], str], at: float,
                 lb_down: Mapping[tuple[str, str], str] | None = None,
                 groups: Callable[[Observations], Iterable[str] | None] = lambda obs: None,
                 overloaded: bool = False) -> Round:
    """Observe, confirm expiries with a majority, decide.

    `ask` is called only when some node is stale (no query otherwise). `groups` picks
    the groups to decide from the observations (decide_dirty.DirtyTracker; None: all).
    `overloaded`: this coordinator's own loop lags (overload.py), so its own silence
    figures measured up to now vouch only for long silences; fast-path ones, counted
    up to the intake's read watermark, are exact and vouched for as they are
    (leases.LeaseTable.vouched). Candidates are picked by `suspect_ages`: a frozen fast
    path leaves the expiry to the peers, not to nobody."""
    ttl = policy.ttl
    since = expiry.grace_start(leader_since, leases.started_at, ttl)
    suspect = leases.suspect_ages(state.nodes, now, ttl)
    stale = expiry.stale(state.nodes, suspect.__getitem__, ttl, now, since)
    votes: dict[str, int] = {}
    own_votes: frozenset[str] = frozenset()
    if stale:
        own, _ = leases.vouched(stale, now, ttl, overloaded)
        own_votes = frozenset(n for n, a in own.items() if a > ttl)
        votes = expiry.votes(stale, ask(stale), ttl, own_ages=own)
    expired = expiry.confirmed(votes, quorum)
    obs = leases.observations(since, expired, now)
    if lb_down is not None:  # active-active: what LB health checks say
        obs = replace(obs, lb_down=lb_down)
    commands = decide(state, obs, now, policy, groups=groups(obs), ids=ids, at=at)
    return Round(commands, stale, expired, votes, obs, own_votes)
