from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RequestLeaseRequest(_message.Message):
    __slots__ = ("group", "member", "epoch")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    group: str
    member: str
    epoch: int
    def __init__(self, group: _Optional[str] = ..., member: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class RequestLeaseResponse(_message.Message):
    __slots__ = ("granted", "lease_ms", "reason")
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    lease_ms: int
    reason: str
    def __init__(self, granted: _Optional[bool] = ..., lease_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
