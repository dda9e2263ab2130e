"""Commands: the only way the replicated state changes.

A command is a plain dict on the wire (and in the Raft log): `op`, a request id
`rid` (so a retried command applies once), `at` (the proposer's wall clock, for
event timestamps only), `v` (the rules it was built under, see SCHEMA) and its fields.
Builders here keep the field names in one place and take `rid` and `at` as
parameters (see Stamp); `validate_command` rejects
malformed dicts before they reach a store, and again in `apply` on every replica.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, TypedDict

from vnfha.coordinator import names
from vnfha.coordinator.model import GroupMode, Health

Command = dict[str, Any]


class Stamp(TypedDict):
    """The two fields of a command its proposer chooses, not its rules: the request id
    (unique per proposal: a retry reuses it) and the proposer's wall clock (event
    timestamps only). Builders take them as `rid` and `at`; with none given they take
    a fresh uuid and `time.time()`, which is for edge callers only: `decide` receives
    its stamps from its caller, so its output is a function of its inputs."""

    rid: str
    at: float

OPS: dict[str, dict[str, type | tuple[type, ...]]] = {
    # op: required fields and their types
    "apply_groups": {"groups": list},
    "register_node": {"node": str, "address": str, "members": list},
    "set_health": {"group": str, "member": str, "health": str},
    "promote": {"group": str, "member": str, "expect_epoch": int, "reason": str},
    "demote": {"group": str, "expect_epoch": int, "reason": str},
    "confirm_release": {"group": str, "member": str, "expect_epoch": int, "reason": str},
    "clear_quarantine": {"group": str, "member": str},
    "switchover": {"group": str, "to": (str, type(None))},
    "set_maintenance": {"node": str, "on": bool},
    "drain_node": {"node": str},
    "node_started": {"node": str},
    # Lifecycle (docs/cli.md): operator commands, each answering its own caller.
    "set_paused": {"on": bool},
    # Failsafe mode (docs/design.md, "Failsafe"): its lease in ms, 0 = off.
    "set_failsafe": {"lease_ms": int},
    "failover": {"group": str, "to": str, "force": bool},
    "remove_node": {"node": str, "force": bool},
    "delete_group": {"group": str, "force": bool},
    "readmit_node": {"node": str},
    # State-sync data (coordinator/state_data.py). `data` is base64; the limits travel
    # in the command so every replica enforces the proposer's configured values.
    "publish": {"group": str, "epoch": int, "data": str, "max_message_bytes": int,
                "retain_messages": int, "retain_bytes": int},
    "put_checkpoint": {"group": str, "epoch": int, "data": str, "sync_sequence": int,
                       "max_bytes": int},
    # Active-active pools (coordinator/pool_state.py).
    "pool_admit": {"group": str, "member": str, "expect_version": int, "reason": str},
    "pool_exclude": {"group": str, "member": str, "expect_version": int, "reason": str},
    "pool_applied": {"group": str, "node": str, "version": int},
    "recovery_update": {"group": str, "member": str, "failure": int, "status": str},
    # One decide round in one replicated entry (see `batch` below).
    "batch": {"items": list},
}

# Optional fields: absent is fine; when present they must have this type. The state
# machine (and `decide`, which reads committed values back) rely on these types, and
# a malformed value must be refused here, not raise inside `apply` on every replica.
OPTIONAL: dict[str, dict[str, type | tuple[type, ...]]] = {
    "promote": {"replace": (str, type(None)), "generation": int, "reconfirm": bool,
                "keep_epoch": bool, "expect_generation": int},
    "demote": {"handover_to": (str, type(None)), "quarantine": bool, "expect_generation": int},
    "pool_exclude": {"recover": bool},
    "recovery_update": {"message": str, "expect_attempts": int},
    "register_node": {"remove_undeclared": bool, "failsafe_endpoint": str},
    "apply_groups": {"seed_only": bool},
    "set_health": {"reason": str},
}
COMMON_OPTIONAL: dict[str, type | tuple[type, ...]] = {"at": (int, float), "v": int}

#: The validation rules a command is built under. Commands already in Raft logs and
#: etcd histories carry no `v` (rules 1): they are checked by the rules they were
#: accepted under, so a replica replaying an old log decides exactly as the replicas
#: that applied it first. Rules 2 (every builder here) add: names of *new* objects
#: follow `names.NAME_RE`, VIPs and node addresses parse, priorities, request ids,
#: free text and list lengths are bounded, and `register_node` removes members only
#: when asked to (`remove_undeclared`). Names a command only refers to (an existing
#: group, member or node) are checked for type only: an object named under rules 1
#: stays operable (the leader can still fail it over), and an unknown one is refused
#: as unknown. The gRPC methods check every name they receive against the rule.
SCHEMA = 2

#: Sizes a rules-2 command may not exceed (the servicers check them first and answer
#: RESOURCE_EXHAUSTED; here they hold for anything that reaches the log).
MAX_MEMBERS_PER_NODE = 1024
MAX_GROUPS_PER_APPLY = 1024
#: Items one `batch` may carry: a lost node's whole set of promotions fits in one entry
#: (MAX_MEMBERS_PER_NODE), and no entry grows without bound (the controller splits a
#: longer round into several batches, in order).
MAX_BATCH_ITEMS = 1024
#: What a batch may carry: the leader's role decisions (what `decide` emits). Not data
#: writes (they have their own fencing and no place in a decide round), not client
#: commands (each answers its own caller), not batches.
BATCH_OPS = frozenset({"set_health", "promote", "demote", "confirm_release",
                       "clear_quarantine", "pool_admit", "pool_exclude", "recovery_update",
                       "node_started"})
_TEXT_FIELDS = ("reason", "message")
#: Fields the proposer adds from its own config or clock: not part of what a client
#: asked for, so a retry through another coordinator is still the same request.
_CONTEXT_FIELDS = frozenset({"rid", "at", "v", "max_message_bytes", "retain_messages",
                             "retain_bytes", "max_bytes"})


class InvalidCommand(ValueError):
    """The command is malformed: nothing was applied."""


def new_rid() -> str:
    return uuid.uuid4().hex


def stamp() -> Stamp:
    """A fresh request id and the wall clock now: what a proposer at the edge (the
    controller, a servicer) gives the builders. `decide` never calls this itself."""
    return {"rid": new_rid(), "at": time.time()}


def _cmd(op: str, rid: str | None, at: float | None, **fields: Any) -> Command:
    # Free text is often built from what others said (an LB check's detail, a hook's
    # stderr): cut here, so a long one can never get a leader's decision refused.
    for name in _TEXT_FIELDS:
        text = fields.get(name)
        if isinstance(text, str) and len(text) > names.TEXT_MAX:
            fields[name] = text[:names.TEXT_MAX - 3] + "..."
    return {"op": op, "rid": rid or new_rid(), "at": time.time() if at is None else at,
            "v": SCHEMA, **fields}


def digest(cmd: Command) -> str:
    """What a command requests, as a short hash: the op and its fields, without the
    request id, the proposer's clock and limits. A request id is bound to this, so a
    reused id with a different command is refused instead of answered with another
    command's result (state_machine.StateMachine.apply)."""
    body = {k: v for k, v in cmd.items() if k not in _CONTEXT_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def apply_groups(groups: list[dict[str, Any]], rid: str | None = None,
                 seed_only: bool = False, at: float | None = None) -> Command:
    """Create or update the named groups. With `seed_only` (the groups a coordinator's
    config file declares) a group that already exists is left exactly as it is: the
    file seeds groups, run-time changes (`vnfha group apply`) own them afterwards, so a
    restart never reverts them and coordinators whose files differ cannot overwrite
    each other. The result lists the groups whose file definition was not applied."""
    if seed_only:
        return _cmd("apply_groups", rid, at, groups=groups, seed_only=True)
    return _cmd("apply_groups", rid, at, groups=groups)


def register_node(node: str, address: str, members: list[dict[str, Any]],
                  rid: str | None = None, remove_undeclared: bool = False,
                  at: float | None = None, failsafe_endpoint: str = "") -> Command:
    extra = {"failsafe_endpoint": failsafe_endpoint} if failsafe_endpoint else {}
    return _cmd("register_node", rid, at, node=node, address=address, members=members,
                remove_undeclared=remove_undeclared, **extra)


def set_health(group: str, member: str, health: Health, reason: str = "",
               rid: str | None = None, at: float | None = None) -> Command:
    return _cmd("set_health", rid, at, group=group, member=member, health=health.value,
                reason=reason)


def promote(group: str, member: str, expect_epoch: int, reason: str,
            rid: str | None = None, at: float | None = None, generation: int = 0,
            reconfirm: bool = False, keep_epoch: bool = False,
            expect_generation: int | None = None) -> Command:
    """`generation`: the lease generation of the member's agent to stamp the promotion
    with (0: none known). `reconfirm`: the member is the active already and gets a new
    epoch under its agent's new lease generation (docs/design.md §3); with `keep_epoch`
    only the stamp changes (its agent held the role without a break, on failsafe
    leases: docs/design.md "Failsafe"). `expect_generation`: the active's stamp the
    command was decided on; refused if it changed since (a same-epoch re-stamp)."""
    return _cmd("promote", rid, at, group=group, member=member, expect_epoch=expect_epoch,
                reason=reason, **({"generation": generation} if generation else {}),
                **({"reconfirm": True} if reconfirm else {}),
                **({"keep_epoch": True} if keep_epoch else {}),
                **({"expect_generation": expect_generation}
                   if expect_generation is not None else {}))


def demote(group: str, expect_epoch: int, reason: str, handover_to: str | None = None,
           quarantine: bool = False, rid: str | None = None, at: float | None = None,
           expect_generation: int | None = None) -> Command:
    """`expect_generation`: as for `promote`."""
    return _cmd("demote", rid, at, group=group, expect_epoch=expect_epoch, reason=reason,
                handover_to=handover_to, quarantine=quarantine,
                **({"expect_generation": expect_generation}
                   if expect_generation is not None else {}))


def confirm_release(group: str, member: str, expect_epoch: int, reason: str,
                    rid: str | None = None, at: float | None = None) -> Command:
    return _cmd("confirm_release", rid, at, group=group, member=member, expect_epoch=expect_epoch,
                reason=reason)


def clear_quarantine(group: str, member: str, rid: str | None = None,
                     at: float | None = None) -> Command:
    return _cmd("clear_quarantine", rid, at, group=group, member=member)


def switchover(group: str, to: str | None, rid: str | None = None,
               at: float | None = None) -> Command:
    return _cmd("switchover", rid, at, group=group, to=to)


def set_maintenance(node: str, on: bool, rid: str | None = None,
                    at: float | None = None) -> Command:
    return _cmd("set_maintenance", rid, at, node=node, on=on)


#: The longest failsafe lease: a granter promises not to claim a VIP for this long, and
#: the coordinators' rejoin grace after an outage grows with it.
MAX_FAILSAFE_LEASE_MS = 60_000


def set_failsafe(lease_ms: int, rid: str | None = None,
                 at: float | None = None) -> Command:
    """Turn failsafe mode on with this lease (ms), or off with 0."""
    return _cmd("set_failsafe", rid, at, lease_ms=lease_ms)


def set_paused(on: bool, rid: str | None = None,
               at: float | None = None) -> Command:
    """Pause (or resume) automatic failover cluster-wide (decide rule 8)."""
    return _cmd("set_paused", rid, at, on=on)


def failover(group: str, to: str, force: bool = False, rid: str | None = None,
             at: float | None = None) -> Command:
    """Make `to` the active member (release before promote). `force` also accepts a
    healthy member that is quarantined (the operator vouches for it): never an
    unhealthy, lost or unknown one."""
    return _cmd("failover", rid, at, group=group, to=to, force=force)


def remove_node(node: str, force: bool = False, rid: str | None = None,
                at: float | None = None) -> Command:
    """Forget a node and its members; refused while one is active unless `force`."""
    return _cmd("remove_node", rid, at, node=node, force=force)


def readmit_node(node: str, rid: str | None = None,
                 at: float | None = None) -> Command:
    """Let a removed node register again."""
    return _cmd("readmit_node", rid, at, node=node)


def delete_group(group: str, force: bool = False, rid: str | None = None,
                 at: float | None = None) -> Command:
    """Delete a group and its members; refused while one is active unless `force`."""
    return _cmd("delete_group", rid, at, group=group, force=force)


def drain_node(node: str, rid: str | None = None, at: float | None = None) -> Command:
    """The node's agent is stopping: hand each active role over, mark the node stopped."""
    return _cmd("drain_node", rid, at, node=node)


def node_started(node: str, rid: str | None = None, at: float | None = None) -> Command:
    """A stopped node's agent registered again and is heard: clear `stopped`."""
    return _cmd("node_started", rid, at, node=node)


def publish(group: str, epoch: int, data_b64: str, max_message_bytes: int,
            retain_messages: int, retain_bytes: int, rid: str | None = None,
            at: float | None = None) -> Command:
    return _cmd("publish", rid, at, group=group, epoch=epoch, data=data_b64,
                max_message_bytes=max_message_bytes, retain_messages=retain_messages,
                retain_bytes=retain_bytes)


def put_checkpoint(group: str, epoch: int, data_b64: str, sync_sequence: int, max_bytes: int,
                   rid: str | None = None, at: float | None = None) -> Command:
    return _cmd("put_checkpoint", rid, at, group=group, epoch=epoch, data=data_b64,
                sync_sequence=sync_sequence, max_bytes=max_bytes)


def pool_admit(group: str, member: str, expect_version: int, reason: str,
               rid: str | None = None, at: float | None = None) -> Command:
    return _cmd("pool_admit", rid, at, group=group, member=member, expect_version=expect_version,
                reason=reason)


def pool_exclude(group: str, member: str, expect_version: int, reason: str,
                 recover: bool = True, rid: str | None = None, at: float | None = None) -> Command:
    return _cmd("pool_exclude", rid, at, group=group, member=member,
                expect_version=expect_version, reason=reason, recover=recover)


def pool_applied(group: str, node: str, version: int, rid: str | None = None,
                 at: float | None = None) -> Command:
    return _cmd("pool_applied", rid, at, group=group, node=node, version=version)


def recovery_update(group: str, member: str, failure: int, status: str, message: str = "",
                    expect_attempts: int | None = None, rid: str | None = None,
                    at: float | None = None) -> Command:
    extra = {} if expect_attempts is None else {"expect_attempts": expect_attempts}
    return _cmd("recovery_update", rid, at, group=group, member=member, failure=failure,
                status=status, message=message, **extra)


def batch(items: list[Command], rid: str | None = None, at: float | None = None) -> Command:
    """Several decisions as one replicated entry, applied all-or-nothing in order.

    Why all-or-nothing: `decide` built each item on the scratch state left by the
    ones before it (state_machine.apply on a copy). If the committed state differs so
    that any item is refused, the later items' premises may be false too; so the
    state machine applies the batch only if every item passes its own checks (each
    promote/demote still compares its group's epoch) and otherwise changes nothing,
    and the leader re-decides on the state that won. Then the batch commits exactly
    the state decide computed, or nothing."""
    return _cmd("batch", rid, at, items=items)


def validate_command(cmd: Any) -> Command:
    """Check shape and types; raise InvalidCommand with a message a human can act on."""
    if not isinstance(cmd, dict):
        raise InvalidCommand(f"command must be a mapping, got {type(cmd).__name__}")
    op = cmd.get("op")
    if op not in OPS:
        raise InvalidCommand(f"unknown command op {op!r}; known: {', '.join(sorted(OPS))}")
    rid = cmd.get("rid")
    if not isinstance(rid, str) or not rid:
        raise InvalidCommand(f"{op}: missing request id 'rid'")
    for name, typ in OPS[op].items():
        if name not in cmd:
            raise InvalidCommand(f"{op}: missing field {name!r}")
        _check_type(op, name, cmd[name], typ)
    for name, typ in {**COMMON_OPTIONAL, **OPTIONAL.get(op, {})}.items():
        if name in cmd:
            _check_type(op, name, cmd[name], typ)
    if op == "promote" and not 0 <= cmd.get("generation", 0) < 2**64:
        raise InvalidCommand(f"promote: generation {cmd['generation']} is not a uint64")
    if op == "set_health" and cmd["health"] not in {h.value for h in Health}:
        raise InvalidCommand(f"set_health: unknown health {cmd['health']!r}")
    if op == "apply_groups":
        for g in cmd["groups"]:
            _validate_group_spec(g)
    if op == "register_node":
        for m in cmd["members"]:
            _validate_member_spec(m)
    if op == "batch":
        _validate_batch(cmd["items"])
    if cmd.get("v", 1) >= 2:
        try:
            _validate_v2(op, cmd)
        except names.InvalidValue as e:
            raise InvalidCommand(f"{op}: {e}") from None
    return cmd


def _validate_v2(op: str, cmd: Command) -> None:
    """Rules 2 (see SCHEMA): values and sizes, on top of the shape checks."""
    names.check_request_id(cmd["rid"])
    for name in _TEXT_FIELDS:
        if name in cmd:
            names.check_text(name, cmd[name])
    if op == "apply_groups":
        if len(cmd["groups"]) > MAX_GROUPS_PER_APPLY:
            raise InvalidCommand(f"apply_groups: too many groups ({len(cmd['groups'])} > "
                                 f"{MAX_GROUPS_PER_APPLY})")
        seen: set[str] = set()
        for g in cmd["groups"]:
            names.check_name("group", g["name"])
            names.check_vip(g.get("vip", ""))
            if g["name"] in seen:
                raise InvalidCommand(f"apply_groups: group {g['name']} is listed twice")
            seen.add(g["name"])
    elif op == "set_failsafe":
        if not 0 <= cmd["lease_ms"] <= MAX_FAILSAFE_LEASE_MS:
            raise InvalidCommand(f"set_failsafe: lease_ms must be 0 (off) to "
                                 f"{MAX_FAILSAFE_LEASE_MS}, got {cmd['lease_ms']}")
    elif op == "register_node":
        names.check_name("node", cmd["node"])
        names.check_address(cmd["address"])
        names.check_endpoint(cmd.get("failsafe_endpoint", ""))
        if len(cmd["members"]) > MAX_MEMBERS_PER_NODE:
            raise InvalidCommand(f"register_node: too many members ({len(cmd['members'])} > "
                                 f"{MAX_MEMBERS_PER_NODE})")
        pairs: set[tuple[str, str]] = set()
        for m in cmd["members"]:
            names.check_name("group", m["group"])
            names.check_name("member", m["member"])
            names.check_priority(m.get("priority", 100))
            if (m["group"], m["member"]) in pairs:
                raise InvalidCommand(f"register_node: member {m['group']}/{m['member']} is "
                                     "listed twice")
            pairs.add((m["group"], m["member"]))


def _validate_batch(items: list[Any]) -> None:
    if not items:
        raise InvalidCommand("batch: no items")
    if len(items) > MAX_BATCH_ITEMS:
        raise InvalidCommand(f"batch: too many items ({len(items)} > {MAX_BATCH_ITEMS})")
    for i, item in enumerate(items):
        op = item.get("op") if isinstance(item, dict) else None
        if op not in BATCH_OPS:
            raise InvalidCommand(f"batch: item {i} has op {op!r}; a batch carries only "
                                 f"{', '.join(sorted(BATCH_OPS))}")
        try:
            validate_command(item)
        except InvalidCommand as e:
            raise InvalidCommand(f"batch: item {i}: {e}") from None


def _check_type(op: str, name: str, value: Any, typ: type | tuple[type, ...]) -> None:
    # bool is an int subclass: an epoch of True is a bug, not a number.
    allowed = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in allowed:
        raise InvalidCommand(f"{op}: field {name!r} must be a number, not a boolean")
    if not isinstance(value, typ):
        raise InvalidCommand(f"{op}: field {name!r} has the wrong type "
                             f"({type(value).__name__})")


def _validate_group_spec(g: Any) -> None:
    if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
        raise InvalidCommand("apply_groups: every group needs a non-empty 'name'")
    mode = g.get("mode", GroupMode.ACTIVE_STANDBY.value)
    if mode not in {m.value for m in GroupMode}:
        raise InvalidCommand(f"group {g['name']!r}: unknown mode {mode!r}")
    if not isinstance(g.get("vip", ""), str):
        raise InvalidCommand(f"group {g['name']!r}: 'vip' must be a string")


def _validate_member_spec(m: Any) -> None:
    if not isinstance(m, dict):
        raise InvalidCommand("register_node: each member must be a mapping")
    for key in ("group", "member"):
        if not isinstance(m.get(key), str) or not m[key]:
            raise InvalidCommand(f"register_node: member needs a non-empty {key!r}")
    prio = m.get("priority", 100)
    if not isinstance(prio, int) or isinstance(prio, bool):
        raise InvalidCommand(f"register_node: member {m['member']!r}: priority must be an integer")
