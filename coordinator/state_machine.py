"""Applying commands to the replicated state: deterministic, pure, idempotent.

Every store (memory, Raft, later etcd) runs this same code, so the rules about
epochs live in exactly one place:

* the epoch goes up by one on every change of a group's active member, and
  never goes down;
* `promote` and `demote` are compare-and-set on the epoch the proposer saw
  (`expect_epoch`): a decision made on stale state is refused, not applied;
* no member is promoted while a demoted active has not yet let go.

A refused command returns ``{"ok": False, "error": CODE, "message": ...}`` and
leaves the state untouched. Results are remembered by request id, so a command
retried after an unknown outcome is applied at most once. Each remembered result
carries the digest of the command it answered (`commands.digest`): the same id with
a different command is refused (`request_id_reused`), never given that result.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from vnfha.coordinator import state_data
from vnfha.coordinator.commands import Command, InvalidCommand, digest, validate_command
from vnfha.coordinator.model import (
    ClusterState,
    Event,
    Group,
    GroupDictCache,
    GroupMode,
    Health,
    Member,
    Node,
    evolve,
    new_cluster_state,
    state_from_dict,
    state_to_dict,
    with_member,
)
from vnfha.coordinator.pool_state import POOL_APPLY, seed_pool
from vnfha.coordinator.state_rules import (  # shared with pool_state and state_data
    CommandRefused,
    Result,
    best_candidate,
    committed_events,
    eligible,
    events_seen,
    ok,
    own_groups,
    refused,
)
from vnfha.coordinator.state_rules import check_epoch as _check_epoch
from vnfha.coordinator.state_rules import event as _event
from vnfha.coordinator.state_rules import group as _group
from vnfha.coordinator.state_rules import member as _member
from vnfha.coordinator.state_rules import put_group as _put_group

log = logging.getLogger("vnfha.state")

DEDUP_WINDOW = 10_000
#: Key of the command digest inside a remembered result (never returned to callers).
DIGEST_KEY = "_digest"
#: Error code of a request id reused with a different command.
RID_REUSED = "request_id_reused"


def apply(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Apply one command. Never raises for bad input: refusals are results."""
    try:
        validate_command(cmd)
    except InvalidCommand as e:
        return state, refused("invalid", str(e))
    with own_groups():  # one copy of the group map per command, not per group changed
        return _apply_valid(state, cmd)


