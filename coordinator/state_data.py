"""State-sync data in the replicated state: per-group queues and checkpoints.

The handlers for the `publish` and `put_checkpoint` commands, called by
`state_machine.apply` like every other command, so the fencing rule lives in
the one deterministic place every replica runs:

* a write must carry the group's **current** epoch, and the group must have
  an active member at that epoch (compare-and-set: a deposed active's write,
  committed after the promotion of its successor, is refused `stale_epoch`);
* an epoch above the committed one is refused `future_epoch` — a real active
  only ever holds an epoch that was committed before its write, so it is
  forged;
* sizes are checked against limits carried *in the command* (the proposing
  coordinator's configuration), so every replica makes the same decision.

Refusals change nothing (not even the revision). Accepted writes add no
events: data traffic must not push the role history out of its window.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from dataclasses import replace
from typing import Any, NoReturn

from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import Checkpoint, ClusterState, Group, GroupQueue, QueueMessage
from vnfha.coordinator.state_rules import CommandRefused

__all__ = ["check_write_epoch", "publish", "put_checkpoint"]

Result = dict[str, Any]


def _refuse(code: str, message: str) -> NoReturn:
    raise CommandRefused(code, message)


def _positive(cmd: Command, *names: str) -> None:
    for name in names:
        if cmd[name] <= 0:
            _refuse("invalid", f"{cmd['op']}: {name} must be positive, got {cmd[name]}")


def _decode(cmd: Command) -> bytes:
    try:
        return b64decode(cmd["data"], validate=True)
    except (binascii.Error, ValueError):
        _refuse("invalid", f"{cmd['op']}: data is not valid base64")


def check_write_epoch(state: ClusterState, group_name: str, epoch: int, what: str) -> Group:
    """The group, if `epoch` may write to it now; otherwise refuse with the reason."""
    group = state.groups.get(group_name)
    if group is None:
        _refuse("unknown_group", f"unknown group {group_name!r}")
    if epoch <= 0:
        _refuse("invalid", f"{what}: epoch must be positive, got {epoch}")
    if epoch < group.epoch:
        _refuse("stale_epoch", f"{what} refused: group {group_name!r} is at epoch "
                               f"{group.epoch}, the writer holds epoch {epoch} (deposed)")
    if epoch > group.epoch:
        _refuse("future_epoch", f"{what} refused: epoch {epoch} is above group "
                                f"{group_name!r}'s committed epoch {group.epoch} (forged)")
    if group.active is None:
        _refuse("no_active", f"{what} refused: group {group_name!r} has no active member "
                             f"at epoch {epoch}")
    return group


def publish(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Append to the group's queue, then drop the oldest messages beyond retention."""
    _positive(cmd, "max_message_bytes", "retain_messages", "retain_bytes")
    data = _decode(cmd)
    check_write_epoch(state, cmd["group"], cmd["epoch"], "publish")
    limit = min(cmd["max_message_bytes"], cmd["retain_bytes"])
    if len(data) > limit:
        _refuse("too_large", f"publish refused: message is {len(data)} bytes, the limit is "
                             f"{limit} (state.queue.max_message_bytes)")
    old = state.queues.get(cmd["group"], GroupQueue())
    msg = QueueMessage(offset=old.next_offset, epoch=cmd["epoch"], data=data,
                       at=float(cmd.get("at", 0.0)))
    msgs = [*old.messages, msg]
    size = old.size + len(data)
    drop = 0
    while len(msgs) - drop > cmd["retain_messages"] or size > cmd["retain_bytes"]:
        size -= len(msgs[drop].data)
        drop += 1
    queue = GroupQueue(messages=tuple(msgs[drop:]), next_offset=old.next_offset + 1, size=size)
    queues = dict(state.queues)
    queues[cmd["group"]] = queue
    return replace(state, queues=queues), {"ok": True, "offset": msg.offset}


def put_checkpoint(state: ClusterState, cmd: Command) -> tuple[ClusterState, Result]:
    """Replace the group's checkpoint (compare-and-set on the current epoch)."""
    _positive(cmd, "max_bytes")
    if cmd["sync_sequence"] < 0:
        _refuse("invalid", "put_checkpoint: sync_sequence must be >= 0")
    data = _decode(cmd)
    check_write_epoch(state, cmd["group"], cmd["epoch"], "checkpoint write")
    if len(data) > cmd["max_bytes"]:
        _refuse("too_large", f"checkpoint write refused: {len(data)} bytes, the limit is "
                             f"{cmd['max_bytes']} (state.checkpoint_max_bytes)")
    old = state.checkpoints.get(cmd["group"])
    cp = Checkpoint(epoch=cmd["epoch"], version=(old.version if old else 0) + 1, data=data,
                    sync_sequence=cmd["sync_sequence"], at=float(cmd.get("at", 0.0)))
    checkpoints = dict(state.checkpoints)
    checkpoints[cmd["group"]] = cp
    return replace(state, checkpoints=checkpoints), {"ok": True, "version": cp.version}
