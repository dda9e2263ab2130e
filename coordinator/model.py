"""The replicated state: nodes, groups, members, the active member and its epoch.

Everything here is plain data. A `ClusterState` is never mutated after it is
built: the state machine makes a new one per command, so readers (gRPC
threads, watch streams) can hold a reference without locks or copies.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar


class Health(StrEnum):
    """Committed health of a member, as the leader last saw it."""

    UNKNOWN = "unknown"  # registered, no report yet
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # its node is alive but a check (or the VNFC) says it is failing
    LOST = "lost"  # its node's lease expired: nobody has heard from it


class GroupMode(StrEnum):
    ACTIVE_STANDBY = "active-standby"
    ACTIVE_ACTIVE = "active-active"


class Role(StrEnum):
    ACTIVE = "active"
    STANDBY = "standby"


@dataclass(frozen=True)
class Node:
    name: str
    address: str = ""
    maintenance: bool = False
    # Its agent stopped on purpose (SIGTERM) after handing its roles over: not
    # eligible, and a lease that then runs out is not a failure (no LOST, no
    # quarantine). Cleared once its agent has registered again (`rejoining`) and
    # the leader hears its keepalives: a registration alone would leave a window in
    # which the long-expired lease reads as a failure.
    stopped: bool = False
    rejoining: bool = False
    # host:port of its agent's failsafe listener ("" if none): the other members of its
    # groups ask it for failsafe leases (docs/design.md, "Failsafe").
    failsafe_endpoint: str = ""


@dataclass(frozen=True)
class Member:
    name: str
    group: str
    node: str
    priority: int = 100
    health: Health = Health.UNKNOWN
    # Set when the member fails; cleared only after it has stayed healthy for the
    # stabilization time, so a flapping member is not re-elected.
    quarantined: bool = False


@dataclass(frozen=True)
class Recovery:
    """One failure of an active-active member and where its recovery request stands.

    `failure` is the pool version that excluded the member: it names the failure, so
    a recovery is requested once per failure whoever leads (coordinator/recovery.py).
    """

    member: str
    node: str
    failure: int
    reason: str
    # awaiting_lb -> requested -> succeeded | gave_up; cancelled if it rejoined first.
    status: str = "awaiting_lb"
    attempts: int = 0
    message: str = ""


@dataclass(frozen=True)
class Group:
    name: str
    mode: GroupMode = GroupMode.ACTIVE_STANDBY
    vip: str = ""
    # Fencing token: incremented on every change of `active` (including to none).
    epoch: int = 0
    active: str | None = None
    # A demoted active that has not yet been seen to let go. No member is
    # promoted while this is set: the old active must release first.
    releasing: str | None = None
    # The epoch at which `releasing` was demoted; its agent confirms the release
    # by reporting it has seen this epoch.
    releasing_epoch: int = 0
    # Planned switchover target, promoted once `releasing` has let go.
    handover_to: str | None = None
    # The lease generation of the active's agent the promotion was stamped with (its
    # node's latest keepalive then); 0: unstamped. The agent acts only on an
    # assignment stamped with its current generation (docs/design.md §3).
    active_generation: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    # Active-active groups only (coordinator/pool_state.py): the members in service
    # behind the load balancer, and a version bumped on every change of it.
    pool: frozenset[str] = frozenset()
    pool_version: int = 0
    # Per node of a load-balancer agent: the highest pool version it has applied.
    lb_applied: dict[str, int] = field(default_factory=dict)
    # Per member: its latest failure's recovery (exclude first, then recover).
    recoveries: dict[str, Recovery] = field(default_factory=dict)
    # `vnfha group delete --force` demoted its active and waits for the release:
    # nobody is promoted in it again (decide rule 8); deleted once released.
    deleting: bool = False

    def role_of(self, member: str) -> Role:
        return Role.ACTIVE if self.active == member else Role.STANDBY


@dataclass(frozen=True)
class Event:
    """One line of history, committed with the change it describes."""

    seq: int
    at: float  # wall-clock seconds from the proposer (information only, never used for decisions)
    kind: str
    group: str = ""
    member: str = ""
    node: str = ""
    epoch: int = 0
    reason: str = ""
    #: who asked for the change (a vnfha identity URI, `local`, `insecure`); "" when the
    #: coordinators decided it themselves (failover, health)
    actor: str = ""


MAX_EVENTS = 1000


@dataclass(frozen=True)
class Checkpoint:
    """A group's checkpoint section (coordinator/state_data.py): opaque bytes from the
    active, written only at the group's current epoch."""

    epoch: int
    version: int  # +1 on every accepted write in the group
    data: bytes
    sync_sequence: int = 0  # the peer-sync sequence it covers (the writer's choice)
    at: float = 0.0  # proposer's wall clock, information only


