"""Model <-> protobuf. Kept apart so servicers read as plain logic."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from vnfha.coordinator.model import Event, GroupMode, Health, Role
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
                           node=e.node, epoch=e.epoch, reason=e.reason)
