"""Failsafe leases: keep serving through a total coordinator outage. Pure.

Without failsafe, an active whose agent cannot reach a majority of coordinators
drops its VIP when its quorum lease ends, even when the coordinators themselves
are what failed: the HA layer's outage becomes a service outage. With failsafe on
(a cluster-wide setting delivered with the assignments), that active may keep its
role, and only keep it (failsafe never starts a role), while it holds an unexpired
*failsafe lease* from **every** other member of its group, asked directly of their
agents over mTLS (agents/failsafe_peer.py does the I/O).

The safety argument (docs/design.md, "Failsafe") rests on two rules here:

* **The grant rule** (`grant`): a member grants a lease for group G to requester R
  only if the caller's certificate names the node hosting R, R is G's active at
  epoch E in the granter's last assignment, the granter is not active of G, and the
  granter does not hear a coordinator quorum itself. A member that hears the
  coordinators refuses, so an active cut off from the coordinators but not from its
  standby drops exactly as without failsafe, and the majority side promotes as
  always.
* **The promise** (`Promises`): granting records "I will not claim G's VIP until
  now + lease" on the granter's monotonic clock, honoured even if the coordinators
  promote this member meanwhile. The requester counts each grant from the moment it
  *sent* the request, shortened by the clock-drift bound and the VIP-removal margin
  (`Grants`), so its own view of every grant ends before the granter's promise does.
  A promoted member that still honours a promise waits; the epoch fences state sync.

A restarted agent has forgotten its promises, so it claims nothing for one failsafe
lease after it starts (`Promises.started`).

Everything is a function of its inputs and `now` (local monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    """Another member of a group, as the coordinators last described it."""

    member: str
    node: str
    endpoint: str  # host:port of that node's failsafe listener ("" if it has none)
    active: bool = False


@dataclass(frozen=True)
class GroupView:
    """What this agent's last assignment says about one group it hosts a member of."""

    group: str
    member: str  # this agent's member
    epoch: int
    active: str  # the group's active member ("" if none)
    lease: float  # failsafe lease, seconds; 0: failsafe off
    peers: tuple[Peer, ...] = ()

    def peer(self, member: str) -> Peer | None:
        return next((p for p in self.peers if p.member == member), None)


@dataclass(frozen=True)
class Verdict:
    granted: bool
    reason: str
    lease: float = 0.0  # seconds granted (from receipt, on the granter's clock)


#: A granter hears no quorum once its newest quorum-acknowledged round was sent more than
#: this many keepalive intervals ago: the next round's acknowledgements are then half an
#: interval late. Lower grants sooner after a total outage (more margin before the
#: active's quorum lease ends); higher is stricter in a partition (a slow acknowledgement
#: to a standby that does hear the coordinators lets the cut-off active keep its role
#: for one more failsafe lease, which delays the failover, never doubles the role).
GRANTER_ROUNDS = 1.5
#: The requester starts asking once one round went unacknowledged by a quorum.
REQUESTER_ROUNDS = 1.0


def quorum_quiet(deadline: float | None, now: float, span: float, interval: float,
                 rounds: float = GRANTER_ROUNDS) -> bool:
    """This agent has not heard a coordinator quorum lately: its quorum lease is gone,
    or was last extended more than `rounds` keepalive intervals ago.

    `span` is how long one acknowledged round extends the lease (ttl*(1-drift) -
    margin), so `deadline - span` is when the newest quorum-acknowledged round was
    sent. Used with GRANTER_ROUNDS by the granter (a member whose rounds are still
    acknowledged, each within half an interval, refuses) and with REQUESTER_ROUNDS by
    the requester, to start asking before its lease ends: after a total outage every
    agent goes quiet within one interval of the others, so the active holds its grants
    before its quorum lease runs out."""
    if deadline is None or deadline <= now:
        return True
    return deadline - span < now - rounds * interval


def awaits_restamp(active_epoch: int, assigned_epoch: int, stamp: int,
                   generation: int) -> bool:
    """The role is held at its assigned epoch, but the assignment is stamped with a lease
    generation other than the running one: the quorum lease is back, and the leader has
    not re-stamped the role under it yet (decide rule 10).

    The requester keeps asking for grants meanwhile, as if it heard no quorum: the
    leader may hear us last (after a long cut a failed neighbour entry resolves only at
    its next retry, up to a second later), and without grants the role would drop when
    the last one ends, to be promoted again one epoch later. Safe as every grant is:
    a member grants only while it hears no coordinator quorum itself, and a member
    promoted meanwhile claims only after the promise it gave ends."""
    return bool(active_epoch) and active_epoch == assigned_epoch and stamp not in (
        0, generation)


