"""Every reach into pysyncobj's private parts, in one module.

pysyncobj is pinned to exactly 0.3.17 because our hardening depends on its
internals; :func:`check_version` refuses anything else, so an upgrade fails
loudly here instead of silently losing a fix. Name-mangled attributes are
read as ``core._SyncObj__name``. pysyncobj's clock (``raft_clock``) is not
``time.monotonic()`` (they differ by a constant here), so deadlines inside
pysyncobj are always computed with it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pysyncobj.serializer as _serializer
import pysyncobj.syncobj as _so
import pysyncobj.tcp_connection as _tcp_connection
import pysyncobj.transport as _transport
from pysyncobj.journal import Journal
from pysyncobj.monotonic import monotonic as raft_clock
from pysyncobj.node import Node
from pysyncobj.version import VERSION

from .codec import PickleShim
from .crypto import WireKeys
from .errors import RaftError
from .legacy import legacy_command
from .snapshot import DurableSerializer
from .wire import WireConnection, WireServer

SUPPORTED_VERSION = "0.3.17"

FOLLOWER = _so._RAFT_STATE.FOLLOWER
CANDIDATE = _so._RAFT_STATE.CANDIDATE
LEADER = _so._RAFT_STATE.LEADER
ROLE_NAMES = {FOLLOWER: "follower", CANDIDATE: "candidate", LEADER: "leader"}

_BUILD_LOCK = threading.Lock()

T = TypeVar("T", bound=_so.SyncObj)


def check_version() -> None:
    """Refuse to run on a pysyncobj whose internals we have not reviewed."""
    if VERSION != SUPPORTED_VERSION:
        raise RaftError(f"vnfha.coordinator.raft needs pysyncobj {SUPPORTED_VERSION}, "
                        f"found {VERSION}: review coordinator/raft/internals.py first")
    for name in ("createJournal", "Serializer", "getEncryptor"):
        if not hasattr(_so, name):
            raise RaftError(f"pysyncobj.syncobj.{name} is missing; cannot install our journal")
    for module, name in ((_so, "pickle"), (_tcp_connection, "pickle"),
                         (_serializer, "pickle"), (_transport, "TcpConnection"),
                         (_transport, "TcpServer")):
        if not hasattr(module, name):
            raise RaftError(f"{module.__name__}.{name} is missing; cannot install our wire")


def install_wire() -> None:
    """Replace pickle and pysyncobj's sockets, process-wide and for good (idempotent).

    ``pysyncobj.syncobj`` pickles replicated commands into log entries and
    unpickles them when applying (also large-entry transmissions and
    membership/version commands); ``tcp_connection`` pickles every wire
    message. Swapping the ``pickle`` name those modules look up for
    :class:`codec.PickleShim` makes every one of those paths the plain-data
    codec, so there is no call left that could unpickle network bytes.
    ``TCPTransport`` builds its connections and listener from the names
    ``TcpConnection``/``TcpServer`` in its module; pointing them at wire.py
    gives authentication before decoding, bounded buffers and fair reads.
    This is process-wide on purpose: nothing in vnfha may use pysyncobj's
    pickle wire, and a per-node swap could not cover the apply path, which
    runs long after construction.
    """
    _so.pickle = PickleShim  # type: ignore[assignment]
    _tcp_connection.pickle = PickleShim  # type: ignore[attr-defined]
    _serializer.pickle = PickleShim  # type: ignore[assignment]
    _transport.TcpConnection = WireConnection  # type: ignore[misc,assignment]
    _transport.TcpServer = WireServer  # type: ignore[misc,assignment]


def construct(factory: Callable[[], T], journal: Journal,
              previous_secret: str | None = None) -> T:
    """Run ``factory`` (which calls ``SyncObj.__init__``) with our journal, serializer
    and wire keys (see crypto.py; ``previous_secret`` is accepted from peers too).

    ``createJournal``, ``Serializer`` and ``getEncryptor`` are module globals that
    ``SyncObj.__init__`` calls exactly once; we swap them for the duration of
    construction under a lock (several nodes may be built concurrently in one
    process) and restore them afterwards, so nothing else in the process is
    affected.
    """
    check_version()
    install_wire()
    install_log_filter()
    with _BUILD_LOCK:
        orig_journal, orig_serializer = _so.createJournal, _so.Serializer
        orig_encryptor = _so.getEncryptor

        def _create_journal(_path: str | None = None) -> Journal:
            return journal

        _so.createJournal = _create_journal
        _so.Serializer = DurableSerializer

        def _keys(password: str) -> WireKeys:
            return WireKeys(password, previous_secret)

        _so.getEncryptor = _keys
        try:
            core = factory()
        finally:
            _so.createJournal = orig_journal
            _so.Serializer = orig_serializer
            _so.getEncryptor = orig_encryptor
    # pysyncobj's tick thread exits when the thread that built it exits; tie it
    # to the main thread instead, so start() may be called from any thread.
    core._SyncObj__mainThread = threading.main_thread()  # type: ignore[attr-defined]
    return core


_REGULAR = _so._COMMAND_TYPE.REGULAR
_NO_OP = _so._COMMAND_TYPE.NO_OP
_BAD_ENTRY_LOG = threading.Lock()
_bad_entry_last = [-1e18]


def guard_apply(cls: type[T]) -> type[T]:
    """Make a log entry that is not one of our commands a no-op instead of a halt.

    Entries written before the codec change (pickled) are read by
    legacy.py's opcode check, never unpickled.

    pysyncobj applies an entry with ``__doApplyCommand``; if that raises (an
    entry that does not decode, names no replicated method, or is a
    membership/version command, which we never issue) it retries the same
    entry on every tick forever, so one bad entry from a peer holding the
    secret would stop every node. Every node sees the same bytes and takes
    the same decision, so skipping such an entry keeps the replicas equal.
    """
    original = cls._SyncObj__doApplyCommand  # type: ignore[attr-defined]

    def apply_command(self: Any, command: bytes) -> Any:
        kind = command[0] if command else None
        if kind == _REGULAR:
            try:
                if command[1:3] == b"\x80\x02":  # written before the codec (legacy.py)
                    legacy = legacy_command(bytes(command[1:]))
                    if legacy is None:
                        raise ValueError("not a vnfha command")
                    method_id, payload = legacy
                    return self._idToMethod[method_id](payload, _doApply=True)
                return original(self, command)
            except Exception as exc:  # any failure: the same no-op on every node
                _log_bad_entry(f"{type(exc).__name__}")
                return None
        if kind != _NO_OP:
            _log_bad_entry(f"command type {kind!r}")
        return None

    cls._SyncObj__doApplyCommand = apply_command  # type: ignore[attr-defined]
    return cls


def _log_bad_entry(reason: str) -> None:
    now = raft_clock()
    with _BAD_ENTRY_LOG:
        if now - _bad_entry_last[0] < 10.0:
            return
        _bad_entry_last[0] = now
    logging.getLogger(__name__).error(
        "raft log entry is not a vnfha command; applied as a no-op", extra={"reason": reason})


def raft_state(core: _so.SyncObj) -> int:
    return core._SyncObj__raftState  # type: ignore[attr-defined,no-any-return]


def is_leader(core: _so.SyncObj) -> bool:
    return raft_state(core) == LEADER


def leader_node(core: _so.SyncObj) -> Node | None:
    return core._getLeader()  # type: ignore[no-any-return]


def match_index(core: _so.SyncObj) -> dict[Node, int]:
    return core._SyncObj__raftMatchIndex  # type: ignore[attr-defined,no-any-return]


def next_index(core: _so.SyncObj) -> dict[Node, int]:
    return core._SyncObj__raftNextIndex  # type: ignore[attr-defined,no-any-return]


def connected_nodes(core: _so.SyncObj) -> set[Node]:
    return set(core._SyncObj__connectedNodes)  # type: ignore[attr-defined]


def journal(core: _so.SyncObj) -> Journal:
    return core._SyncObj__raftLog  # type: ignore[attr-defined,no-any-return]


def transport(core: _so.SyncObj) -> Any:
    return core._SyncObj__transport  # type: ignore[attr-defined]


def tick_thread(core: _so.SyncObj) -> threading.Thread | None:
    return core._SyncObj__thread  # type: ignore[attr-defined,no-any-return]


def force_compaction(core: _so.SyncObj) -> None:
    """Ask for a snapshot at the next tick, whatever pysyncobj's own triggers say."""
    core.forceLogCompaction()


