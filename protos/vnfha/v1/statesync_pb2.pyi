from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncPosition(_message.Message):
    __slots__ = ("group", "epoch", "applied", "synced")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: int
    applied: int
    synced: bool
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[int] = ..., applied: _Optional[int] = ..., synced: _Optional[bool] = ...) -> None: ...

class ApplyUpdatesRequest(_message.Message):
    __slots__ = ("group", "epoch", "first_sequence", "entries")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: int
    first_sequence: int
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[int] = ..., first_sequence: _Optional[int] = ..., entries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ApplyUpdatesResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: SyncPosition
    def __init__(self, position: _Optional[_Union[SyncPosition, _Mapping]] = ...) -> None: ...

class InstallSnapshotRequest(_message.Message):
    __slots__ = ("group", "epoch", "sequence", "data")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: int
    sequence: int
    data: bytes
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[int] = ..., sequence: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class InstallSnapshotResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: SyncPosition
    def __init__(self, position: _Optional[_Union[SyncPosition, _Mapping]] = ...) -> None: ...

class GetPositionRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class GetPositionResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: SyncPosition
    def __init__(self, position: _Optional[_Union[SyncPosition, _Mapping]] = ...) -> None: ...
