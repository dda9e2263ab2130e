"""Model <-> protobuf. Kept apart so servicers read as plain logic."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from vnfha.coordinator.model import (
    Checkpoint,
    Event,
    Group,
    GroupMode,
    GroupQueue,
    Health,
    Recovery,
    Role,
)
from vnfha.coordinator.service.status_view import Excluded
from vnfha.v1 import admin_pb2, types_pb2

HEALTH_TO_PB = {
    Health.UNKNOWN: types_pb2.HEALTH_UNKNOWN,
    Health.HEALTHY: types_pb2.HEALTH_HEALTHY,
    Health.UNHEALTHY: types_pb2.HEALTH_UNHEALTHY,
    Health.LOST: types_pb2.HEALTH_LOST,
}
# Agents may only report these two; the coordinator decides LOST itself.
REPORTABLE_HEALTH = {
    types_pb2.HEALTH_HEALTHY: Health.HEALTHY,
    types_pb2.HEALTH_UNHEALTHY: Health.UNHEALTHY,
}
ROLE_TO_PB = {Role.ACTIVE: types_pb2.ROLE_ACTIVE, Role.STANDBY: types_pb2.ROLE_STANDBY}
MODE_TO_PB = {
    GroupMode.ACTIVE_STANDBY: types_pb2.GROUP_MODE_ACTIVE_STANDBY,
    GroupMode.ACTIVE_ACTIVE: types_pb2.GROUP_MODE_ACTIVE_ACTIVE,
}
MODE_FROM_PB = {v: k for k, v in MODE_TO_PB.items()}


def event_to_pb(e: Event) -> admin_pb2.Event:
    ts = Timestamp()
    ts.FromNanoseconds(int(e.at * 1e9))
    return admin_pb2.Event(seq=e.seq, time=ts, kind=e.kind, group=e.group, member=e.member,
                           node=e.node, epoch=e.epoch, reason=e.reason, actor=e.actor)


RECOVERY_STATE_TO_PB = {
    "awaiting_lb": types_pb2.RECOVERY_STATE_AWAITING_LB,
    "requested": types_pb2.RECOVERY_STATE_REQUESTED,
    "succeeded": types_pb2.RECOVERY_STATE_SUCCEEDED,
    "gave_up": types_pb2.RECOVERY_STATE_GAVE_UP,
    "cancelled": types_pb2.RECOVERY_STATE_CANCELLED,
}


def _timestamp(at: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(at * 1e9))
    return ts


def pool_to_pb(group: Group, excluded: list[Excluded]) -> admin_pb2.PoolStatus:
    return admin_pb2.PoolStatus(
        pool_version=group.pool_version, in_service=sorted(group.pool),
        excluded=[admin_pb2.ExcludedMember(member=x.member, node=x.node,
                                           excluded_at_version=x.version, reason=x.reason,
                                           blocked_by=x.blocked_by) for x in excluded],
        lb_applied=[admin_pb2.LbApplied(node=n, pool_version=v)
                    for n, v in sorted(group.lb_applied.items())])


def recovery_to_pb(r: Recovery) -> admin_pb2.RecoveryStatus:
    return admin_pb2.RecoveryStatus(
        member=r.member, node=r.node, failure=r.failure, reason=r.reason,
        state=RECOVERY_STATE_TO_PB.get(r.status, types_pb2.RECOVERY_STATE_UNSPECIFIED),
        attempts=r.attempts, message=r.message)


def checkpoint_status_to_pb(c: Checkpoint) -> admin_pb2.CheckpointStatus:
    """Sizes and positions only: the operator's view never carries the data."""
    msg = admin_pb2.CheckpointStatus(epoch=c.epoch, version=c.version, size_bytes=len(c.data),
                                     sync_sequence=c.sync_sequence)
    if c.at > 0:
        msg.written_at.CopyFrom(_timestamp(c.at))
    return msg


def queue_status_to_pb(q: GroupQueue) -> admin_pb2.QueueStatus:
    return admin_pb2.QueueStatus(first_offset=q.first_offset, next_offset=q.next_offset,
                                 message_count=len(q.messages), size_bytes=q.size)
