"""State-machine handlers for active-active pools: admit, exclude, LB acks, recoveries.

Pure and deterministic like the rest of `state_machine.apply` (which dispatches
here). The rules that must hold on every replica:

* the pool changes only by compare-and-set on `pool_version` (`expect_version`),
  and every change bumps it by one, so "the LB applied version v" means it
  applied every exclusion up to v;
* an exclusion opens a recovery record named by the new pool version (the
  failure); the record only moves forward (awaiting_lb -> requested ->
  succeeded | gave_up, or cancelled), so once it has succeeded no leader
  can request it again;
* a load balancer's applied version never goes backwards and never runs ahead
  of the pool (a lying or confused LB agent is refused).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import ClusterState, Group, GroupMode, Recovery
from vnfha.coordinator.state_rules import CommandRefused, Result, eligible, ok
from vnfha.coordinator.state_rules import event as _event
from vnfha.coordinator.state_rules import group as _group
from vnfha.coordinator.state_rules import member as _member
from vnfha.coordinator.state_rules import put_group as _put_group

# `state_machine` imports this module for its dispatch table (POOL_APPLY); the helpers
# both share live in `state_rules`, so neither imports the other.

OPEN = ("awaiting_lb", "requested")
CLOSED = ("succeeded", "gave_up", "cancelled")
# recovery_update status -> the statuses it may follow.
TRANSITIONS = {
    "requested": ("awaiting_lb",),
    "attempt": ("requested",),
    "failed": ("requested",),
    "succeeded": ("requested",),
    "gave_up": ("requested",),
    "cancelled": OPEN,
}


def in_service_eligible(state: ClusterState, group: Group, member: str) -> str | None:
    """Why `member` may not (re)join the pool, or None: the same committed facts that
    decide whether an active/standby member may become active."""
    return eligible(state, group.members[member])


def _aa_group(state: ClusterState, name: str) -> Group:
    g = _group(state, name)
    if g.mode != GroupMode.ACTIVE_ACTIVE:
        raise CommandRefused("conflict", f"group {name!r} is {g.mode.value}: pools apply to "
                             "active-active groups")
    return g


def _check_version(group: Group, cmd: Command) -> None:
    if cmd["expect_version"] != group.pool_version:
        raise CommandRefused("stale_version", f"group {group.name!r} pool is at version "
                             f"{group.pool_version}, command expected "
                             f"{cmd['expect_version']}")


def seed_pool(state: ClusterState, cmd: Command, name: str) -> ClusterState:
    """A group that has just become active-active puts its eligible members in service."""
    g = state.groups.get(name)
    if g is None or g.mode != GroupMode.ACTIVE_ACTIVE or g.pool or g.pool_version:
        return state
    pool = frozenset(m for m in g.members if in_service_eligible(state, g, m) is None)
    if not pool:
        return state
    state = _put_group(state, replace(g, pool=pool, pool_version=1))
    return _event(state, cmd, "pool_seeded", group=name, epoch=1,
                  reason="in service: " + ", ".join(sorted(pool)))


def _pool_admit(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _aa_group(state, cmd["group"])
    _check_version(group, cmd)
    member = _member(group, cmd["member"])
    if member.name in group.pool:
        return state, ok(changed=False, version=group.pool_version)
    why = in_service_eligible(state, group, member.name)
    if why is not None:
        raise CommandRefused("not_eligible", why)
    version = group.pool_version + 1
    recoveries = dict(group.recoveries)
    rec = recoveries.get(member.name)
    cancelled = rec if rec is not None and rec.status in OPEN else None
    if cancelled is not None:
        recoveries[member.name] = replace(cancelled, status="cancelled",
                                          message="back in service before recovery completed")
    state = _put_group(state, replace(group, pool=group.pool | {member.name},
                                      pool_version=version, recoveries=recoveries))
    state = _event(state, cmd, "pool_admitted", group=group.name, member=member.name,
                   node=member.node, epoch=version, reason=cmd["reason"])
    if cancelled is not None:
        state = _event(state, cmd, "recovery_cancelled", group=group.name, member=member.name,
                       node=member.node, epoch=cancelled.failure,
                       reason="member back in service before its recovery completed")
    return state, ok(changed=True, version=version)


def _pool_exclude(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _aa_group(state, cmd["group"])
    _check_version(group, cmd)
    member = _member(group, cmd["member"])
    if member.name not in group.pool:
        raise CommandRefused("conflict", f"member {member.name!r} of group {group.name!r} "
                             "is not in service")
    version = group.pool_version + 1
    recoveries = dict(group.recoveries)
    if cmd.get("recover", True):
        recoveries[member.name] = Recovery(member=member.name, node=member.node,
                                           failure=version, reason=cmd["reason"])
    state = _put_group(state, replace(group, pool=group.pool - {member.name},
                                      pool_version=version, recoveries=recoveries))
    state = _event(state, cmd, "excluded", group=group.name, member=member.name,
                   node=member.node, epoch=version, reason=cmd["reason"])
    return state, ok(changed=True, version=version)


def _pool_applied(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _aa_group(state, cmd["group"])
    node = cmd["node"]
    if node not in state.nodes:
        raise CommandRefused("unknown_node", f"unknown node {node!r}: a load-balancer agent must "
                             "register its node first")
    version = cmd["version"]
    if version < 0 or version > group.pool_version:
        raise CommandRefused("invalid", f"group {group.name!r}: applied version {version} is not a "
                             f"pool version (current {group.pool_version})")
    if version <= group.lb_applied.get(node, 0):
        return state, ok(changed=False)
    applied = {**group.lb_applied, node: version}
    state = _put_group(state, replace(group, lb_applied=applied))
    state = _event(state, cmd, "pool_applied", group=group.name, node=node, epoch=version,
                   reason=f"load balancer on {node} applied pool version {version}")
    return state, ok(changed=True)


def _recovery_update(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _aa_group(state, cmd["group"])
    member = cmd["member"]
    rec = group.recoveries.get(member)
    status = cmd["status"]
    if status not in TRANSITIONS:
        raise CommandRefused("invalid", f"recovery_update: unknown status {status!r}; known: "
                             + ", ".join(sorted(TRANSITIONS)))
    if rec is None or rec.failure != cmd["failure"]:
        raise CommandRefused("stale_version", f"group {group.name!r}: member {member!r} has no "
                             f"recovery for failure {cmd['failure']}")
    if rec.status not in TRANSITIONS[status]:
        raise CommandRefused("conflict", f"recovery of {member!r} (failure {rec.failure}) is "
                             f"{rec.status}; cannot record {status}")
    if "expect_attempts" in cmd and cmd["expect_attempts"] != rec.attempts:
        # Two proposers racing for the same attempt: only one may run the hook.
        raise CommandRefused("stale_version",
                             f"recovery of {member!r} is at attempt {rec.attempts}, "
                             f"command expected {cmd['expect_attempts']}")
    message = cmd.get("message", "")
    new: Recovery
    if status == "attempt":
        new = replace(rec, attempts=rec.attempts + 1, message="")  # "" = no result yet
        kind, reason = "recovery_attempt", f"attempt {rec.attempts + 1}: {rec.reason}"
    elif status == "failed":
        new = replace(rec, message=message or "failed")
        kind, reason = "recovery_failed", f"attempt {rec.attempts} failed: {message}"
    else:
        new = replace(rec, status=status, message=message or rec.message)
        kind = f"recovery_{status}"
        reason = message or rec.reason
    recoveries = {**group.recoveries, member: new}
    state = _put_group(state, replace(group, recoveries=recoveries))
    state = _event(state, cmd, kind, group=group.name, member=member, node=rec.node,
                   epoch=rec.failure, reason=reason)
    return state, ok(attempts=new.attempts)


POOL_APPLY: dict[str, Any] = {
    "pool_admit": _pool_admit,
    "pool_exclude": _pool_exclude,
    "pool_applied": _pool_applied,
    "recovery_update": _recovery_update,
}

