"""Replicated, durable log of JSON commands on a hardened pysyncobj (see log.py)."""

from .errors import (
    CommitTimeoutError,
    JournalError,
    NoLeaderError,
    RaftConfigError,
    RaftError,
    SnapshotError,
)
from .log import ReplicatedLog, StateMachine
from .settings import RaftSettings

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
