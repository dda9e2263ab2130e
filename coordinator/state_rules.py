"""What every command handler of the state machine shares: the refusal, the result
shapes, and the small lookups and updates of groups, members and events.

Its own module so that the handler modules (`state_machine`, `pool_state`,
`state_data`) import it instead of each other: the dispatch table in
`state_machine` imports the handlers, and the handlers import only this.
Pure: functions of the state and the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import (
    MAX_EVENTS,
    ClusterState,
    Event,
    Group,
    Health,
    Member,
    evolve,
)

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


_EVENTS_SEEN: ContextVar[dict[int, Event] | None] = ContextVar("vnfha_events_seen",
                                                               default=None)


@contextmanager
def events_seen() -> Iterator[dict[int, Event]]:
    """Collect, by sequence number, every event the commands applied in this scope
    create. The state keeps only the last MAX_EVENTS, so a command creating more (a
    mass failover's batch: a promotion and a health change per group of a lost node)
    would push its own first events out before anyone logged them. The collection
    has every one. A refused command or batch item returns an earlier state and its
    sequence numbers are used again: the later event with a number wins, and numbers
    at or past the final state's `next_event_seq` were never committed (see
    `committed_events`)."""
    seen: dict[int, Event] = {}
    token = _EVENTS_SEEN.set(seen)
    try:
        yield seen
    finally:
        _EVENTS_SEEN.reset(token)


def committed_events(seen: dict[int, Event], before: ClusterState,
                     after: ClusterState) -> list[Event]:
    """The events of `seen` that the step from `before` to `after` committed, in order."""
    return [seen[q] for q in range(before.next_event_seq, after.next_event_seq) if q in seen]


def event(state: ClusterState, cmd: Command, kind: str, **fields: Any) -> ClusterState:
    ev = Event(seq=state.next_event_seq, at=float(cmd.get("at", 0.0)), kind=kind,
               actor=str(cmd.get("actor", "")), **fields)
    seen = _EVENTS_SEEN.get()
    if seen is not None:
        seen[ev.seq] = ev
    kept = state.events if len(state.events) < MAX_EVENTS else state.events[1 - MAX_EVENTS:]
    return evolve(state, events=(*kept, ev), next_event_seq=state.next_event_seq + 1)


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


class _OwnGroups:
    """The group map one command's application copied for itself (see `own_groups`)."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        self.groups: dict[str, Group] | None = None


_OWN_GROUPS: ContextVar[_OwnGroups | None] = ContextVar("vnfha_own_groups", default=None)


@contextmanager
def own_groups() -> Iterator[None]:
    """Let `put_group` copy the group map once per command instead of once per change.

    A command that touches many groups (a 1,000-item batch, a registration of 500
    members) used to copy the whole map for every group it changed: 25,000 copies of
    a 5,000-group map to replay a seeded journal, most of a Raft cold start (issue
    14). Inside this scope the first `put_group` copies the map of the state it was
    given and remembers that copy; later ones on a state holding that very copy
    write into it. Safe because every state holding the copy was made during this
    command's application: the state the command started from (the committed one,
    which readers hold) keeps its own map, a refused command returns that state, and
    once the scope ends nobody can write into the copy again, so the committed result
    is as immutable as before. The values are equal either way (same keys, same
    order, same Group objects); only the number of copies changes.
    """
    token = _OWN_GROUPS.set(_OwnGroups())
    try:
        yield
    finally:
        _OWN_GROUPS.reset(token)


def put_group(state: ClusterState, group: Group) -> ClusterState:
    own = _OWN_GROUPS.get()
    if own is not None and own.groups is not None and state.groups is own.groups:
        own.groups[group.name] = group  # this command's own copy (own_groups)
        return evolve(state)  # a new object: no cache of the old one is carried over
    groups = dict(state.groups)
    groups[group.name] = group
    if own is not None:
        own.groups = groups
    return evolve(state, groups=groups)
