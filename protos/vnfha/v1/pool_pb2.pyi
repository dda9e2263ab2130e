from vnfha.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchPoolRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class PoolMember(_message.Message):
    __slots__ = ("member", "node", "address", "in_service", "health")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IN_SERVICE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    member: str
    node: str
    address: str
    in_service: bool
    health: _types_pb2.Health
    def __init__(self, member: _Optional[str] = ..., node: _Optional[str] = ..., address: _Optional[str] = ..., in_service: _Optional[bool] = ..., health: _Optional[_Union[_types_pb2.Health, str]] = ...) -> None: ...

class WatchPoolResponse(_message.Message):
    __slots__ = ("revision", "group", "pool_version", "members")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    POOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    group: str
    pool_version: int
    members: _containers.RepeatedCompositeFieldContainer[PoolMember]
    def __init__(self, revision: _Optional[int] = ..., group: _Optional[str] = ..., pool_version: _Optional[int] = ..., members: _Optional[_Iterable[_Union[PoolMember, _Mapping]]] = ...) -> None: ...

class ServerHealth(_message.Message):
    __slots__ = ("member", "health", "detail")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    member: str
    health: _types_pb2.Health
    detail: str
    def __init__(self, member: _Optional[str] = ..., health: _Optional[_Union[_types_pb2.Health, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ReportPoolAppliedRequest(_message.Message):
    __slots__ = ("group", "node", "pool_version", "servers")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    POOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    group: str
    node: str
    pool_version: int
    servers: _containers.RepeatedCompositeFieldContainer[ServerHealth]
    def __init__(self, group: _Optional[str] = ..., node: _Optional[str] = ..., pool_version: _Optional[int] = ..., servers: _Optional[_Iterable[_Union[ServerHealth, _Mapping]]] = ...) -> None: ...

class ReportPoolAppliedResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...