@dataclass(frozen=True)
class QueueMessage:
    offset: int
    epoch: int
    data: bytes
    at: float = 0.0


@dataclass(frozen=True)
class GroupQueue:
    """A group's replicated queue: the retained tail and the next offset."""

    messages: tuple[QueueMessage, ...] = ()
    next_offset: int = 0
    size: int = 0  # bytes of data retained

    @property
    def first_offset(self) -> int:
        return self.messages[0].offset if self.messages else self.next_offset


@dataclass(frozen=True)
class ClusterState:
    revision: int = 0  # number of state-changing commands applied
    nodes: dict[str, Node] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    next_event_seq: int = 1
    # State-sync data (coordinator/state_data.py): never part of role decisions.
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    queues: dict[str, GroupQueue] = field(default_factory=dict)
    # `vnfha pause`: no automatic role change (decide rule 8). Agents' leases still
    # apply: a paused cluster never keeps a VIP on a VM that lost its majority.
    paused: bool = False
    # Nodes removed with `vnfha node remove`: their registration is refused (an agent
    # still running there must not add them back) until `vnfha node readmit`.
    removed_nodes: frozenset[str] = frozenset()
    # Failsafe mode (`vnfha failsafe on|off`): the failsafe lease in ms, 0 = off. The
    # bare value defaults to off (pure tests build states from it); a real cluster
    # starts from `new_cluster_state()`, with failsafe on.
    failsafe_lease_ms: int = 0

    def member(self, group: str, member: str) -> Member | None:
        g = self.groups.get(group)
        return None if g is None else g.members.get(member)

    def members_on(self, node: str) -> list[Member]:
        """The members `node` hosts, by (group, member) name: read from the state's node
        index (`node_index`), not a scan of every member."""
        return [self.groups[g].members[m] for g, m in sorted(node_index(self).get(node, ()))]


#: The failsafe lease a new cluster starts with (failsafe on by default, docs/design.md
#: "Failsafe"). Also what a stored state without the field reads as: see state_from_dict.
DEFAULT_FAILSAFE_LEASE_MS = 1000


def new_cluster_state() -> ClusterState:
    """The state every store starts a new cluster from: empty, failsafe on."""
    return ClusterState(failsafe_lease_ms=DEFAULT_FAILSAFE_LEASE_MS)


# --- the node index: which members each node hosts --------------------------------------------
#
# Watches ask "what does node X host?" on every commit, for every node; scanning every
# member of every group for each question made WatchAssignments most of a committing
# leader's CPU at 1,000 groups (issue 14). The index is derived data, cached on the
# (immutable) state object it describes, outside the dataclass fields: it takes no part
# in equality, snapshots or the wire. `advance_index` derives a state's index from its
# predecessor's in time proportional to the groups a commit replaced.

NodeIndex = dict[str, frozenset[tuple[str, str]]]  # node -> {(group, member)}
_INDEX_ATTR = "_node_index"


def node_index(state: ClusterState) -> NodeIndex:
    """node -> the (group, member) pairs it hosts; built once per state, then cached."""
    idx = state.__dict__.get(_INDEX_ATTR)
    if idx is None:
        pairs: dict[str, set[tuple[str, str]]] = {}
        for g in state.groups.values():
            for m in g.members.values():
                pairs.setdefault(m.node, set()).add((g.name, m.name))
        idx = {n: frozenset(p) for n, p in pairs.items()}
        object.__setattr__(state, _INDEX_ATTR, idx)  # a cache, not a field (frozen)
    return idx


def _assignment_facts(g: Group) -> tuple[object, ...]:
    """What a member's assignment says about its group besides the member itself."""
    return (g.active, g.epoch, g.vip, g.mode)


