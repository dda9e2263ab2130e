import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vnfha.v1 import types_pb2 as _types_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberRole(_message.Message):
    __slots__ = ("group", "member", "role", "epoch", "vip", "lease_remaining_ms", "lease_deadline", "healthy", "reason")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    LEASE_REMAINING_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    role: _types_pb2.Role
    epoch: int
    vip: str
    lease_remaining_ms: int
    lease_deadline: _timestamp_pb2.Timestamp
    healthy: bool
    reason: str
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., epoch: _Optional[int] = ..., vip: _Optional[str] = ..., lease_remaining_ms: _Optional[int] = ..., lease_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., healthy: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class GetRoleRequest(_message.Message):
    __slots__ = ("group", "member")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ...) -> None: ...

class GetRoleResponse(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: MemberRole
    def __init__(self, role: _Optional[_Union[MemberRole, _Mapping]] = ...) -> None: ...

class WatchRoleRequest(_message.Message):
    __slots__ = ("group", "member")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ...) -> None: ...

class WatchRoleResponse(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: MemberRole
    def __init__(self, role: _Optional[_Union[MemberRole, _Mapping]] = ...) -> None: ...