def _apply_valid(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """`apply` of a command already validated (a batch's items are validated with the
    batch, so replaying a journal of 1,000-item batches does not check each twice)."""
    try:
        new_state, result = _APPLY[cmd["op"]](state, cmd)
    except CommandRefused as e:
        return state, refused(e.code, e.message)
    return evolve(new_state, revision=state.revision + 1), result


def _apply_groups(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    seed_only = bool(cmd.get("seed_only", False))
    kept: list[str] = []  # seed_only: existing groups the command would have changed
    for spec in cmd["groups"]:
        name = spec["name"]
        mode = GroupMode(spec.get("mode", GroupMode.ACTIVE_STANDBY.value))
        vip = spec.get("vip", "")
        old = state.groups.get(name)
        if old is None:
            state = _put_group(state, Group(name=name, mode=mode, vip=vip))
            state = _event(state, cmd, "group_created", group=name, reason=f"mode {mode.value}")
            continue
        if seed_only:
            if (old.mode, old.vip) != (mode, vip):
                kept.append(name)
            continue
        if old.mode != mode and old.active is not None:
            raise CommandRefused("conflict", f"group {name!r} has an active member; "
                                 "cannot change its mode")
        if (old.mode, old.vip) != (mode, vip):
            state = _put_group(state, replace(old, mode=mode, vip=vip))
            state = _event(state, cmd, "group_updated", group=name)
    for spec in cmd["groups"]:
        state = seed_pool(state, cmd, spec["name"])  # active-active: eligible members serve
    return state, (ok(kept=kept) if seed_only else ok())


def _hosted(state: ClusterState, node: str) -> list[Member]:
    """A node's members in group, then member, insertion order: the order the removal
    events of entries already in logs were written in, so a replica replaying them
    numbers its events as the others did (ClusterState.members_on sorts by name)."""
    return [m for g in state.groups.values() for m in g.members.values() if m.node == node]


def _register_node(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    node_name = cmd["node"]
    if not node_name:
        raise CommandRefused("invalid", "register_node: node name is empty")
    if node_name in state.removed_nodes:
        raise CommandRefused("conflict", f"node {node_name!r} was removed (vnfha node remove); "
                             f"stop its agent, or run `vnfha node readmit {node_name}`")
    wanted = {(m["group"], m["member"]): m for m in cmd["members"]}
    for (gname, mname) in wanted:
        group = _group(state, gname)
        existing = group.members.get(mname)
        if existing is not None and existing.node != node_name:
            raise CommandRefused("conflict",
                                 f"member {mname!r} of group {gname!r} is already hosted "
                                 f"by node {existing.node!r}")
    # Members this node used to host but no longer declares are removed only when the
    # command says so (`remove_undeclared`, which the agent sets: its config is the
    # source of truth for what its VM hosts), and never while active (switch over
    # first). Rules-1 commands (already in logs) removed them implicitly; they still do.
    dropped = [m for m in _hosted(state, node_name) if (m.group, m.name) not in wanted]
    if dropped and cmd.get("v", 1) >= 2 and not cmd.get("remove_undeclared", False):
        listed = ", ".join(f"{m.group}/{m.name}" for m in dropped[:10])
        raise CommandRefused("conflict", f"node {node_name!r} hosts {len(dropped)} member(s) this "
                             f"registration does not declare ({listed}); nothing was "
                             "removed: set remove_undeclared to remove them")
    for m in dropped:
        g = state.groups[m.group]
        if m.name in (g.active, g.releasing):
            raise CommandRefused("conflict", f"member {m.name!r} is active in group {g.name!r}; "
                                 "switch over before removing it")
    old_node = state.nodes.get(node_name)
    # A stopped node whose agent registers again stays stopped until the leader hears
    # its keepalives (decide emits node_started): its old lease ran out long ago.
    stopped = old_node is not None and old_node.stopped
    node = Node(name=node_name, address=cmd["address"],
                maintenance=old_node.maintenance if old_node else False,
                stopped=stopped, rejoining=stopped,
                failsafe_endpoint=cmd.get("failsafe_endpoint", ""))
    nodes = dict(state.nodes)
    nodes[node_name] = node
    state = replace(state, nodes=nodes)
    for m in _hosted(state, node_name):
        if (m.group, m.name) not in wanted:
            g = state.groups[m.group]
            members = {k: v for k, v in g.members.items() if k != m.name}
            state = _put_group(state, replace(g, members=members))
            state = _event(state, cmd, "member_removed", group=g.name, member=m.name,
                           node=node_name)
    for (gname, mname), spec in wanted.items():
        g = state.groups[gname]
        prio = spec.get("priority", 100)
        existing = g.members.get(mname)
        if existing is None:
            member = Member(name=mname, group=gname, node=node_name, priority=prio)
            state = _put_group(state, with_member(g, member))
            state = _event(state, cmd, "member_added", group=gname, member=mname, node=node_name)
        elif existing.priority != prio:
            state = _put_group(state, with_member(g, replace(existing, priority=prio)))
    if old_node is None or old_node.address != node.address:
        state = _event(state, cmd, "node_registered", node=node_name, reason=node.address)
    return state, ok()


def _set_health(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _group(state, cmd["group"])
    member = _member(group, cmd["member"])
    health = Health(cmd["health"])
    if member.health == health:
        return state, ok(changed=False)
    failed = health in (Health.UNHEALTHY, Health.LOST)
    new = replace(member, health=health, quarantined=member.quarantined or failed)
    state = _put_group(state, with_member(group, new))
    state = _event(state, cmd, "health_changed", group=group.name, member=member.name,
                   node=member.node, epoch=group.epoch,
                   reason=f"{member.health.value} -> {health.value}"
                          + (f": {cmd['reason']}" if cmd.get("reason") else ""))
    return state, ok(changed=True)


def _promote(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _group(state, cmd["group"])
    _check_epoch(group, cmd)
    member = _member(group, cmd["member"])
    replacing = cmd.get("replace")
    generation = cmd.get("generation", 0)
    if cmd.get("reconfirm"):
        # The active's agent has a new lease generation (a lapse, a restart) and holds
        # nothing: the same member, a new epoch stamped with the new generation. The
        # epoch check serialises it with any competing promotion (docs/design.md §3).
        if group.active != member.name:
            raise CommandRefused("conflict", f"{member.name!r} is not the active member of "
                                 f"{group.name!r}")
        # With `keep_epoch` the agent held the role without a break (failsafe leases
        # bridged its lapse): only the stamp changes, and `expect_generation` on every
        # competing promote/demote serialises them as the epoch does otherwise.
        epoch = group.epoch if cmd.get("keep_epoch") else group.epoch + 1
        state = _put_group(state, replace(group, epoch=epoch, active_generation=generation))
        state = _event(state, cmd, "reconfirmed" if cmd.get("keep_epoch") else "promoted",
                       group=group.name, member=member.name, node=member.node, epoch=epoch,
                       reason=cmd["reason"])
        return state, ok(epoch=epoch)
    if group.active is not None:
        # Only a lost active may be replaced in one step: its lease is over, so
        # it has already stopped on its own (DESIGN §3).
        if replacing != group.active:
            raise CommandRefused("conflict", f"group {group.name!r} already has active "
                                 f"{group.active!r}")
        if member.name == replacing:
            raise CommandRefused("conflict", f"{member.name!r} cannot replace itself")
        old = _member(group, replacing)
        group = with_member(group, replace(old, health=Health.LOST, quarantined=True))
    if group.releasing is not None:
        raise CommandRefused("conflict",
                             f"group {group.name!r}: {group.releasing!r} has not released "
                             "the active role yet")
    if group.deleting:
        raise CommandRefused("conflict", f"group {group.name!r} is being deleted")
    why = eligible(state, member)
    if why is not None:
        raise CommandRefused("not_eligible", why)
    epoch = group.epoch + 1
    state = _put_group(state, replace(group, active=member.name, epoch=epoch, handover_to=None,
                                      active_generation=generation))
    state = _event(state, cmd, "promoted", group=group.name, member=member.name,
                   node=member.node, epoch=epoch,
                   reason=cmd["reason"] + (f" (replacing {replacing})" if replacing else ""))
    return state, ok(epoch=epoch)


def _demote(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _group(state, cmd["group"])
    _check_epoch(group, cmd)
    if group.active is None:
        raise CommandRefused("conflict", f"group {group.name!r} has no active member to demote")
    old = _member(group, group.active)
    if cmd.get("quarantine"):
        group = with_member(group, replace(old, quarantined=True))
    epoch = group.epoch + 1
    handover = cmd.get("handover_to")
    state = _put_group(state, replace(group, active=None, active_generation=0, epoch=epoch,
                                      releasing=old.name,
                                      releasing_epoch=epoch, handover_to=handover))
    state = _event(state, cmd, "demoted", group=group.name, member=old.name, node=old.node,
                   epoch=epoch, reason=cmd["reason"]
                   + (f" (handing over to {handover})" if handover else ""))
    return state, ok(epoch=epoch)


def _confirm_release(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _group(state, cmd["group"])
    _check_epoch(group, cmd)
    if group.releasing != cmd["member"]:
        raise CommandRefused("conflict",
                             f"group {group.name!r}: {cmd['member']!r} is not releasing")
    member = _member(group, cmd["member"])
    state = _put_group(state, replace(group, releasing=None))
    state = _event(state, cmd, "released", group=group.name, member=member.name,
                   node=member.node, epoch=group.epoch, reason=cmd["reason"])
    return state, ok()


def _clear_quarantine(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _group(state, cmd["group"])
    member = _member(group, cmd["member"])
    if not member.quarantined:
        return state, ok(changed=False)
    state = _put_group(state, with_member(group, replace(member, quarantined=False)))
    state = _event(state, cmd, "stable", group=group.name, member=member.name, node=member.node,
                   epoch=group.epoch, reason="healthy for the stabilization time; eligible again")
    return state, ok(changed=True)


def _switchover(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    group = _group(state, cmd["group"])
    if group.mode != GroupMode.ACTIVE_STANDBY:
        raise CommandRefused("conflict", f"group {group.name!r} is {group.mode.value}: "
                             "switchover applies to active-standby groups")
    if group.active is None:
        raise CommandRefused("conflict",
                             f"group {group.name!r} has no active member to switch over from")
    if group.releasing is not None:
        raise CommandRefused("conflict", f"group {group.name!r}: a handover is already in progress")
    target_name = cmd["to"]
    if target_name is None:
        target = best_candidate(state, group, exclude=group.active)
        if target is None:
            raise CommandRefused("not_eligible", f"group {group.name!r} has no eligible standby")
    else:
        target = _member(group, target_name)
        if target.name == group.active:
            raise CommandRefused("conflict", f"{target.name!r} is already the active member")
        why = eligible(state, target)
        if why is not None:
            raise CommandRefused("not_eligible", why)
    return _demote(state, {**cmd, "expect_epoch": group.epoch, "handover_to": target.name,
                           "reason": "planned switchover"})


def _set_maintenance(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    node = state.nodes.get(cmd["node"])
    if node is None:
        raise CommandRefused("unknown_node", f"unknown node {cmd['node']!r}")
    if node.maintenance == cmd["on"]:
        return state, ok(changed=False)
    nodes = dict(state.nodes)
    nodes[node.name] = replace(node, maintenance=cmd["on"])
    state = replace(state, nodes=nodes)
    state = _event(state, cmd, "maintenance_on" if cmd["on"] else "maintenance_off",
                   node=node.name)
    return state, ok(changed=True)


def _batch(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Apply every item in order, or none (commands.batch says why). Each item goes
    through the full `apply`: its own validation and its own epoch compare-and-set
    against the state the items before it left. The batch counts as one revision."""
    results = []
    for i, item in enumerate(cmd["items"]):
        state, result = _apply_valid(state, item)  # validated with the batch
        if not result["ok"]:
            where = item.get("group") or item.get("node") or ""
            raise CommandRefused(result["error"], f"batch item {i} ({item['op']} {where}) refused, "
                                 f"nothing applied: {result['message']}")
        results.append(result)
    return state, ok(items=len(results), results=results)


def _drain_node(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Its agent is stopping: demote each active member it hosts, handing over to the
    best eligible standby (release-before-promote still holds: the standby is promoted
    only once the release is reported or the lease ran out), and mark the node stopped
    so that its lease running out is not a failure."""
    node = state.nodes.get(cmd["node"])
    if node is None:
        raise CommandRefused("unknown_node", f"unknown node {cmd['node']!r}")
    if not node.stopped or node.rejoining:
        nodes = dict(state.nodes)
        nodes[node.name] = replace(node, stopped=True, rejoining=False)
        state = replace(state, nodes=nodes)
        state = _event(state, cmd, "node_stopped", node=node.name,
                       reason="agent stopping: handing its roles over")
    handovers: list[dict[str, Any]] = []
    for gname in sorted(state.groups):
        group = state.groups[gname]
        if group.mode != GroupMode.ACTIVE_STANDBY or group.active is None:
            continue
        if group.members[group.active].node != node.name:
            continue
        target = best_candidate(state, group, exclude=group.active)
        to = target.name if target is not None else None
        state, result = _demote(state, {**cmd, "group": gname, "expect_epoch": group.epoch,
                                        "handover_to": to,
                                        "reason": f"node {node.name} stopping"})
        handovers.append({"group": gname, "member": group.active, "to": to or "",
                          "epoch": result["epoch"]})
    return state, ok(handovers=handovers)


def _node_started(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """A stopped node's agent registered again and is heard: it runs again."""
    node = state.nodes.get(cmd["node"])
    if node is None:
        raise CommandRefused("unknown_node", f"unknown node {cmd['node']!r}")
    if not node.stopped:
        return state, ok(changed=False)
    if not node.rejoining:
        raise CommandRefused("conflict", f"node {node.name!r} has not registered since it stopped")
    nodes = dict(state.nodes)
    nodes[node.name] = replace(node, stopped=False, rejoining=False)
    state = replace(state, nodes=nodes)
    state = _event(state, cmd, "node_started", node=node.name,
                   reason="agent registered and heard again")
    return state, ok(changed=True)


# --- lifecycle: pause/resume, manual failover, removing nodes and groups (docs/cli.md) ---


def _set_paused(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Pause or resume automatic failover. Only decide reads the flag (rule 8): agents'
    leases, the guardian and operator commands work as before."""
    if state.paused == cmd["on"]:
        return state, ok(changed=False)
    state = replace(state, paused=cmd["on"])
    state = _event(state, cmd, "paused" if cmd["on"] else "resumed",
                   reason="automatic failover off" if cmd["on"] else "automatic failover on")
    return state, ok(changed=True)


def _set_failsafe(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Failsafe on (with its lease) or off. Agents read it from their assignments; decide
    reads it for the rejoin grace (docs/design.md, "Failsafe")."""
    lease_ms = cmd["lease_ms"]
    if state.failsafe_lease_ms == lease_ms:
        return state, ok(changed=False)
    state = replace(state, failsafe_lease_ms=lease_ms)
    state = _event(state, cmd, "failsafe_on" if lease_ms else "failsafe_off",
                   reason=f"failsafe lease {lease_ms} ms" if lease_ms else "failsafe off")
    return state, ok(changed=True)


def _failover(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Make a named member active: demote the active with it as successor (promoted once
    the old one has let go), or promote it at once if the group has none. `force` only
    overrides the quarantine of a healthy member (the operator vouches for it); a member
    that is not healthy, or whose node is not in service, is refused either way."""
    group = _group(state, cmd["group"])
    if group.mode != GroupMode.ACTIVE_STANDBY:
        raise CommandRefused("conflict", f"group {group.name!r} is {group.mode.value}: "
                             "failover applies to active-standby groups")
    if group.deleting:
        raise CommandRefused("conflict", f"group {group.name!r} is being deleted")
    target = _member(group, cmd["to"])
    if target.name == group.active:
        raise CommandRefused("conflict", f"{target.name!r} is already the active member")
    if group.releasing is not None:
        raise CommandRefused("conflict", f"group {group.name!r}: a handover is already in progress")
    why = eligible(state, target)
    if why is not None and not (cmd["force"] and target.health == Health.HEALTHY
                                and target.quarantined and eligible(
                                    state, replace(target, quarantined=False)) is None):
        hint = " (--force overrides only the quarantine of a healthy member)" \
            if target.quarantined or cmd["force"] else ""
        raise CommandRefused("not_eligible", why + hint)
    if target.quarantined:  # forced
        group = with_member(group, replace(target, quarantined=False))
        state = _put_group(state, group)
        state = _event(state, cmd, "quarantine_cleared", group=group.name, member=target.name,
                       node=target.node, epoch=group.epoch, reason="forced failover")
    reason = "manual failover" + (" (forced)" if cmd["force"] else "")
    if group.active is None:
        # Not promoted here: a promotion must carry the lease generation its agent last
        # reported (rule 10), which only the leader's observations know. The member is
        # made the chosen successor; the leader's next round promotes it, stamped, as
        # soon as its agent reports a running lease (also while paused: rule 8).
        if group.releasing is None and group.handover_to == target.name:
            return state, ok(epoch=group.epoch, changed=False)
        state = _put_group(state, replace(group, handover_to=target.name))
        state = _event(state, cmd, "failover_requested", group=group.name,
                       member=target.name, node=target.node, epoch=group.epoch, reason=reason)
        return state, ok(epoch=group.epoch, changed=True)
    return _demote(state, {**cmd, "expect_epoch": group.epoch, "handover_to": target.name,
                           "reason": reason})


def _busy(state: ClusterState, group: Group, node: str | None = None) -> str | None:
    """The member of `group` (on `node`, if given) that is active or still releasing."""
    for name in (group.active, group.releasing):
        if name is not None and (node is None or group.members[name].node == node):
            return name
    return None


def _remove_node(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Forget a node and its members. While one of them is active (or releasing) it is
    refused, or with `force` drained first (drain_node: handed over, release before
    promote) and the result says `removed: False` with the groups still pending: the
    caller sends the command again (without force) once they have released."""
    node = state.nodes.get(cmd["node"])
    if node is None:
        raise CommandRefused("unknown_node", f"unknown node {cmd['node']!r}")
    busy = sorted(g.name for g in state.groups.values() if _busy(state, g, node.name))
    if busy:
        if not cmd["force"]:
            raise CommandRefused("conflict", f"node {node.name!r} hosts the active member of "
                                 f"{', '.join(busy[:10])}; switch over first or use "
                                 "--force")
        state, result = _drain_node(state, {**cmd, "node": node.name})
        return state, ok(removed=False, pending=busy, handovers=result["handovers"])
    removed = []
    for m in _hosted(state, node.name):
        g = state.groups[m.group]
        if m.name in g.pool:  # active-active: out of the LB pool first (a new version)
            state, _ = POOL_APPLY["pool_exclude"](state, {
                **cmd, "group": g.name, "member": m.name, "expect_version": g.pool_version,
                "reason": "node removed", "recover": False})
            g = state.groups[m.group]
        state = _put_group(state, replace(
            g, members={k: v for k, v in g.members.items() if k != m.name},
            recoveries={k: v for k, v in g.recoveries.items() if k != m.name}))
        state = _event(state, cmd, "member_removed", group=g.name, member=m.name,
                       node=node.name, reason="node removed")
        removed.append(f"{g.name}/{m.name}")
    nodes = {k: v for k, v in state.nodes.items() if k != node.name}
    state = replace(state, nodes=nodes, removed_nodes=state.removed_nodes | {node.name})
    state = _event(state, cmd, "node_removed", node=node.name)
    return state, ok(removed=True, pending=[], members=removed)


def _readmit_node(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """A removed node may register again (its agent adds it back as a new node)."""
    if cmd["node"] not in state.removed_nodes:
        return state, ok(changed=False)
    state = replace(state, removed_nodes=state.removed_nodes - {cmd["node"]})
    state = _event(state, cmd, "node_readmitted", node=cmd["node"])
    return state, ok(changed=True)


def _delete_group(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Delete a group, its members and its state-sync data. While it has an active (or
    releasing) member it is refused, or with `force` the active is demoted and the
    group marked `deleting` (nobody is promoted in it again) and the result says
    `removed: False`: the caller sends the command again once the old active released."""
    group = _group(state, cmd["group"])
    busy = _busy(state, group)
    if busy is not None:
        if not cmd["force"]:
            raise CommandRefused("conflict", f"group {group.name!r} has active member {busy!r}; "
                                 "use --force to demote it and delete the group")
        if not group.deleting:
            group = replace(group, deleting=True)
            state = _put_group(state, group)
        if group.active is not None:
            state, _ = _demote(state, {**cmd, "expect_epoch": group.epoch,
                                       "handover_to": None, "reason": "group being deleted"})
        return state, ok(removed=False, pending=[group.name])
    groups = {k: v for k, v in state.groups.items() if k != group.name}
    state = replace(state, groups=groups,
                    checkpoints={k: v for k, v in state.checkpoints.items() if k != group.name},
                    queues={k: v for k, v in state.queues.items() if k != group.name})
    state = _event(state, cmd, "group_deleted", group=group.name,
                   reason=f"{len(group.members)} member(s)")
    return state, ok(removed=True, pending=[])


_APPLY = {
    "set_paused": _set_paused,
    "set_failsafe": _set_failsafe,
    "failover": _failover,
    "remove_node": _remove_node,
    "delete_group": _delete_group,
    "readmit_node": _readmit_node,
    "drain_node": _drain_node,
    "node_started": _node_started,
    "apply_groups": _apply_groups,
    "register_node": _register_node,
    "set_health": _set_health,
    "promote": _promote,
    "demote": _demote,
    "confirm_release": _confirm_release,
    "clear_quarantine": _clear_quarantine,
    "switchover": _switchover,
    "set_maintenance": _set_maintenance,
    "publish": state_data.publish,
    "put_checkpoint": state_data.put_checkpoint,
    "batch": _batch,
}

_APPLY.update(POOL_APPLY)  # active-active pools: their handlers live in pool_state


class StateMachine:
    """The state plus the request-id memory; what a replicated log drives.

    Implements the Raft layer's StateMachine protocol (apply / snapshot / restore).
    Not thread-safe by itself: one writer (the store's apply thread); readers take
    `state` (an immutable snapshot) at any time.
    """

    def __init__(self) -> None:
        self.state = new_cluster_state()  # a new cluster: failsafe on (model.py)
        self._recent: OrderedDict[str, Result] = OrderedDict()
        #: Log each applied event and refusal (True), or only count them: a store sets
        #: False while it re-applies its own journal after a restart. Those lines were
        #: written when the commands were first applied, the events stay in the
        #: replicated history, and writing them again cost as much CPU as the replay
        #: itself (issue 14: +1 s at 5,000 groups with JSON logs).
        self.log_events = True
        self.quiet_events = 0  # events applied while log_events was False
        self._group_dicts: GroupDictCache = {}  # snapshot(): unchanged groups reused

    def _log_new_events(self, before: ClusterState, seen: dict[int, Event]) -> None:
        """Log every event the command committed: from what it created (`seen`), not
        from the state's bounded tail, which a batch of more than MAX_EVENTS events
        would have cut before this ran (those events were never logged)."""
        new = committed_events(seen, before, self.state)
        if not new:
            return
        if not self.log_events:
            self.quiet_events += len(new)
            return
        for ev in new:
            # Every role change is an event someone can read later.
            log.info("%s", ev.kind, extra={"event": {
                "kind": ev.kind, "group": ev.group, "member": ev.member, "node": ev.node,
                "epoch": ev.epoch, "reason": ev.reason, "seq": ev.seq}})

    def apply(self, command: dict[str, Any]) -> Result:
        rid = command.get("rid") if isinstance(command, dict) else None
        if isinstance(rid, str) and rid in self._recent:
            record = self._recent[rid]
            bound = record.get(DIGEST_KEY)
            # A record without a digest predates the binding (an old snapshot): as before.
            if bound is not None and bound != digest(command):
                result = refused(RID_REUSED, f"request id {rid[:128]!r} was already used for "
                                             "a different command; use a new request id")
                log.info("command refused", extra={"op": command.get("op"),
                                                   "error": RID_REUSED})
                return result
            return {**_public(record), "duplicate": True}
        before = self.state
        with events_seen() as seen:
            self.state, result = apply(self.state, command)
        self._log_new_events(before, seen)
        if isinstance(rid, str) and rid:
            self._recent[rid] = {**result, DIGEST_KEY: digest(command)}
            while len(self._recent) > DEDUP_WINDOW:
                self._recent.popitem(last=False)
        if not result["ok"] and self.log_events:
            log.info("command refused", extra={"op": command.get("op") if isinstance(
                command, dict) else None, "error": result["error"], "detail": result["message"]})
        return result

    def record(self, rid: str) -> Result | None:
        """What is remembered for `rid` (the result and its command's digest), as a store
        that keeps request ids itself (etcd) persists it."""
        return self._recent.get(rid)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (read-only: it shares the dicts of groups that
        did not change since the previous snapshot, so building one costs what changed,
        plus one identity check per group)."""
        return {"state": state_to_dict(self.state, self._group_dicts),
                "recent": list(self._recent.items())}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.state = state_from_dict(snapshot["state"])
        self._recent = OrderedDict((k, v) for k, v in snapshot.get("recent", []))


def _public(record: Result) -> Result:
    """A remembered result as callers see it: without the digest."""
    return {k: v for k, v in record.items() if k != DIGEST_KEY}
