"""Which groups the next decide round must look at: those whose inputs changed.

A full `decide` sweep reads every group at every round (20 Hz by default): 6 ms per
round at 1,000 groups, 29-47 ms at 5,000, almost all of it finding nothing to do
(issue 14). Every rule reads one group and the observations and committed facts of
its members' nodes (decide.decide), so a group whose inputs are the same as at a
round that proposed nothing for it proposes nothing again. Its inputs are:

* the committed group and its members' `Node` records: a changed object (the state
  is immutable, commands replace what they change, so identity says "changed");
* per member node, the reports decide reads (health, seen and held epochs, healthy
  since): `Observations.versions`, a counter the lease table moves on each change;
* the clock, through three thresholds only: a node is *fresh* (heard within one
  TTL), the new leader's *grace* (one TTL after `leader_since`), and a member's
  *stabilization* (`healthy_since + stabilization`); the tracker compares the fresh
  set with the last round's, re-sweeps everything when the grace or the leader
  changes, and re-reads a quarantined member's group when its deadline passes;
* the majority's verdict (`quorum_expired`) and the load balancers' (`lb_down`);
* with failsafe on, a group whose active is lost while another member is heard: rule 9
  waits for that member to vouch, which turns on arrival times and the rejoin grace,
  not on any change above (a keepalive with the same report moves no version). Such
  a group is read at every round until the wait ends; one with no member heard is
  not (rule 9 cannot act on it until a node turns fresh, which the fresh set sees).

Active-active groups are always read (their recovery rule also reads the liveness of
load-balancer nodes that host no member). And every `full_every` rounds, after a
round whose commit failed, and on any doubt, the round is a full sweep: a missed
input can delay a decision by at most that many rounds, never make one unsafe (the
state machine re-checks every command).
"""

from __future__ import annotations

from collections.abc import Mapping

from vnfha.coordinator.model import ClusterState, GroupMode, node_index
from vnfha.coordinator.observations import Observations, Policy


class DirtyTracker:
    """Remembers what the last round saw; answers which groups changed since."""

    def __init__(self, full_every: int = 20) -> None:
        self._full_every = max(1, full_every)
        self._rounds = 0
        self._force = True
        self._state: ClusterState | None = None
        self._fresh: frozenset[str] = frozenset()
        self._versions: Mapping[str, int] = {}
        self._quorum_expired: frozenset[str] | None = None
        self._lb_down: Mapping[tuple[str, str], str] = {}
        self._leader_since: float | None = None
        self._in_grace = True
        self._now = float("-inf")
        self._quarantined: set[str] = set()  # groups with a quarantined member
        self._active_active: set[str] = set()
        self.full_sweeps = 0  # for tests and status

    def force_full(self) -> None:
        """The next round sweeps every group (a commit failed, leadership moved...)."""
        self._force = True

    def groups(self, state: ClusterState, obs: Observations, now: float,
               policy: Policy) -> frozenset[str] | None:
        """The groups to decide this round; None means all of them (a full sweep)."""
        self._rounds += 1
        ttl = policy.ttl
        fresh = frozenset(n for n, seen in obs.nodes.items()
                          if now - seen.last_keepalive <= ttl)
        in_grace = now - obs.leader_since <= ttl
        full = (self._force or self._state is None or self._rounds % self._full_every == 0
                or state.paused != self._state.paused  # pause/resume: every group
                or state.failsafe_lease_ms != self._state.failsafe_lease_ms  # failsafe on/off
                or obs.leader_since != self._leader_since or in_grace != self._in_grace
                or in_grace or (obs.quorum_expired is None) != (self._quorum_expired is None)
                or obs.lb_down != self._lb_down)
        dirty: set[str] = set()
        if not full:
            assert self._state is not None
            dirty = self._changed(self._state, state, fresh, obs, now, policy)
        else:
            self.full_sweeps += 1
            self._rebuild(state)
        self._force = False
        self._state = state
        self._fresh = fresh
        self._versions = obs.versions
        self._quorum_expired = obs.quorum_expired
        self._lb_down = obs.lb_down
        self._leader_since = obs.leader_since
        self._in_grace = in_grace
        self._now = now
        return None if full else frozenset(dirty | self._active_active)

    def _rebuild(self, state: ClusterState) -> None:
        self._quarantined = {g.name for g in state.groups.values()
                             if any(m.quarantined for m in g.members.values())}
        self._active_active = {g.name for g in state.groups.values()
                               if g.mode == GroupMode.ACTIVE_ACTIVE}

    def _changed(self, old: ClusterState, new: ClusterState, fresh: frozenset[str],
                 obs: Observations, now: float, policy: Policy) -> set[str]:
        dirty: set[str] = set()
        if old is not new:
            for name, g in new.groups.items():
                if old.groups.get(name) is not g:
                    dirty.add(name)
                    self._quarantined.discard(name)
                    self._active_active.discard(name)
                    if any(m.quarantined for m in g.members.values()):
                        self._quarantined.add(name)
                    if g.mode == GroupMode.ACTIVE_ACTIVE:
                        self._active_active.add(name)
            for name in old.groups.keys() - new.groups.keys():
                self._quarantined.discard(name)
                self._active_active.discard(name)
        nodes = set(fresh ^ self._fresh)
        if old.nodes is not new.nodes:
            nodes.update(n for n, node in new.nodes.items() if old.nodes.get(n) is not node)
            nodes.update(old.nodes.keys() - new.nodes.keys())
        nodes.update(n for n, v in obs.versions.items() if self._versions.get(n) != v)
        if obs.quorum_expired is not None and self._quorum_expired is not None:
            nodes.update(obs.quorum_expired ^ self._quorum_expired)
        if nodes:
            index = node_index(new)
            for n in nodes:
                dirty.update(g for g, _ in index.get(n, ()))
        dirty.update(_awaiting_vouch(new, fresh, obs))
        # A quarantined member becomes eligible when its stabilization time is up.
        for name in self._quarantined:
            qg = new.groups.get(name)
            if qg is None or name in dirty:
                continue
            for m in qg.members.values():
                report = obs.report(m) if m.quarantined else None
                if report is not None and report.healthy_since is not None:
                    due = report.healthy_since + policy.stabilization
                    if self._now < due <= now:
                        dirty.add(name)
                        break
        return dirty


def _awaiting_vouch(state: ClusterState, fresh: frozenset[str],
                    obs: Observations) -> set[str]:
    """Groups where rule 9 may be holding back a lost active's replacement: failsafe
    on, the active's node not heard within a TTL (lost by the majority's word, or by
    ours with a single coordinator), and another member's node heard. Few by nature
    (a lost node's groups, promoted in one round), so reading them every round is
    cheap; a group going dark all at once is left to the fresh set."""
    if not state.failsafe_lease_ms:
        return set()
    silent = (obs.quorum_expired if obs.quorum_expired is not None
              else frozenset(state.nodes.keys() - fresh))
    out: set[str] = set()
    index = node_index(state)
    for n in silent:
        if n in fresh:
            continue
        for gname, mname in index.get(n, ()):
            g = state.groups.get(gname)
            if g is not None and g.active == mname and any(
                    m.node in fresh for m in g.members.values() if m.name != mname):
                out.add(gname)
    return out