def last_snapshot_entry(core: _so.SyncObj) -> int | None:
    """Index pysyncobj compacted the journal to after its last successful snapshot
    (the entry before the last applied one at the time); None before the first."""
    return core._SyncObj__lastSerializedEntry  # type: ignore[attr-defined,no-any-return]


def set_election_deadline(core: _so.SyncObj, delay: float) -> None:
    """Tests: next election in ``delay`` seconds (<= 0: at the next tick)."""
    core._SyncObj__raftElectionDeadline = raft_clock() + delay  # type: ignore[attr-defined]


def set_timing(core: _so.SyncObj, election_min: float, election_max: float,
               fallback: float) -> None:
    """The election timeouts and the leader fallback pysyncobj reads from its conf
    each time it draws a deadline (tick thread)."""
    conf = core._SyncObj__conf  # type: ignore[attr-defined]
    conf.raftMinTimeout = election_min
    conf.raftMaxTimeout = election_max
    conf.leaderFallbackTimeout = fallback


def step_down(core: _so.SyncObj) -> None:
    """Leader -> follower now (tick thread only), as pysyncobj does on losing its quorum.

    Runs ``onStateChanged`` (our lease and role hooks) through pysyncobj's own
    ``__setState``; the node stops sending heartbeats, so the others elect.
    """
    if is_leader(core):
        core._SyncObj__setState(FOLLOWER)  # type: ignore[attr-defined]
        core._SyncObj__raftLeader = None  # type: ignore[attr-defined]


