"""Errors raised by the replicated log.

Each one tells the caller what it may do next: a config error is fatal, a
missing leader means "nothing was sent, try again later", a commit timeout
means "the outcome is unknown, retry with the same rid".
"""

from __future__ import annotations


class RaftError(Exception):
    """Base class for every error of the replicated log."""


class RaftConfigError(RaftError):
    """Settings are unsafe or inconsistent; the node must not start."""


class NoLeaderError(RaftError):
    """No leader is known or reachable: the command was not handed to Raft."""


class CommitTimeoutError(RaftError):
    """The command may or may not be applied: retry with the same rid."""


class JournalError(RaftError):
    """The on-disk journal cannot honour a request without losing data."""


class SnapshotError(RaftError):
    """A snapshot file is unreadable or not ours."""