def advance_index(old: ClusterState, new: ClusterState) -> frozenset[str]:
    """The nodes whose assignments (role, epoch, VIP, mode of each member they host, and
    which members those are) differ between `old` and `new`; caches `new`'s index,
    derived from `old`'s. Commands replace only the groups they change (the state is
    immutable), so an identity check per group finds every change; the cost is one
    pointer compare per group plus the members of the changed groups."""
    old_idx = node_index(old)
    changed = [name for name, g in new.groups.items() if old.groups.get(name) is not g]
    changed += [name for name in old.groups if name not in new.groups]
    if not changed:
        if new.__dict__.get(_INDEX_ATTR) is None:
            object.__setattr__(new, _INDEX_ATTR, old_idx)
        return frozenset()
    affected: set[str] = set()
    delta: dict[str, tuple[set[tuple[str, str]], set[tuple[str, str]]]] = {}
    for name in changed:
        og, ng = old.groups.get(name), new.groups.get(name)
        before = {(m.node, m.name) for m in og.members.values()} if og else set()
        after = {(m.node, m.name) for m in ng.members.values()} if ng else set()
        if og is None or ng is None or _assignment_facts(og) != _assignment_facts(ng):
            affected.update(node for node, _ in before | after)
        for node, member in before - after:
            delta.setdefault(node, (set(), set()))[0].add((name, member))
            affected.add(node)
        for node, member in after - before:
            delta.setdefault(node, (set(), set()))[1].add((name, member))
            affected.add(node)
    if new.__dict__.get(_INDEX_ATTR) is None:
        idx = dict(old_idx)
        for node, (gone, added) in delta.items():
            pairs = (idx.get(node, frozenset()) - gone) | added
            if pairs:
                idx[node] = frozenset(pairs)
            else:
                idx.pop(node, None)
        object.__setattr__(new, _INDEX_ATTR, idx)
    return frozenset(affected)


# --- plain-data conversion (snapshots, wire) -------------------------------------------------


#: name -> (the Group a dict was made from, that dict): see `state_to_dict`
GroupDictCache = dict[str, tuple[Group, dict[str, Any]]]


def state_to_dict(state: ClusterState, cache: GroupDictCache | None = None) -> dict[str, Any]:
    """Plain data of `state`. With `cache` (kept by the caller between calls), a group
    whose Group object is the one the cached dict was made from reuses that dict: a
    Raft snapshot then rebuilds only the groups changed since the previous one (the
    objects are immutable, so the same object means the same data). The result then
    shares those dicts with the cache: read it, never modify it."""
    return {
        "revision": state.revision,
        "next_event_seq": state.next_event_seq,
        "nodes": {n.name: {"address": n.address, "maintenance": n.maintenance,
                           **({"stopped": True} if n.stopped else {}),
                           **({"rejoining": True} if n.rejoining else {}),
                           **({"failsafe_endpoint": n.failsafe_endpoint}
                              if n.failsafe_endpoint else {})}
                  for n in state.nodes.values()},
        "groups": _groups_to_dict(state.groups, cache),
        "events": [_event_to_dict(e) for e in state.events],
        "checkpoints": {g: checkpoint_to_dict(c) for g, c in state.checkpoints.items()},
        "queues": {g: _queue_to_dict(q) for g, q in state.queues.items()},
        **({"paused": True} if state.paused else {}),
        **({"removed_nodes": sorted(state.removed_nodes)} if state.removed_nodes else {}),
        # Always written, 0 (off) included: a state without it reads as the default.
        "failsafe_lease_ms": state.failsafe_lease_ms,
    }


def _groups_to_dict(groups: dict[str, Group],
                    cache: GroupDictCache | None) -> dict[str, dict[str, Any]]:
    if cache is None:
        return {g.name: _group_to_dict(g) for g in groups.values()}
    out: dict[str, dict[str, Any]] = {}
    fresh: GroupDictCache = {}
    for name, g in groups.items():
        hit = cache.get(name)
        d = hit[1] if hit is not None and hit[0] is g else _group_to_dict(g)
        out[name] = d
        fresh[name] = (g, d)
    cache.clear()  # deleted groups go; the cache holds each Group, so no id is reused
    cache.update(fresh)
    return out


def checkpoint_to_dict(c: Checkpoint) -> dict[str, Any]:
    return {"epoch": c.epoch, "version": c.version, "data": b64encode(c.data).decode(),
            "sync_sequence": c.sync_sequence, "at": c.at}


def message_to_dict(m: QueueMessage) -> dict[str, Any]:
    return {"offset": m.offset, "epoch": m.epoch, "at": m.at, "data": b64encode(m.data).decode()}


def message_from_dict(d: dict[str, Any]) -> QueueMessage:
    return QueueMessage(offset=d["offset"], epoch=d["epoch"], at=d["at"],
                        data=b64decode(d["data"]))


def _queue_to_dict(q: GroupQueue) -> dict[str, Any]:
    return {"next_offset": q.next_offset, "messages": [message_to_dict(m) for m in q.messages]}


def checkpoint_from_dict(d: dict[str, Any]) -> Checkpoint:
    return Checkpoint(epoch=d["epoch"], version=d["version"], data=b64decode(d["data"]),
                      sync_sequence=d["sync_sequence"], at=d["at"])


def _queue_from_dict(d: dict[str, Any]) -> GroupQueue:
    msgs = tuple(message_from_dict(m) for m in d["messages"])
    return GroupQueue(messages=msgs, next_offset=d["next_offset"],
                      size=sum(len(m.data) for m in msgs))


