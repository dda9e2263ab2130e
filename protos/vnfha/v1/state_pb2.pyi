from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueueMessage(_message.Message):
    __slots__ = ("offset", "epoch", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    epoch: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., epoch: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("group", "epoch", "data", "request_id")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: int
    data: bytes
    request_id: str
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[int] = ..., data: _Optional[bytes] = ..., request_id: _Optional[str] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("offset",)
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    offset: int
    def __init__(self, offset: _Optional[int] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("group", "from_offset", "max_messages", "min_epoch")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MIN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    group: str
    from_offset: int
    max_messages: int
    min_epoch: int
    def __init__(self, group: _Optional[str] = ..., from_offset: _Optional[int] = ..., max_messages: _Optional[int] = ..., min_epoch: _Optional[int] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ("messages", "next_offset", "first_offset")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[QueueMessage]
    next_offset: int
    first_offset: int
    def __init__(self, messages: _Optional[_Iterable[_Union[QueueMessage, _Mapping]]] = ..., next_offset: _Optional[int] = ..., first_offset: _Optional[int] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("epoch", "version", "data", "sync_sequence")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SYNC_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    version: int
    data: bytes
    sync_sequence: int
    def __init__(self, epoch: _Optional[int] = ..., version: _Optional[int] = ..., data: _Optional[bytes] = ..., sync_sequence: _Optional[int] = ...) -> None: ...

class PutCheckpointRequest(_message.Message):
    __slots__ = ("group", "epoch", "data", "sync_sequence", "request_id")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SYNC_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: int
    data: bytes
    sync_sequence: int
    request_id: str
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[int] = ..., data: _Optional[bytes] = ..., sync_sequence: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class PutCheckpointResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("group", "min_epoch")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MIN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    group: str
    min_epoch: int
    def __init__(self, group: _Optional[str] = ..., min_epoch: _Optional[int] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("found", "checkpoint", "group_epoch")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    GROUP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    found: bool
    checkpoint: Checkpoint
    group_epoch: int
    def __init__(self, found: _Optional[bool] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., group_epoch: _Optional[int] = ...) -> None: ...

class GetEpochRequest(_message.Message):
    __slots__ = ("group", "min_epoch")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MIN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    group: str
    min_epoch: int
    def __init__(self, group: _Optional[str] = ..., min_epoch: _Optional[int] = ...) -> None: ...

class GetEpochResponse(_message.Message):
    __slots__ = ("epoch", "active", "active_node")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_NODE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    active: str
    active_node: str
    def __init__(self, epoch: _Optional[int] = ..., active: _Optional[str] = ..., active_node: _Optional[str] = ...) -> None: ...
