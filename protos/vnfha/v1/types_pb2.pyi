from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Health(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_UNSPECIFIED: _ClassVar[Health]
    HEALTH_UNKNOWN: _ClassVar[Health]
    HEALTH_HEALTHY: _ClassVar[Health]
    HEALTH_UNHEALTHY: _ClassVar[Health]
    HEALTH_LOST: _ClassVar[Health]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_ACTIVE: _ClassVar[Role]
    ROLE_STANDBY: _ClassVar[Role]

class GroupMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_MODE_UNSPECIFIED: _ClassVar[GroupMode]
    GROUP_MODE_ACTIVE_STANDBY: _ClassVar[GroupMode]
    GROUP_MODE_ACTIVE_ACTIVE: _ClassVar[GroupMode]

class RecoveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOVERY_STATE_UNSPECIFIED: _ClassVar[RecoveryState]
    RECOVERY_STATE_AWAITING_LB: _ClassVar[RecoveryState]
    RECOVERY_STATE_REQUESTED: _ClassVar[RecoveryState]
    RECOVERY_STATE_SUCCEEDED: _ClassVar[RecoveryState]
    RECOVERY_STATE_GAVE_UP: _ClassVar[RecoveryState]
    RECOVERY_STATE_CANCELLED: _ClassVar[RecoveryState]
HEALTH_UNSPECIFIED: Health
HEALTH_UNKNOWN: Health
HEALTH_HEALTHY: Health
HEALTH_UNHEALTHY: Health
HEALTH_LOST: Health
ROLE_UNSPECIFIED: Role
ROLE_ACTIVE: Role
ROLE_STANDBY: Role
GROUP_MODE_UNSPECIFIED: GroupMode
GROUP_MODE_ACTIVE_STANDBY: GroupMode
GROUP_MODE_ACTIVE_ACTIVE: GroupMode
RECOVERY_STATE_UNSPECIFIED: RecoveryState
RECOVERY_STATE_AWAITING_LB: RecoveryState
RECOVERY_STATE_REQUESTED: RecoveryState
RECOVERY_STATE_SUCCEEDED: RecoveryState
RECOVERY_STATE_GAVE_UP: RecoveryState
RECOVERY_STATE_CANCELLED: RecoveryState
