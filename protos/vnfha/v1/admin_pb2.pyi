import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vnfha.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CoordinatorInfo(_message.Message):
    __slots__ = ("node_id", "is_leader", "leader_id", "leader_endpoint", "revision", "backend", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    is_leader: bool
    leader_id: str
    leader_endpoint: str
    revision: int
    backend: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[str] = ..., is_leader: _Optional[bool] = ..., leader_id: _Optional[str] = ..., leader_endpoint: _Optional[str] = ..., revision: _Optional[int] = ..., backend: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MemberStatus(_message.Message):
    __slots__ = ("name", "node", "role", "health", "priority", "quarantined", "lease_age_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    LEASE_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    node: str
    role: _types_pb2.Role
    health: _types_pb2.Health
    priority: int
    quarantined: bool
    lease_age_seconds: float
    def __init__(self, name: _Optional[str] = ..., node: _Optional[str] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., health: _Optional[_Union[_types_pb2.Health, str]] = ..., priority: _Optional[int] = ..., quarantined: _Optional[bool] = ..., lease_age_seconds: _Optional[float] = ...) -> None: ...

class GroupStatus(_message.Message):
    __slots__ = ("name", "mode", "vip", "epoch", "active", "releasing", "handover_to", "members", "pool", "recoveries", "checkpoint", "queue", "deleting")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RELEASING_FIELD_NUMBER: _ClassVar[int]
    HANDOVER_TO_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DELETING_FIELD_NUMBER: _ClassVar[int]
    name: str
    mode: _types_pb2.GroupMode
    vip: str
    epoch: int
    active: str
    releasing: str
    handover_to: str
    members: _containers.RepeatedCompositeFieldContainer[MemberStatus]
    pool: PoolStatus
    recoveries: _containers.RepeatedCompositeFieldContainer[RecoveryStatus]
    checkpoint: CheckpointStatus
    queue: QueueStatus
    deleting: bool
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[_Union[_types_pb2.GroupMode, str]] = ..., vip: _Optional[str] = ..., epoch: _Optional[int] = ..., active: _Optional[str] = ..., releasing: _Optional[str] = ..., handover_to: _Optional[str] = ..., members: _Optional[_Iterable[_Union[MemberStatus, _Mapping]]] = ..., pool: _Optional[_Union[PoolStatus, _Mapping]] = ..., recoveries: _Optional[_Iterable[_Union[RecoveryStatus, _Mapping]]] = ..., checkpoint: _Optional[_Union[CheckpointStatus, _Mapping]] = ..., queue: _Optional[_Union[QueueStatus, _Mapping]] = ..., deleting: _Optional[bool] = ...) -> None: ...

class PoolStatus(_message.Message):
    __slots__ = ("pool_version", "in_service", "excluded", "lb_applied")
    POOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    IN_SERVICE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    LB_APPLIED_FIELD_NUMBER: _ClassVar[int]
    pool_version: int
    in_service: _containers.RepeatedScalarFieldContainer[str]
    excluded: _containers.RepeatedCompositeFieldContainer[ExcludedMember]
    lb_applied: _containers.RepeatedCompositeFieldContainer[LbApplied]
    def __init__(self, pool_version: _Optional[int] = ..., in_service: _Optional[_Iterable[str]] = ..., excluded: _Optional[_Iterable[_Union[ExcludedMember, _Mapping]]] = ..., lb_applied: _Optional[_Iterable[_Union[LbApplied, _Mapping]]] = ...) -> None: ...

class ExcludedMember(_message.Message):
    __slots__ = ("member", "node", "excluded_at_version", "reason", "blocked_by")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_AT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_BY_FIELD_NUMBER: _ClassVar[int]
    member: str
    node: str
    excluded_at_version: int
    reason: str
    blocked_by: str
    def __init__(self, member: _Optional[str] = ..., node: _Optional[str] = ..., excluded_at_version: _Optional[int] = ..., reason: _Optional[str] = ..., blocked_by: _Optional[str] = ...) -> None: ...

class LbApplied(_message.Message):
    __slots__ = ("node", "pool_version")
    NODE_FIELD_NUMBER: _ClassVar[int]
    POOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    node: str
    pool_version: int
    def __init__(self, node: _Optional[str] = ..., pool_version: _Optional[int] = ...) -> None: ...

class RecoveryStatus(_message.Message):
    __slots__ = ("member", "node", "failure", "reason", "state", "attempts", "message")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    member: str
    node: str
    failure: int
    reason: str
    state: _types_pb2.RecoveryState
    attempts: int
    message: str
    def __init__(self, member: _Optional[str] = ..., node: _Optional[str] = ..., failure: _Optional[int] = ..., reason: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.RecoveryState, str]] = ..., attempts: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class CheckpointStatus(_message.Message):
    __slots__ = ("epoch", "version", "size_bytes", "sync_sequence", "written_at")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SYNC_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    version: int
    size_bytes: int
    sync_sequence: int
    written_at: _timestamp_pb2.Timestamp
    def __init__(self, epoch: _Optional[int] = ..., version: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sync_sequence: _Optional[int] = ..., written_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueueStatus(_message.Message):
    __slots__ = ("first_offset", "next_offset", "message_count", "size_bytes")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    next_offset: int
    message_count: int
    size_bytes: int
    def __init__(self, first_offset: _Optional[int] = ..., next_offset: _Optional[int] = ..., message_count: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("name", "address", "maintenance", "lease_age_seconds", "stopped")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    maintenance: bool
    lease_age_seconds: float
    stopped: bool
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., maintenance: _Optional[bool] = ..., lease_age_seconds: _Optional[float] = ..., stopped: _Optional[bool] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("coordinator", "groups", "nodes", "paused", "failsafe_lease_ms")
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    FAILSAFE_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    coordinator: CoordinatorInfo
    groups: _containers.RepeatedCompositeFieldContainer[GroupStatus]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    paused: bool
    failsafe_lease_ms: int
    def __init__(self, coordinator: _Optional[_Union[CoordinatorInfo, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[GroupStatus, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., paused: _Optional[bool] = ..., failsafe_lease_ms: _Optional[int] = ...) -> None: ...

class SwitchoverRequest(_message.Message):
    __slots__ = ("group", "to_member", "request_id", "wait_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    to_member: str
    request_id: str
    wait_ms: int
    def __init__(self, group: _Optional[str] = ..., to_member: _Optional[str] = ..., request_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class SwitchoverResponse(_message.Message):
    __slots__ = ("from_member", "to_member", "epoch", "completed", "serving", "vip_held", "has_vip")
    FROM_MEMBER_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    VIP_HELD_FIELD_NUMBER: _ClassVar[int]
    HAS_VIP_FIELD_NUMBER: _ClassVar[int]
    from_member: str
    to_member: str
    epoch: int
    completed: bool
    serving: bool
    vip_held: bool
    has_vip: bool
    def __init__(self, from_member: _Optional[str] = ..., to_member: _Optional[str] = ..., epoch: _Optional[int] = ..., completed: _Optional[bool] = ..., serving: _Optional[bool] = ..., vip_held: _Optional[bool] = ..., has_vip: _Optional[bool] = ...) -> None: ...

class SetMaintenanceRequest(_message.Message):
    __slots__ = ("node", "on", "request_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    on: bool
    request_id: str
    def __init__(self, node: _Optional[str] = ..., on: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetMaintenanceResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class GroupSpec(_message.Message):
    __slots__ = ("name", "mode", "vip")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    name: str
    mode: _types_pb2.GroupMode
    vip: str
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[_Union[_types_pb2.GroupMode, str]] = ..., vip: _Optional[str] = ...) -> None: ...

class ApplyGroupsRequest(_message.Message):
    __slots__ = ("groups", "request_id")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupSpec]
    request_id: str
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupSpec, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApplyGroupsResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "time", "kind", "group", "member", "node", "epoch", "reason", "actor")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    kind: str
    group: str
    member: str
    node: str
    epoch: int
    reason: str
    actor: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., group: _Optional[str] = ..., member: _Optional[str] = ..., node: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("after_seq",)
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    def __init__(self, after_seq: _Optional[int] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class SetPausedRequest(_message.Message):
    __slots__ = ("paused", "request_id")
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    request_id: str
    def __init__(self, paused: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetPausedResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class SetFailsafeRequest(_message.Message):
    __slots__ = ("lease_ms", "request_id")
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    lease_ms: int
    request_id: str
    def __init__(self, lease_ms: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetFailsafeResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class FailoverRequest(_message.Message):
    __slots__ = ("group", "to_member", "force", "request_id", "wait_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    to_member: str
    force: bool
    request_id: str
    wait_ms: int
    def __init__(self, group: _Optional[str] = ..., to_member: _Optional[str] = ..., force: _Optional[bool] = ..., request_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class FailoverResponse(_message.Message):
    __slots__ = ("from_member", "to_member", "epoch", "completed", "serving", "vip_held", "has_vip")
    FROM_MEMBER_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    VIP_HELD_FIELD_NUMBER: _ClassVar[int]
    HAS_VIP_FIELD_NUMBER: _ClassVar[int]
    from_member: str
    to_member: str
    epoch: int
    completed: bool
    serving: bool
    vip_held: bool
    has_vip: bool
    def __init__(self, from_member: _Optional[str] = ..., to_member: _Optional[str] = ..., epoch: _Optional[int] = ..., completed: _Optional[bool] = ..., serving: _Optional[bool] = ..., vip_held: _Optional[bool] = ..., has_vip: _Optional[bool] = ...) -> None: ...

class ResetMemberRequest(_message.Message):
    __slots__ = ("group", "member", "request_id")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    request_id: str
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResetMemberResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node", "force", "request_id", "wait_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    node: str
    force: bool
    request_id: str
    wait_ms: int
    def __init__(self, node: _Optional[str] = ..., force: _Optional[bool] = ..., request_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class RemoveNodeResponse(_message.Message):
    __slots__ = ("removed", "members", "pending")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    members: _containers.RepeatedScalarFieldContainer[str]
    pending: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[bool] = ..., members: _Optional[_Iterable[str]] = ..., pending: _Optional[_Iterable[str]] = ...) -> None: ...

class ReadmitNodeRequest(_message.Message):
    __slots__ = ("node", "request_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    request_id: str
    def __init__(self, node: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReadmitNodeResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class DeleteGroupRequest(_message.Message):
    __slots__ = ("group", "force", "request_id", "wait_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    force: bool
    request_id: str
    wait_ms: int
    def __init__(self, group: _Optional[str] = ..., force: _Optional[bool] = ..., request_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class DeleteGroupResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...
