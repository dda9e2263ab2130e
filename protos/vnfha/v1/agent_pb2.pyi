from vnfha.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeepaliveResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEEPALIVE_RESULT_UNSPECIFIED: _ClassVar[KeepaliveResult]
    KEEPALIVE_RESULT_ACK: _ClassVar[KeepaliveResult]
    KEEPALIVE_RESULT_UNKNOWN_NODE: _ClassVar[KeepaliveResult]
    KEEPALIVE_RESULT_INVALID: _ClassVar[KeepaliveResult]
    KEEPALIVE_RESULT_UNAVAILABLE: _ClassVar[KeepaliveResult]
KEEPALIVE_RESULT_UNSPECIFIED: KeepaliveResult
KEEPALIVE_RESULT_ACK: KeepaliveResult
KEEPALIVE_RESULT_UNKNOWN_NODE: KeepaliveResult
KEEPALIVE_RESULT_INVALID: KeepaliveResult
KEEPALIVE_RESULT_UNAVAILABLE: KeepaliveResult

class MemberSpec(_message.Message):
    __slots__ = ("group", "member", "priority")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    priority: int
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("node", "address", "members", "request_id", "remove_undeclared", "failsafe_endpoint")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVE_UNDECLARED_FIELD_NUMBER: _ClassVar[int]
    FAILSAFE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    node: str
    address: str
    members: _containers.RepeatedCompositeFieldContainer[MemberSpec]
    request_id: str
    remove_undeclared: bool
    failsafe_endpoint: str
    def __init__(self, node: _Optional[str] = ..., address: _Optional[str] = ..., members: _Optional[_Iterable[_Union[MemberSpec, _Mapping]]] = ..., request_id: _Optional[str] = ..., remove_undeclared: _Optional[bool] = ..., failsafe_endpoint: _Optional[str] = ...) -> None: ...

class RegisterNodeResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class MemberReport(_message.Message):
    __slots__ = ("group", "member", "health", "seen_epoch", "active_epoch", "vip_held")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    SEEN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    VIP_HELD_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    health: _types_pb2.Health
    seen_epoch: int
    active_epoch: int
    vip_held: bool
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., health: _Optional[_Union[_types_pb2.Health, str]] = ..., seen_epoch: _Optional[int] = ..., active_epoch: _Optional[int] = ..., vip_held: _Optional[bool] = ...) -> None: ...

class KeepaliveRequest(_message.Message):
    __slots__ = ("node", "seq", "members", "generation", "leased")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    node: str
    seq: int
    members: _containers.RepeatedCompositeFieldContainer[MemberReport]
    generation: int
    leased: bool
    def __init__(self, node: _Optional[str] = ..., seq: _Optional[int] = ..., members: _Optional[_Iterable[_Union[MemberReport, _Mapping]]] = ..., generation: _Optional[int] = ..., leased: _Optional[bool] = ...) -> None: ...

class KeepaliveResponse(_message.Message):
    __slots__ = ("seq", "result", "ttl_ms", "message", "revision", "coordinator_id", "cluster_members", "answer_every_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_EVERY_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    result: KeepaliveResult
    ttl_ms: int
    message: str
    revision: int
    coordinator_id: str
    cluster_members: _containers.RepeatedScalarFieldContainer[str]
    answer_every_ms: int
    def __init__(self, seq: _Optional[int] = ..., result: _Optional[_Union[KeepaliveResult, str]] = ..., ttl_ms: _Optional[int] = ..., message: _Optional[str] = ..., revision: _Optional[int] = ..., coordinator_id: _Optional[str] = ..., cluster_members: _Optional[_Iterable[str]] = ..., answer_every_ms: _Optional[int] = ...) -> None: ...

class WatchAssignmentsRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("group", "member", "role", "epoch", "vip", "mode", "failsafe_lease_ms", "peers", "generation")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FAILSAFE_LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    role: _types_pb2.Role
    epoch: int
    vip: str
    mode: _types_pb2.GroupMode
    failsafe_lease_ms: int
    peers: _containers.RepeatedCompositeFieldContainer[FailsafePeer]
    generation: int
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., epoch: _Optional[int] = ..., vip: _Optional[str] = ..., mode: _Optional[_Union[_types_pb2.GroupMode, str]] = ..., failsafe_lease_ms: _Optional[int] = ..., peers: _Optional[_Iterable[_Union[FailsafePeer, _Mapping]]] = ..., generation: _Optional[int] = ...) -> None: ...

class FailsafePeer(_message.Message):
    __slots__ = ("member", "node", "endpoint", "active")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    member: str
    node: str
    endpoint: str
    active: bool
    def __init__(self, member: _Optional[str] = ..., node: _Optional[str] = ..., endpoint: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class WatchAssignmentsResponse(_message.Message):
    __slots__ = ("revision", "assignments")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, revision: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("node", "request_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    request_id: str
    def __init__(self, node: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Handover(_message.Message):
    __slots__ = ("group", "member", "to_member", "epoch")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    to_member: str
    epoch: int
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., to_member: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("handovers",)
    HANDOVERS_FIELD_NUMBER: _ClassVar[int]
    handovers: _containers.RepeatedCompositeFieldContainer[Handover]
    def __init__(self, handovers: _Optional[_Iterable[_Union[Handover, _Mapping]]] = ...) -> None: ...

class OpenFastPathRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class OpenFastPathResponse(_message.Message):
    __slots__ = ("key_id", "key", "port", "max_datagram", "coordinator_id")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    MAX_DATAGRAM_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: bytes
    key: bytes
    port: int
    max_datagram: int
    coordinator_id: str
    def __init__(self, key_id: _Optional[bytes] = ..., key: _Optional[bytes] = ..., port: _Optional[int] = ..., max_datagram: _Optional[int] = ..., coordinator_id: _Optional[str] = ...) -> None: ...