def wake_tick(core: _so.SyncObj) -> None:
    """Make the tick thread's poll return now (pysyncobj's own wake-up pipe)."""
    notifier = getattr(core, "_SyncObj__pipeNotifier", None)
    if notifier is not None:
        try:
            notifier.notify()
        except (OSError, TypeError):
            pass  # pipe full (a wake-up is pending anyway) or already closed


def pull_election_deadline(core: _so.SyncObj, delay: float) -> None:
    """Start the next election within ``delay`` seconds (pysyncobj's own clock)."""
    deadline = raft_clock() + delay
    if core._SyncObj__raftElectionDeadline > deadline:  # type: ignore[attr-defined]
        core._SyncObj__raftElectionDeadline = deadline  # type: ignore[attr-defined]


def mark_transport_ready(tr: Any) -> None:
    """A transport that needs no listener (single node) is ready at once."""
    tr._ready = True
    tr._bindOverEvent.set()


def close_leftovers(core: _so.SyncObj) -> None:
    """Close the wake-up pipe pysyncobj's destroy() forgets (one fd pair per node)."""
    notifier = getattr(core, "_SyncObj__pipeNotifier", None)
    if notifier is None:
        return
    for name in ("_PipeNotifier__pipeR", "_PipeNotifier__pipeW"):
        fd = getattr(notifier, name, None)
        if isinstance(fd, int):
            try:
                os.close(fd)
            except OSError:
                pass
            setattr(notifier, name, None)


def wait_bound(core: _so.SyncObj, timeout: float) -> bool:
    """Wait until the TCP transport has bound its port (or given up); True if bound."""
    tr = transport(core)
    event = getattr(tr, "_bindOverEvent", None)
    if event is not None:
        event.wait(timeout)
    return bool(getattr(tr, "ready", False))


class _DropHarmlessTruncationWarning(logging.Filter):
    """pysyncobj logs CRITICAL "truncating already-applied log entries" before calling
    ``deleteEntriesFrom``; our journal ignores that call (it truncates only at a real
    conflict, see journal.py), so the message is a false alarm and would hide real ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        # "Failed to store full dump": logged every tick while a disk is full; our
        # serializer logs the cause once per back-off instead (log.py _serialize).
        return not (msg.startswith("truncating already-applied log entries")
                    or msg.startswith("Failed to store full dump"))


_FILTER = _DropHarmlessTruncationWarning()


def install_log_filter() -> None:
    """Idempotent: attach the filter to pysyncobj's logger."""
    lg = logging.getLogger(_so.__name__)
    if _FILTER not in lg.filters:
        lg.addFilter(_FILTER)
