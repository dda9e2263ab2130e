"""Policy: (state, observations, now) -> commands. Pure: no clock, no I/O.

Runs on the Raft leader only. `Observations` is what the leader has seen of
agents since it became leader (keepalive arrival times and member reports).
The commands it returns are proposals: the state machine re-checks each one
(compare-and-set on the epoch), so a decision made on stale state is refused,
never applied.

Rules, per active-standby group:

1. Member health follows the agents' reports; a member whose node's lease has
   expired (nothing heard for one TTL, measured from arrival) is LOST.
2. A LOST active is replaced in one command (promote with `replace`): its
   agent's own, shorter lease has already run out, so it has stopped.
3. An active that is unhealthy, or on a node in maintenance, is demoted; the
   next active is promoted only after the old one has let go: its agent
   reported it has seen the demotion epoch and holds nothing, or its lease ran
   out. A planned switchover is a demotion with a chosen successor.
4. A group with no active elects the best eligible member: healthy, alive, not
   in maintenance, not quarantined (failed and not yet stable), highest
   priority, then name.
5. A quarantined member becomes eligible again after it has been reported
   healthy without a break for the stabilization time.
6. A new member (committed health UNKNOWN: never reported healthy since it was
   added) that reports unhealthy is starting, not failing: its health stays
   UNKNOWN, so it is not quarantined, and it is eligible from its first healthy
   report. UNKNOWN is never eligible, so this cannot elect an unhealthy member.
7. A member on a node whose agent stopped on purpose (drain_node: its roles
   were handed over first) is not LOST when that agent's lease runs out: no
   quarantine; the node is shown stopped until its agent has registered again
   and is heard (then node_started).
8. While the cluster is paused (`vnfha pause`) no rule changes a role on its own:
   a lost or unhealthy active stays active in the state, a group without an
   active stays without one, active-active pools keep their members. What an
   operator already asked for still completes: a demoted active's release is
   confirmed and the chosen successor (switchover, failover, drain) is promoted.
   Health and quarantine facts keep following the reports. A group being deleted
   (`group delete --force`) only has its release confirmed: nobody is promoted.
   Pause never weakens the lease: an agent that loses its majority's lease drops
   the VIP on its own, paused or not. Rule 10's re-confirmation still runs: it keeps
   the active, only under its agent's new lease.
9. Failsafe on (`vnfha failsafe on`, docs/design.md "Failsafe"): a lost active may
   still serve under failsafe leases granted by the other members, who grant only
   while they do not hear the coordinators either. So a lost active is acted on
   (replaced, or demoted) only when another member *vouches*: it is heard now, and
   has been heard without a break since before the active went silent, or for at
   least the rejoin grace (failsafe lease + TTL). A group none of whose members is
   heard is left alone (no LOST, no demotion): that is the coordinators' outage, not
   the group's, and acting on it would fail the group over when they come back.
   The rule applies only where failsafe could keep the active: another member, and a
   failsafe listener on every other member's node (otherwise it would only delay).
   Only ever a delay, never an extra promotion: safety does not depend on it (a
   promoted member that still honours a failsafe promise claims the VIP only after it).
10. Lease generations (docs/design.md §3): every promotion is stamped with the
   lease generation its agent reported last (its agent acts only under that
   generation), a member is promoted once its agent reports a running lease (the
   choice of member is unchanged: the promotion waits for that report), and
   an active whose agent reports a new generation while holding nothing (its lease
   lapsed, or it restarted) is promoted again: same member, new epoch, new stamp. One
   that still holds the current epoch (failsafe leases bridged the lapse) is
   re-stamped at the same epoch; the lost-active promotion and the demotions carry
   the stamp they were decided on (`expect_generation`), so the state machine
   serialises them with the re-stamp as the epoch does otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import Command, Stamp
from vnfha.coordinator.decide_pool import pool_rules
from vnfha.coordinator.model import ClusterState, Group, GroupMode, Health, Member
from vnfha.coordinator.observations import MemberReport, NodeSeen, Observations, Policy
from vnfha.coordinator.state_machine import apply
from vnfha.coordinator.state_rules import eligible

#: where a rule hands the command it decided on
Emit = Callable[[Command], None]

__all__ = ["MemberReport", "NodeSeen", "Observations", "Policy", "decide", "observed_health"]


def decide(state: ClusterState, obs: Observations, now: float, policy: Policy,
           groups: Iterable[str] | None = None, *, ids: Callable[[], str],
           at: float) -> list[Command]:
    """The commands that move `state` toward what the observations call for.

    `ids` gives each command's request id and `at` is the proposer's wall clock (event
    timestamps): the caller's, so equal inputs give equal commands. The controller
    passes `commands.new_rid` and `time.time()`; ids must be unique per proposal, or
    the state machine answers a new command with an old one's result.

    `groups`: decide only these (None: all). Every rule reads and changes one group
    (its members, their nodes' observations and committed facts), so the commands for
    a subset are exactly the full call's commands for those groups; decide_dirty.py
    picks the groups whose inputs changed."""
    out: list[Command] = []
    scratch = state

    def st() -> Stamp:
        return {"rid": ids(), "at": at}

    def emit(cmd: Command) -> None:
        # Apply to a scratch copy so later rules see the effect of earlier ones;
        # a command the state machine would refuse is not proposed.
        nonlocal scratch
        new, result = apply(scratch, cmd)
        if result["ok"]:
            scratch = new
            out.append(cmd)

    for node in sorted(state.nodes.values(), key=lambda n: n.name):
        if node.stopped and node.rejoining and obs.fresh(node.name, now, policy.ttl):
            emit(C.node_started(node.name, **st()))  # rule 7: running again
    names = sorted(state.groups) if groups is None else sorted(
        g for g in set(groups) if g in state.groups)
    for gname in names:
        _sync_health(scratch, scratch.groups[gname], obs, now, policy, emit, st)
        # Before the role rules, so a member that has just become stable can be
        # elected in the same call: one call reaches the fixed point (idempotent).
        _stabilize(scratch, scratch.groups[gname], obs, now, policy, emit, st)
        if scratch.groups[gname].mode == GroupMode.ACTIVE_STANDBY:
            if scratch.paused or scratch.groups[gname].deleting:
                _finish_handover(lambda: scratch, gname, obs, now, policy, emit, st)  # rule 8
            else:
                _roles(lambda: scratch, gname, obs, now, policy, emit, st)
        elif scratch.paused:
            continue  # rule 8: the pool keeps its members
        elif scratch.groups[gname].mode == GroupMode.ACTIVE_ACTIVE:
            pool_rules(lambda: scratch, gname, obs, now, policy, emit, st)  # decide_pool.py
    return out


def observed_health(member: Member, obs: Observations, now: float, policy: Policy) -> Health:
    if not obs.node_alive(member.node, now, policy.ttl):
        return Health.LOST
    report = obs.report(member)
    if report is None or not obs.fresh(member.node, now, policy.ttl):
        # Not lost, but our copy of its report is old (a grace period, or alive by
        # other coordinators' word only): keep what was committed.
        return member.health
    # LOST means "its lease expired": only the coordinators' clocks can say that. A
    # live agent reporting LOST still holds its lease, so treat it as UNHEALTHY (demote,
    # wait for the release) rather than let it trigger a one-step replacement.
    return Health.UNHEALTHY if report.health == Health.LOST else report.health


def _alive_and_eligible(state: ClusterState, m: Member, obs: Observations, now: float,
                        policy: Policy) -> bool:
    """Only a member we have *just heard* report healthy may become active."""
    report = obs.report(m)
    return (eligible(state, m) is None and obs.fresh(m.node, now, policy.ttl)
            and report is not None and report.health == Health.HEALTHY)


def _leased(m: Member, obs: Observations) -> bool:
    """Rule 10: the member's agent reported a running lease (or predates generations).
    Until it has one, its promotion waits: stamped with a generation that ends before
    its lease starts, it would only wait for a re-confirmation, one commit more. The
    wait is one round trip (the agent reports as soon as it acquires a lease), and it
    does not change who is chosen: a member that cannot get a lease could not act
    on a promotion either."""
    report = obs.report(m)
    return report is not None and (report.generation == 0 or report.leased)


def _generation(m: Member, obs: Observations) -> int:
    """The stamp of a promotion of `m` (rule 10): its agent's latest reported generation."""
    report = obs.report(m)
    return 0 if report is None else report.generation


def _renewed(group: Group, active: Member, obs: Observations, now: float,
             policy: Policy) -> MemberReport | None:
    """Rule 10: the active's agent reports, with a running lease, a generation other than
    the promotion's stamp and holds nothing, or holds the current epoch only on
    failsafe leases (which end): it will never act on that promotion under its lease
    (the lease it was given to ended), so without a new one the group would have no
    holder.
    A stamp of 0 (a promotion from before generations) is acted on as before."""
    report = obs.report(active)
    if (report is None or not obs.fresh(active.node, now, policy.ttl)
            or report.generation == 0 or not report.leased
            or report.active_epoch not in (0, group.epoch)
            or group.active_generation in (0, report.generation)):
        return None
    return report


def _candidate(state: ClusterState, group: Group, obs: Observations, now: float, policy: Policy,
               prefer: str | None = None, exclude: str | None = None) -> Member | None:
    """The member to promote, or None: nobody eligible, or the one chosen has no lease
    yet (rule 10: wait for it, rather than take another or stamp a dead generation)."""
    m = _choose(state, group, obs, now, policy, prefer, exclude)
    return m if m is not None and _leased(m, obs) else None


def _choose(state: ClusterState, group: Group, obs: Observations, now: float, policy: Policy,
            prefer: str | None, exclude: str | None) -> Member | None:
    if prefer is not None:
        m = group.members.get(prefer)
        if m is not None and m.name != exclude and _alive_and_eligible(state, m, obs, now, policy):
            return m
    ok = [m for m in group.members.values()
          if m.name not in (exclude, group.releasing)
          and _alive_and_eligible(state, m, obs, now, policy)]
    return min(ok, key=lambda m: (-m.priority, m.name)) if ok else None


def _sync_health(state: ClusterState, group: Group, obs: Observations, now: float,
                 policy: Policy, emit: Emit, st: Callable[[], Stamp]) -> None:
    dark = _dark(state, group, obs, now, policy)
    for m in sorted(group.members.values(), key=lambda m: m.name):
        seen = observed_health(m, obs, now, policy)
        if seen == m.health:
            continue
        if seen == Health.LOST and dark:
            continue  # rule 9: the coordinators' outage, not the member's failure
        if m.health == Health.UNKNOWN and seen == Health.UNHEALTHY:
            # Rule 6: a check that has not passed yet at first start is no failure;
            # recording it would quarantine a member that was never healthy.
            continue
        if m.name == group.active and seen == Health.LOST:
            continue  # handled by the failover rule, in one command with the promotion
        if seen == Health.LOST and (node := state.nodes.get(m.node)) is not None \
                and node.stopped:
            continue  # rule 7: stopped on purpose, not failed
        reason = "lease expired" if seen == Health.LOST else "agent report"
        emit(C.set_health(group.name, m.name, seen, reason=reason, **st()))


def _roles(current: Callable[[], ClusterState], gname: str, obs: Observations, now: float,
           policy: Policy, emit: Emit, st: Callable[[], Stamp]) -> None:
    state: ClusterState = current()
    group = state.groups[gname]
    if group.active is not None:
        active = group.members[group.active]
        node = state.nodes.get(active.node)
        seen = observed_health(active, obs, now, policy)
        if seen == Health.LOST and not _vouched(state, group, active, obs, now, policy):
            return  # rule 9: it may be serving under failsafe leases; wait
        if seen == Health.LOST:
            target = _choose(state, group, obs, now, policy, None, active.name)
            if target is not None and not _leased(target, obs):
                return  # rule 10: its agent reports a lease within a round trip
            if target is not None:
                cmd = C.promote(gname, target.name, group.epoch,
                                reason=f"active {active.name} lost (lease expired)",
                                generation=_generation(target, obs),
                                expect_generation=group.active_generation, **st())
                cmd["replace"] = active.name
                emit(cmd)
                return
            emit(C.set_health(gname, active.name, Health.LOST, reason="lease expired",
                              **st()))
            emit(C.demote(gname, current().groups[gname].epoch, quarantine=True,
                          reason=f"active {active.name} lost and no eligible standby",
                          expect_generation=group.active_generation, **st()))
        elif seen == Health.UNHEALTHY:
            target = _choose(state, group, obs, now, policy, None, active.name)
            emit(C.demote(gname, group.epoch, quarantine=True,
                          handover_to=target.name if target else None,
                          reason=f"active {active.name} unhealthy",
                          expect_generation=group.active_generation, **st()))
        elif node is not None and node.maintenance:
            target = _choose(state, group, obs, now, policy, None, active.name)
            emit(C.demote(gname, group.epoch, handover_to=target.name if target else None,
                          reason=f"node {node.name} in maintenance",
                          expect_generation=group.active_generation, **st()))
        else:
            _reconfirm(state, gname, obs, now, policy, emit, st)
        state = current()
        group = state.groups[gname]

    if group.releasing is not None:
        old = group.members.get(group.releasing)
        if old is None or _released(old, group.releasing_epoch, obs, now, policy):
            why = "lease expired" if old is not None and not obs.node_alive(
                old.node, now, policy.ttl) else "agent confirmed"
            emit(C.confirm_release(gname, group.releasing, group.epoch, reason=why, **st()))
        state = current()
        group = state.groups[gname]

    if group.active is None and group.releasing is None:
        target = _candidate(state, group, obs, now, policy, prefer=group.handover_to)
        if target is not None:
            reason = ("planned switchover" if group.handover_to == target.name
                      else "no active member")
            emit(C.promote(gname, target.name, group.epoch, reason=reason,
                           generation=_generation(target, obs), **st()))


def _keepable(state: ClusterState, group: Group) -> bool:
    """Could the group's active be serving on failsafe leases (rule 9)? Only with failsafe
    on, an active, and another member on every other member's node with a failsafe
    listener: the active keeps its role only on a grant from every other member, asked
    at that endpoint. Otherwise rule 9 would only delay (a lone member's failure, a
    group on VMs without the listener, e.g. without mTLS), so it does not apply."""
    if not state.failsafe_lease_ms or group.active is None:
        return False
    others = [m for m in group.members.values() if m.name != group.active]
    return bool(others) and all(
        (n := state.nodes.get(m.node)) is not None and n.failsafe_endpoint for m in others)


def _dark(state: ClusterState, group: Group, obs: Observations, now: float,
          policy: Policy) -> bool:
    """Failsafe could keep the group's active and no member of it is heard now (rule 9)."""
    return _keepable(state, group) and not any(
        obs.fresh(m.node, now, policy.ttl) for m in group.members.values())


def _vouched(state: ClusterState, group: Group, active: Member, obs: Observations,
             now: float, policy: Policy) -> bool:
    """May the lost `active` be acted on (rule 9)? Always with failsafe off. With it on,
    only when another member vouches: it is heard now, was heard after the active's
    lease surely ended (its last keepalive + TTL: a group going dark all at once is not
    a failure of its active), and was heard without a break since before the active
    went silent (so it heard the coordinators while the active asked, and refused) or
    for the rejoin grace (any failsafe lease it granted before has ended)."""
    if not _keepable(state, group):
        return True
    grace = state.failsafe_lease_ms / 1000.0 + policy.ttl
    last = obs.nodes.get(active.node)
    for m in group.members.values():
        if m.name == active.name or not obs.fresh(m.node, now, policy.ttl):
            continue
        seen = obs.nodes[m.node]
        since = seen.heard_since
        if since is None:  # no run recorded (an old caller): as before rule 9
            return True
        if last is not None and seen.last_keepalive <= last.last_keepalive + policy.ttl:
            continue  # went dark with the active, within one TTL
        if now - since >= grace or (last is not None and since <= last.last_keepalive):
            return True
    return False


def _finish_handover(current: Callable[[], ClusterState], gname: str, obs: Observations,
                     now: float, policy: Policy, emit: Emit, st: Callable[[], Stamp]) -> None:
    """Rule 8: only what an operator asked for: confirm a release, then promote the
    successor chosen for it (and nobody else; nobody at all in a group being deleted)."""
    group = current().groups[gname]
    if group.active is not None and not group.deleting:
        _reconfirm(current(), gname, obs, now, policy, emit, st)
        group = current().groups[gname]
    if group.releasing is not None:
        old = group.members.get(group.releasing)
        if old is None or _released(old, group.releasing_epoch, obs, now, policy):
            why = "lease expired" if old is not None and not obs.node_alive(
                old.node, now, policy.ttl) else "agent confirmed"
            emit(C.confirm_release(gname, group.releasing, group.epoch, reason=why, **st()))
    state = current()
    group = state.groups[gname]
    if (group.active is None and group.releasing is None and group.handover_to
            and not group.deleting):
        m = group.members.get(group.handover_to)
        if m is not None and _alive_and_eligible(state, m, obs, now, policy) \
                and _leased(m, obs):
            emit(C.promote(gname, m.name, group.epoch, reason="planned switchover",
                           generation=_generation(m, obs), **st()))


def _reconfirm(state: ClusterState, gname: str, obs: Observations, now: float,
               policy: Policy, emit: Emit, st: Callable[[], Stamp]) -> None:
    """Rule 10: promote the active again under its agent's new lease generation."""
    group = state.groups[gname]
    if group.active is None:
        return
    active = group.members[group.active]
    report = _renewed(group, active, obs, now, policy)
    if report is None:
        return
    if report.active_epoch == group.epoch and group.epoch:
        # It still holds the role at this epoch (failsafe leases bridged the lapse of
        # its quorum lease): the same epoch, only the stamp changes; expect_generation
        # on every competing promote/demote serialises the two (docs/design.md
        # "Failsafe", "the same epoch after an outage").
        emit(C.promote(gname, active.name, group.epoch, reconfirm=True, keep_epoch=True,
                       reason="agent held the role through a coordinator outage "
                              "(failsafe): new lease, same epoch",
                       generation=report.generation, **st()))
        return
    emit(C.promote(gname, active.name, group.epoch, reconfirm=True,
                   reason="agent has a new lease (lapse or restart)",
                   generation=report.generation, **st()))


def _released(old: Member, demote_epoch: int, obs: Observations, now: float,
              policy: Policy) -> bool:
    if not obs.node_alive(old.node, now, policy.ttl):
        return True
    report = obs.report(old)
    return report is not None and report.seen_epoch >= demote_epoch and report.active_epoch == 0


def _stabilize(state: ClusterState, group: Group, obs: Observations, now: float,
               policy: Policy, emit: Emit, st: Callable[[], Stamp]) -> None:
    for m in sorted(group.members.values(), key=lambda m: m.name):
        if not m.quarantined or m.name in (group.active, group.releasing):
            continue
        report = obs.report(m)
        if (report is not None and report.health == Health.HEALTHY
                and obs.fresh(m.node, now, policy.ttl)
                and report.healthy_since is not None
                and now - report.healthy_since >= policy.stabilization):
            emit(C.clear_quarantine(group.name, m.name, **st()))