def grant(view: GroupView | None, *, caller_node: str, requester: str, epoch: int,
          hears_quorum: bool, acting_active: bool) -> Verdict:
    """The grant rule. `caller_node` is the node the caller's certificate names
    (None-like "" when the listener runs without TLS: then nothing is granted)."""
    if view is None:
        return Verdict(False, "this agent hosts no member of that group")
    if view.lease <= 0:
        return Verdict(False, "failsafe is off for this group")
    peer = view.peer(requester)
    if peer is None:
        return Verdict(False, f"{requester!r} is not a member of {view.group!r} in this "
                              "agent's last assignment")
    if not caller_node or peer.node != caller_node:
        return Verdict(False, f"the caller is not the node hosting {requester!r}")
    if view.active != requester or view.epoch != epoch:
        return Verdict(False, f"{requester!r} is not the active at epoch {epoch} in this "
                              f"agent's last assignment (active {view.active or 'none'!r} "
                              f"at epoch {view.epoch})")
    if acting_active or view.active == view.member:
        return Verdict(False, "this member is active itself")
    if hears_quorum:
        return Verdict(False, "this agent hears a coordinator quorum: the coordinators "
                              "decide")
    return Verdict(True, "granted", view.lease)


@dataclass
class Promises:
    """The granter's promises: group -> local monotonic time before which this agent
    does not claim the group's VIP, whatever the coordinators say."""

    started: float  # when this agent started: earlier promises were forgotten
    until: dict[str, float] = field(default_factory=dict)

    def promise(self, group: str, now: float, lease: float) -> float:
        end = now + lease
        self.until[group] = max(self.until.get(group, end), end)
        return self.until[group]

    def blocks(self, group: str, now: float, lease: float) -> float | None:
        """Until when claiming `group` must wait (None: it need not). `lease` is the
        group's failsafe lease: a restarted agent may have promised one before it
        started."""
        end = max(self.until.get(group, 0.0), self.started + lease if lease > 0 else 0.0)
        return end if now < end else None


@dataclass
class Grants:
    """The requester's grants: (group, epoch) -> peer member -> when the grant ends on
    this agent's clock, counted from when the request was sent."""

    drift: float = 0.01
    margin: float = 0.05
    held: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)

    def granted(self, group: str, epoch: int, peer: str, sent: float, lease: float) -> None:
        end = sent + lease * (1 - self.drift) - self.margin
        got = self.held.setdefault((group, epoch), {})
        got[peer] = max(got.get(peer, end), end)

    def refused(self, group: str, epoch: int, peer: str) -> None:
        """A refusal ends nothing the granter promised: its earlier grant still binds it
        (its promise runs to the same end), so it still counts until then; only no
        new one is added. Dropping it at once would take the VIP down at the very
        moment the coordinators come back, when a standby hears them first and
        refuses, a few milliseconds before the active's own quorum lease returns."""
        return None

    def until(self, group: str, epoch: int, peers: frozenset[str]) -> float | None:
        """When the role may be kept until: the earliest of every peer's grant; None
        when a peer has granted nothing (or the group has no other member)."""
        got = self.held.get((group, epoch), {})
        if not peers or any(p not in got for p in peers):
            return None
        return min(got[p] for p in peers)

    def holds(self, group: str, epoch: int, peers: frozenset[str], now: float) -> bool:
        end = self.until(group, epoch, peers)
        return end is not None and now < end

    def clear(self, group: str) -> None:
        for key in [k for k in self.held if k[0] == group]:
            del self.held[key]

    def due(self, group: str, epoch: int, peers: frozenset[str], now: float,
            lease: float) -> bool:
        """Ask (again) now: some peer's grant is missing or has less than 2/3 of a lease
        left, so a renewal lands well before anything ends."""
        got = self.held.get((group, epoch), {})
        return any(p not in got or got[p] - now < lease * 2 / 3 for p in peers)