def _group_to_dict(g: Group) -> dict[str, Any]:
    return {
        "mode": g.mode.value, "vip": g.vip, "epoch": g.epoch, "active": g.active,
        "releasing": g.releasing, "releasing_epoch": g.releasing_epoch,
        "handover_to": g.handover_to,
        "members": {m.name: {"node": m.node, "priority": m.priority, "health": m.health.value,
                             "quarantined": m.quarantined} for m in g.members.values()},
        "pool": sorted(g.pool), "pool_version": g.pool_version,
        "lb_applied": dict(g.lb_applied),
        "recoveries": {r.member: {"node": r.node, "failure": r.failure, "reason": r.reason,
                                  "status": r.status, "attempts": r.attempts,
                                  "message": r.message} for r in g.recoveries.values()},
        **({"deleting": True} if g.deleting else {}),
        **({"active_generation": g.active_generation} if g.active_generation else {}),
    }


def _event_to_dict(e: Event) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "kind": e.kind, "group": e.group, "member": e.member,
            "node": e.node, "epoch": e.epoch, "reason": e.reason}


def state_from_dict(d: dict[str, Any]) -> ClusterState:
    groups = {}
    for name, g in d.get("groups", {}).items():
        members = {mn: Member(name=mn, group=name, node=m["node"], priority=m["priority"],
                              health=Health(m["health"]), quarantined=m["quarantined"])
                   for mn, m in g["members"].items()}
        groups[name] = Group(name=name, mode=GroupMode(g["mode"]), vip=g["vip"], epoch=g["epoch"],
                             active=g["active"], releasing=g["releasing"],
                             releasing_epoch=g["releasing_epoch"], handover_to=g["handover_to"],
                             members=members, pool=frozenset(g.get("pool", ())),
                             pool_version=g.get("pool_version", 0),
                             lb_applied=dict(g.get("lb_applied", {})),
                             recoveries={mn: Recovery(member=mn, **r)
                                         for mn, r in g.get("recoveries", {}).items()},
                             deleting=bool(g.get("deleting", False)),
                             active_generation=int(g.get("active_generation", 0)))
    return ClusterState(
        revision=d.get("revision", 0),
        next_event_seq=d.get("next_event_seq", 1),
        nodes={n: Node(name=n, address=v["address"], maintenance=v["maintenance"],
                       stopped=v.get("stopped", False),
                       rejoining=v.get("rejoining", False),
                       failsafe_endpoint=v.get("failsafe_endpoint", ""))
               for n, v in d.get("nodes", {}).items()},
        groups=groups,
        events=tuple(Event(**e) for e in d.get("events", [])),
        checkpoints={g: checkpoint_from_dict(c) for g, c in d.get("checkpoints", {}).items()},
        queues={g: _queue_from_dict(q) for g, q in d.get("queues", {}).items()},
        paused=bool(d.get("paused", False)),
        removed_nodes=frozenset(d.get("removed_nodes", ())),
        # Absent: written before the field was always stored (an earlier release wrote
        # it only while on). It reads as a new cluster's default, so that a replica
        # restored from such a snapshot and one replaying the log from an empty state
        # agree (docs/design.md "Failsafe", "Upgrading").
        failsafe_lease_ms=int(d.get("failsafe_lease_ms", DEFAULT_FAILSAFE_LEASE_MS)),
    )


def with_member(group: Group, member: Member) -> Group:
    members = dict(group.members)
    members[member.name] = member
    return evolve(group, members=members)


_T = TypeVar("_T", ClusterState, Group)
_FIELD_NAMES: dict[type, tuple[tuple[str, ...], frozenset[str]]] = {}


def evolve(obj: _T, **changes: Any) -> _T:
    """`dataclasses.replace` for a ClusterState or Group, without running `__init__`.

    The state machine makes a new state (and usually a new group) several times per
    command; `replace` goes through the generated frozen `__init__` field by field and
    was the largest single cost of replaying a journal (issue 14: a 1,000-item batch
    makes ~4,000 of them). These classes have no `__post_init__` and no derived
    fields, so copying the declared fields and setting the changed ones gives an equal
    object. Only declared fields are copied (a cache such as the node index stays with
    the object it describes), and an unknown field name is refused as `replace` does.
    """
    cls = type(obj)
    known = _FIELD_NAMES.get(cls)
    if known is None:
        ordered = tuple(f.name for f in fields(cls))
        known = _FIELD_NAMES[cls] = (ordered, frozenset(ordered))
    names, allowed = known
    if not changes.keys() <= allowed:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(set(changes) - allowed)}")
    old = obj.__dict__
    values = {name: old[name] for name in names}
    values.update(changes)
    new = object.__new__(cls)
    new.__dict__.update(values)
    return new
