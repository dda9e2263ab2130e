"""What every command handler of the state machine shares: the refusal, the result
shapes, and the small lookups and updates of groups, members and events.

Its own module so that the handler modules (`state_machine`, `pool_state`,
`state_data`) import it instead of each other: the dispatch table in
`state_machine` imports the handlers, and the handlers import only this.
Pure: functions of the state and the command.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import MAX_EVENTS, ClusterState, Event, Group, Health, Member

Result = dict[str, Any]


class CommandRefused(Exception):
    """A command that is well-formed but not allowed in the current state."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ok(**extra: Any) -> Result:
    return {"ok": True, **extra}


def refused(code: str, message: str) -> Result:
    return {"ok": False, "error": code, "message": message}


def eligible(state: ClusterState, member: Member) -> str | None:
    """Why `member` may not become active, or None if it may (committed facts only)."""
    node = state.nodes.get(member.node)
    if node is None:
        return f"node {member.node!r} is not registered"
    if node.maintenance:
        return f"node {member.node!r} is in maintenance"
    if node.stopped:
        return f"node {member.node!r} is stopped (its agent was stopped)"
    if member.health != Health.HEALTHY:
        return f"member {member.name!r} is {member.health.value}"
    if member.quarantined:
        return f"member {member.name!r} failed recently and is not yet stable"
    return None


def best_candidate(state: ClusterState, group: Group, exclude: str | None = None) -> Member | None:
    """Highest priority eligible member; name breaks ties so every node picks the same."""
    candidates = [m for m in group.members.values()
                  if m.name != exclude and m.name != group.releasing
                  and eligible(state, m) is None]
    if not candidates:
        return None
    return min(candidates, key=lambda m: (-m.priority, m.name))


def event(state: ClusterState, cmd: Command, kind: str, **fields: Any) -> ClusterState:
    ev = Event(seq=state.next_event_seq, at=float(cmd.get("at", 0.0)), kind=kind,
               actor=str(cmd.get("actor", "")), **fields)
    events = (*state.events, ev)[-MAX_EVENTS:]
    return replace(state, events=events, next_event_seq=state.next_event_seq + 1)


def group(state: ClusterState, name: str) -> Group:
    g = state.groups.get(name)
    if g is None:
        raise CommandRefused("unknown_group", f"unknown group {name!r}")
    return g


def member(group: Group, name: str) -> Member:
    m = group.members.get(name)
    if m is None:
        raise CommandRefused("unknown_member", f"group {group.name!r} has no member {name!r}")
    return m


def check_epoch(group: Group, cmd: Command) -> None:
    """The compare-and-set every role change is serialised by: the epoch, and (when the
    command names it) the active's lease-generation stamp, which a same-epoch re-stamp
    changes without moving the epoch (docs/design.md "Failsafe")."""
    if cmd["expect_epoch"] != group.epoch:
        raise CommandRefused("stale_epoch", f"group {group.name!r} is at epoch {group.epoch}, "
                             f"command expected {cmd['expect_epoch']}")
    if "expect_generation" in cmd and cmd["expect_generation"] != group.active_generation:
        raise CommandRefused("stale_epoch", f"group {group.name!r}: its active was re-stamped "
                             "under a new lease generation since this was decided")


def put_group(state: ClusterState, group: Group) -> ClusterState:
    groups = dict(state.groups)
    groups[group.name] = group
    return replace(state, groups=groups)
