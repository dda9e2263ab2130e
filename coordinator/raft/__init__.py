"""Replicated, durable log of JSON commands on a hardened pysyncobj (see log.py)."""

import socket as _socket

# pysyncobj 0.3.17's win_inet_pton module replaces socket.inet_ntop on every OS
# (an indentation slip) with a Windows-only version that fails for IPv6 on
# Linux. Import it once here and put the real function back before anything
# else can run with the broken one.
_real_inet_ntop = _socket.inet_ntop
import pysyncobj.win_inet_pton  # noqa: E402, F401  (imported for its side effect, undone)

_socket.inet_ntop = _real_inet_ntop

from .errors import (  # noqa: E402
    CommitTimeoutError,
    JournalError,
    NoLeaderError,
    RaftConfigError,
    RaftError,
    SnapshotError,
)
from .log import ReplicatedLog, StateMachine  # noqa: E402
from .settings import RaftSettings  # noqa: E402

__all__ = [
    "CommitTimeoutError",
    "JournalError",
    "NoLeaderError",
    "RaftConfigError",
    "RaftError",
    "RaftSettings",
    "ReplicatedLog",
    "SnapshotError",
    "StateMachine",
]
