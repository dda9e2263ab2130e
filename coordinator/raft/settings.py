"""Settings of one Raft node, validated when built (a bad value never reaches pysyncobj)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RaftConfigError
from .wire import MAX_COMMAND_BYTES

#: shortest accepted cluster secret, in bytes of its UTF-8 text
MIN_SECRET_BYTES = 32
SECRET_HINT = "make one with: head -c 32 /dev/urandom | base64"


def check_secret(what: str, secret: object) -> None:
    """The secret rule: a string of at least MIN_SECRET_BYTES bytes (UTF-8).

    The secret is used as text (its bytes feed PBKDF2), so its strength is
    its length in bytes; 44 characters of base64 over 32 random bytes pass,
    so do ``secrets.token_urlsafe(32)`` (43) and the Ansible role's 48
    random letters and digits.
    """
    if not isinstance(secret, str) or not secret:
        raise RaftConfigError(f"{what} must be a non-empty string")
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise RaftConfigError(f"{what} is {size} bytes, at least {MIN_SECRET_BYTES} are "
                              f"needed; {SECRET_HINT}")


def _check_address(what: str, address: object) -> None:
    if not isinstance(address, str) or ":" not in address:
        raise RaftConfigError(f"{what} must be 'host:port', got {address!r}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RaftConfigError(f"{what} must be 'host:port' with a port in 1..65535, "
                              f"got {address!r}")


def _positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or value <= 0:
        raise RaftConfigError(f"{name} must be a positive number, got {value!r}")


#: While its coordinator is overloaded, a node's election timeouts and leader fallback
#: are this many times the configured ones (`RaftSettings.timing`): 1.2-2.4 s and 2.4 s
#: at the defaults, above the 0.5-2.2 s its threads waited for CPU under
#: test_overload's budget, when votes came back after the timeout and no leader held.
OVERLOAD_TIMING_STRETCH = 4.0


@dataclass(frozen=True)
class RaftSettings:
    """Everything one node needs to join its cluster.

    Timing defaults (measured on a 2-core loopback host, see the raft
    benchmark): heartbeats every 50 ms, elections after 0.3-0.6 s of
    silence. Shorter timeouts made leaders flap under load; longer ones
    push leader-loss recovery past the 0.8 s budget.
    """

    self_address: str
    peers: tuple[str, ...]
    data_dir: Path
    #: cluster secret; required with peers (every frame is authenticated with it,
    #: see crypto.py); at least MIN_SECRET_BYTES bytes
    secret: str | None = field(default=None, repr=False)
    #: the secret before a rotation: frames under it are still accepted, never sent
    previous_secret: str | None = field(default=None, repr=False)
    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.6
    heartbeat_interval: float = 0.05
    compaction_min_entries: int = 10000
    #: also compact after this long, whatever the entry count (pysyncobj default 300 s)
    compaction_min_time: float = 300.0
    #: and once the applied part of the journal holds more bytes than this and than the
    #: last snapshot: a restart then replays at most about one snapshot's worth of
    #: journal (log.py, "Snapshots"), and snapshots cost at most one write per byte
    #: journaled
    compaction_min_bytes: int = 1 << 20
    #: on a graceful stop, write a snapshot first (bounded by this many seconds), so
    #: the next start loads one state instead of replaying the journal; 0 disables
    snapshot_on_stop_timeout: float = 5.0
    #: a leader that heard from no quorum for this long steps down (None = election_timeout_max)
    leader_fallback_timeout: float | None = None
    #: how often to retry a lost peer connection (pysyncobj's 5 s is slow after restarts)
    connection_retry: float = 0.5
    #: a connection with no traffic for this long is considered dead
    connection_timeout: float = 3.5
    #: upper bound of the tick thread's idle wait; bounds election-timer granularity
    tick_period: float = 0.02
    #: largest accepted JSON command
    max_command_bytes: int = 1 << 20
    #: after the leader's connection closes (its process died), elect within
    #: 20 ms..election_timeout_min/2 instead of a full timeout
    fast_election_on_disconnect: bool = True
    #: how long start() waits for the listening socket
    bind_timeout: float = 3.0
    #: a write error other than "no room" (EIO, EROFS, ...) that lasts this long is
    #: fatal (on_fatal); ENOSPC is retried for ever (diskfault.py)
    disk_fatal_after: float = 10.0
    #: after ENOSPC, persist again only once this much space is free
    disk_min_free_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        _check_address("self_address", self.self_address)
        if isinstance(self.peers, str) or not isinstance(self.peers, (tuple, list)):
            raise RaftConfigError(f"peers must be a tuple of 'host:port', got {self.peers!r}")
        object.__setattr__(self, "peers", tuple(self.peers))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for peer in self.peers:
            _check_address("peer", peer)
        if self.self_address in self.peers:
            raise RaftConfigError("peers must not contain self_address")
        if len(set(self.peers)) != len(self.peers):
            raise RaftConfigError(f"duplicate peer in {self.peers}")
        if self.secret is not None:
            check_secret("secret", self.secret)
        if self.previous_secret is not None:
            if self.secret is None:
                raise RaftConfigError("previous_secret needs a current secret")
            check_secret("previous_secret", self.previous_secret)
        if self.peers and self.secret is None:
            raise RaftConfigError(
                "a multi-node raft cluster needs a secret: without it anyone who reaches "
                f"the raft port could write to the replicated log; {SECRET_HINT}")
        for name in ("election_timeout_min", "election_timeout_max", "heartbeat_interval",
                     "compaction_min_time", "connection_retry", "connection_timeout",
                     "tick_period", "bind_timeout", "disk_fatal_after"):
            _positive(name, getattr(self, name))
        if self.leader_fallback_timeout is not None:
            _positive("leader_fallback_timeout", self.leader_fallback_timeout)
            if self.leader_fallback_timeout <= self.heartbeat_interval:
                raise RaftConfigError("leader_fallback_timeout must exceed heartbeat_interval")
        if self.election_timeout_max <= self.election_timeout_min:
            raise RaftConfigError("election_timeout_max must be greater than election_timeout_min")
        if self.election_timeout_min <= 3 * self.heartbeat_interval:
            raise RaftConfigError(
                "election_timeout_min must exceed 3 x heartbeat_interval, or followers start "
                "elections between two heartbeats")
        if self.connection_timeout < self.election_timeout_max:
            raise RaftConfigError("connection_timeout must be >= election_timeout_max")
        if not isinstance(self.compaction_min_entries, int) or self.compaction_min_entries < 10:
            raise RaftConfigError("compaction_min_entries must be an integer >= 10")
        if not isinstance(self.compaction_min_bytes, int) or self.compaction_min_bytes < 4096:
            raise RaftConfigError("compaction_min_bytes must be an integer >= 4096")
        if not isinstance(self.snapshot_on_stop_timeout, (int, float)) or \
                isinstance(self.snapshot_on_stop_timeout, bool) or \
                not 0 <= self.snapshot_on_stop_timeout <= 60:
            raise RaftConfigError("snapshot_on_stop_timeout must be a number in 0..60")
        if not isinstance(self.disk_min_free_bytes, int) or self.disk_min_free_bytes < 0:
            raise RaftConfigError("disk_min_free_bytes must be an integer >= 0")
        if not isinstance(self.max_command_bytes, int) or \
                not 64 <= self.max_command_bytes <= MAX_COMMAND_BYTES:
            raise RaftConfigError(f"max_command_bytes must be an integer in "
                                  f"64..{MAX_COMMAND_BYTES} (a command must fit a wire frame)")

    @property
    def fallback_timeout(self) -> float:
        """Effective leader step-down time (defaults to the longest election timeout)."""
        if self.leader_fallback_timeout is not None:
            return self.leader_fallback_timeout
        return self.election_timeout_max

    def timing(self, stretch: float = 1.0) -> tuple[float, float, float]:
        """(election timeout min, max, leader fallback) with every one `stretch` times
        as long (at least 1x). Why stretch them: while its coordinator is overloaded a
        node's threads wait seconds for CPU, and a vote's round trip outlasted the
        election timeout: terms rose by about two a second and the cluster went 7-70 s
        without a leader under test_overload's budget, deciding nothing (issue 14).
        Timeouts bound only how soon an election starts or a leader gives up; no
        safety rule uses them (log.py: the leader lease counts echoes, not time)."""
        k = max(1.0, stretch)
        return (self.election_timeout_min * k, self.election_timeout_max * k,
                self.fallback_timeout * k)

    @property
    def cluster_size(self) -> int:
        """Voting members, this node included."""
        return len(self.peers) + 1
