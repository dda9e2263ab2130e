"""A replicated, durable log of plain JSON commands on pysyncobj 0.3.17.

Contract for the store built on it:

* :meth:`ReplicatedLog.submit` returns only after the command was committed
  by a majority **and applied on this node**; the value is the state
  machine's result. It never reports a false success. ``NoLeaderError``
  means nothing was handed to Raft; ``CommitTimeoutError`` means the
  outcome is unknown: retry with the *same* ``rid`` (the state machine
  dedups by rid, so a command applied twice has effect once).
* Every command is applied in log order on every node, exactly once per
  log entry, and reported to ``on_applied(command, result)`` in that order.
  When a node catches up from a snapshot instead, ``on_restored(index)``
  is called after the state machine was restored.
* The applied state never goes backwards on a node, not across restarts.
* ``quorum_contact()`` is the leader lease (see ``transport.LeaseTracker``):
  a leader may promise something about time ``t`` only if
  ``quorum_contact() >= t``.

Durability (hazards of stock pysyncobj, each fixed here): journal and meta
are fsynced (``journal.py``), nothing leaves the node before the journal is
synced (``transport.py``), snapshots are JSON written with fsync and never
make the node discard committed entries (``_deserialize`` below), and log
compaction never forks.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.config import FAIL_REASON

from . import internals
from .diskfault import FaultPolicy, RateLimit, retry_delay
from .errors import (
    CommitTimeoutError,
    JournalError,
    NoLeaderError,
    RaftConfigError,
    RaftError,
    SnapshotError,
)
from .fsutil import fsync_dir, fsync_file
from .guard import DiskGuard
from .journal import DurableJournal
from .priority import raise_calling_thread
from .settings import RaftSettings
from .snapshot import Snapshot, read_snapshot_file, write_snapshot_file
from .transport import HardenedTCPTransport, LeaseTracker

logger = logging.getLogger(__name__)

__all__ = [
    "CommitTimeoutError",
    "NoLeaderError",
    "RaftConfigError",
    "RaftError",
    "RaftSettings",
    "ReplicatedLog",
    "StateMachine",
]

SNAPSHOT_FILE = "snapshot.json"
_MIN_RESEND = 0.02
_MAX_RESEND = 0.25
_POLL = 0.02
#: a size-triggered snapshot that has not completed after this long is asked for again
#: (a failed write backs off in _serialize)
_FORCE_RETRY = 2.0
#: a stop writes no snapshot while the journal holds under 1/this of the newest one:
#: replaying a byte of journal costs ~6x loading a byte of snapshot (issue 14)
_STOP_SNAPSHOT_RATIO = 6

R = TypeVar("R")


class StateMachine(Protocol):
    """What the log drives. Must be deterministic: every node applies the same commands."""

    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply one command; never raise for bad input (return an error dict)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """Full JSON-able state."""
        ...

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the whole state with a snapshot."""
        ...


class _Waiter:
    """One submit() waiting for its rid to be applied here."""

    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: dict[str, Any] | None = None


class _Attempt:
    """One hand-over of the command to pysyncobj; only its failure is trusted, as a hint."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed = False

    def done(self, _result: Any, error: int) -> None:
        if error != FAIL_REASON.SUCCESS:
            self.failed = True


@internals.guard_apply
class _RaftCore(SyncObj):  # type: ignore[misc]
    """pysyncobj's SyncObj with a single replicated method that carries JSON bytes."""

    def __init__(self, owner: ReplicatedLog, conf: SyncObjConf) -> None:
        # Read by HardenedTCPTransport during SyncObj.__init__.
        self._vnfha_owner = owner
        self._vnfha_journal = owner._journal
        self._vnfha_lease = owner._lease
        self._vnfha_guard = owner._guard
        settings = owner.settings
        self._vnfha_fast_election = settings.fast_election_on_disconnect
        self._vnfha_stretch = 1.0  # before the tick thread starts (SyncObj.__init__)
        super().__init__(settings.self_address, list(settings.peers), conf,
                         transportClass=HardenedTCPTransport)
        self.addOnTickCallback(self._vnfha_compaction_check)
        self._vnfha_raised = False
        self.addOnTickCallback(self._vnfha_raise_once)

    def _vnfha_compaction_check(self) -> None:
        self._vnfha_owner._maybe_compact(self)

    def _onTick(self, timeToWait: float = 0.0) -> None:  # pysyncobj API name
        """Read what has arrived before pysyncobj judges the election deadline.

        pysyncobj checks the deadline at the start of a tick and reads its sockets
        at the end. A tick thread descheduled in between (a CPU budget, a GIL held
        by a starved thread: issue 14) came back with the leader's heartbeats
        waiting unread, found the deadline passed and started an election that
        deposed a live leader. The observer's lag is not the leader's silence:
        a poll without waiting first hands those heartbeats over. Safe: it only
        moves reads earlier; the election rule itself is unchanged.
        """
        if self._poller is not None and internals.transport(self).ready:
            self._poller.poll(0)
        self._vnfha_stretch_timing()
        super()._onTick(timeToWait)

    def _vnfha_stretch_timing(self) -> None:
        """Apply the owner's `timing_stretch` (settings.RaftSettings.timing) when it
        changed; a new stretch shows in the next deadline drawn (a heartbeat received,
        an election started)."""
        owner = self._vnfha_owner
        try:
            k = max(1.0, float(owner.timing_stretch()))
        except Exception:  # a broken hook must not stop the tick thread
            k = 1.0
        if k != self._vnfha_stretch:
            self._vnfha_stretch = k
            internals.set_timing(self, *owner.settings.timing(k))

    def _vnfha_raise_once(self) -> None:
        """On the first tick, from the tick thread itself (priority.py)."""
        if not self._vnfha_raised:
            self._vnfha_raised = True
            raise_calling_thread()

    @replicated
    def vnfha_apply(self, payload: bytes) -> Any:
        return self._vnfha_owner._apply_entry(self, payload)


class ReplicatedLog:
    """One Raft node: replicates JSON commands and applies them to a state machine."""

    def __init__(
        self,
        settings: RaftSettings,
        state_machine: StateMachine,
        on_role_change: Callable[[bool], None] | None = None,
        on_applied: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        on_restored: Callable[[int], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(settings, RaftSettings):
            raise RaftConfigError("settings must be a RaftSettings")
        self.settings = settings
        self._sm = state_machine
        self._on_role_change = on_role_change
        self._on_applied = on_applied
        self._on_restored = on_restored
        self._on_fatal = on_fatal
        self._guard: DiskGuard | None = None
        self._read_floor = 0  # see catching_up()
        self._snap_failures = 0
        self._snap_retry_at = 0.0
        self._snap_log = RateLimit()
        self._snap_bytes = 0  # size of the newest snapshot written or loaded
        #: the last size-triggered request: when, and the snapshot index it found
        self._snap_forced: tuple[float, int | None] = (-1e9, None)
        self._start_snap: tuple[tuple[int, int, int], Snapshot] | None = None
        self._sm_lock = threading.RLock()
        self._sm_index = 0  # highest log index the state machine reflects
        self._waiters_lock = threading.Lock()
        self._waiters: dict[str, list[_Waiter]] = {}
        self._lease = LeaseTracker(set(settings.peers))
        self._leader_since: float | None = None
        self._lifecycle = threading.Lock()
        self._state = "new"
        self._core: _RaftCore | None = None
        self._journal: DurableJournal | None = None
        self._dump_path = Path(settings.data_dir) / SNAPSHOT_FILE
        #: how many times the configured election timeouts and leader fallback apply
        #: now (tick thread, each tick): the coordinator sets it while overloaded
        self.timing_stretch: Callable[[], float] = lambda: 1.0

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Open the journal, restore the snapshot, bind the port and join the cluster."""
        with self._lifecycle:
            if self._state != "new":
                raise RaftError(f"cannot start a log that is {self._state}")
            s = self.settings
            s.data_dir.mkdir(parents=True, exist_ok=True)
            self._journal = DurableJournal(s.data_dir)
            self._read_floor = self._journal.last_index or 0
            self._guard = DiskGuard(
                self._journal, FaultPolicy(fatal_after=s.disk_fatal_after),
                min_free=s.disk_min_free_bytes, hold_off=2 * s.election_timeout_max,
                on_fatal=self._on_fatal)
            try:
                self._load_snapshot_at_start()
                conf = SyncObjConf(
                    password=s.secret,
                    # without this pysyncobj listens on every interface
                    bindAddress=s.self_address,
                    autoTick=True,
                    autoTickPeriod=s.tick_period,
                    raftMinTimeout=s.election_timeout_min,
                    raftMaxTimeout=s.election_timeout_max,
                    appendEntriesPeriod=s.heartbeat_interval,
                    appendEntriesUseBatch=False,
                    connectionTimeout=s.connection_timeout,
                    connectionRetryTime=s.connection_retry,
                    leaderFallbackTimeout=s.fallback_timeout,
                    logCompactionMinEntries=s.compaction_min_entries,
                    logCompactionMinTime=s.compaction_min_time,
                    fullDumpFile=str(self._dump_path),
                    journalFile=str(self._journal.path),
                    serializer=self._serialize,
                    deserializer=self._deserialize,
                    onStateChanged=self._on_state_changed,
                    commandsWaitLeader=False,
                    dynamicMembershipChange=False,
                    bindRetryTime=0.2,
                    maxBindRetries=max(1, int(s.bind_timeout / 0.2)),
                )
                self._core = internals.construct(lambda: _RaftCore(self, conf), self._journal,
                                                 previous_secret=s.previous_secret)
            except BaseException:
                self._journal.close()
                raise
            self._state = "running"
        if not internals.wait_bound(self._core, s.bind_timeout + 1.0):
            self.stop()
            raise RaftError(f"cannot listen on {s.self_address}")

    def stop(self) -> None:
        """Leave the cluster: stop the tick thread, close sockets and files, fail waiters."""
        with self._lifecycle:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
            core = self._core
        assert core is not None
        thread = internals.tick_thread(core)
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._snapshot_before_stop(core)
        if thread is threading.current_thread():
            # Called from one of our hooks: the tick thread tears itself down
            # after this tick; it cannot join itself.
            core.destroy()
        else:
            if thread is not None and thread.is_alive():
                core.destroy()
                thread.join(timeout=10.0)
                if thread.is_alive():
                    logger.error("raft tick thread did not stop within 10 s")
            else:
                core._doDestroy()
            internals.close_leftovers(core)
            if self._journal is not None:
                self._journal.close()
        was_leader = self._leader_since is not None
        self._leader_since = None
        self._lease.stop_term()
        with self._waiters_lock:
            waiters = [w for ws in self._waiters.values() for w in ws]
        for w in waiters:
            w.event.set()  # result stays None: submit() reports "outcome unknown"
        if was_leader:
            self._notify_role(False)

    def __enter__(self) -> ReplicatedLog:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- submit
    def submit(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Replicate ``command`` and return its result once applied on this node.

        pysyncobj's own outcome callbacks are not trusted (they can be lost,
        or say LEADER_CHANGED for a write that did commit): we wait for the
        command's rid to come out of the apply path. A failure callback or a
        leader/term change only makes us hand the command over again; the
        state machine dedups the copies by rid.
        """
        if not isinstance(command, dict):
            raise TypeError("command must be a dict")
        rid = command.get("rid")
        if not isinstance(rid, str) or not rid:
            raise ValueError("command['rid'] must be a non-empty string")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        payload = json.dumps(command, sort_keys=True, separators=(",", ":"),
                             allow_nan=False).encode()
        if len(payload) > self.settings.max_command_bytes:
            raise ValueError(f"command is {len(payload)} bytes, limit "
                             f"{self.settings.max_command_bytes}")
        core = self._running_core()
        if internals.leader_node(core) is None:
            raise NoLeaderError("no raft leader known")
        deadline = time.monotonic() + timeout
        waiter = _Waiter()
        with self._waiters_lock:
            self._waiters.setdefault(rid, []).append(waiter)
        attempt: _Attempt | None = None
        sent_to: tuple[Any, int] | None = None
        last_send = -1e9
        resend_gap = _MIN_RESEND
        try:
            while True:
                now = time.monotonic()
                leader = internals.leader_node(core)
                where = (leader, core.raftCurrentTerm)
                stale = attempt is None or attempt.failed or where != sent_to
                if stale and leader is not None and now - last_send >= resend_gap:
                    if attempt is not None:
                        resend_gap = min(resend_gap * 2, _MAX_RESEND)
                    attempt = _Attempt()
                    sent_to, last_send = where, now
                    core.vnfha_apply(payload, callback=attempt.done)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if waiter.event.wait(min(remaining, _POLL)):
                    if waiter.result is not None:
                        return waiter.result
                    break  # stopped while waiting
        finally:
            with self._waiters_lock:
                lst = self._waiters.get(rid)
                if lst is not None:
                    if waiter in lst:
                        lst.remove(waiter)
                    if not lst:
                        del self._waiters[rid]
        if attempt is None:
            raise NoLeaderError("no raft leader became known before the timeout")
        raise CommitTimeoutError(f"command {rid!r} not applied within {timeout} s; "
                                 "outcome unknown, retry with the same rid")

    # ------------------------------------------------------------- queries
    def is_leader(self) -> bool:
        core = self._core
        return (self._state == "running" and core is not None
                and self._leader_since is not None and internals.is_leader(core))

    def leader_address(self) -> str | None:
        core = self._core
        if self._state != "running" or core is None:
            return None
        node = internals.leader_node(core)
        return None if node is None else str(node.id)

    def leader_since(self) -> float | None:
        """``time.monotonic()`` when this node last became leader; None if not leader."""
        since = self._leader_since
        return since if self.is_leader() else None

    def quorum_contact(self) -> float | None:
        """Leader lease: latest time a majority is known to have still followed us.

        ``None`` if not leader. A single-node cluster returns now. See
        ``transport.LeaseTracker`` for why a newer leader cannot have been
        elected before the returned time.
        """
        if not self.is_leader():
            return None
        return self._lease.quorum_contact(time.monotonic())

    def applied_index(self) -> int:
        """Highest log index this node's state reflects (a snapshot restored at start
        counts before pysyncobj's first tick has caught up with it)."""
        core = self._core
        return 0 if core is None else max(int(core.raftLastApplied), self._sm_index)

    def persist_fault(self) -> str | None:
        """Why this node cannot persist right now (errno, path), or None if it can.

        While this is set the node acknowledges nothing, leads nothing and
        stands in no election (guard.py)."""
        guard = self._guard
        return None if guard is None else guard.reason()

    def catching_up(self) -> str | None:
        """Why reads here could be older than what this node served before it
        restarted, or None once they cannot be.

        The floor is the journal's last index at start: everything this node
        ever applied (and so served) was in its journal, synced, before it was
        applied (transport.py syncs before the reply that lets it commit). An
        uncommitted tail is cut at a conflict, which lowers the floor below the
        cut (such entries were never applied). Once reached, the floor is
        dropped: applied state never goes backwards afterwards.
        """
        floor = self._read_floor
        if floor <= 0:
            return None
        journal = self._journal
        cut = None if journal is None else journal.lowest_truncation
        if cut is not None:
            floor = min(floor, cut - 1)
        with self._sm_lock:
            applied = max(self.applied_index(), self._sm_index)
        if applied >= floor:
            self._read_floor = 0
            return None
        return f"catching up: applied {applied} < {floor} served before restart"

    def status(self) -> dict[str, Any]:
        """Debug/health view of this node."""
        core = self._core
        journal = self._journal
        base: dict[str, Any] = {"self": self.settings.self_address, "state": self._state}
        if core is None or journal is None:
            return base
        qc = self.quorum_contact()
        base.update(
            term=int(core.raftCurrentTerm),
            role=internals.ROLE_NAMES.get(internals.raft_state(core), "unknown"),
            leader=self.leader_address(),
            commit_index=int(core.raftCommitIndex),
            last_applied=int(core.raftLastApplied),
            peers=list(self.settings.peers),
            peers_connected=sorted(str(n.id) for n in internals.connected_nodes(core)),
            log_size=len(journal),
            log_first_index=journal.first_index,
            log_last_index=journal.last_index,
            journal_syncs=journal.syncs,
            journal_faults=journal.faults,
            persist_fault=self.persist_fault(),
            catching_up=self.catching_up(),
            quorum_contact_age=None if qc is None else time.monotonic() - qc,
        )
        return base

    def read(self, fn: Callable[[StateMachine], R]) -> R:
        """Run ``fn(state_machine)`` while no command is being applied."""
        with self._sm_lock:
            return fn(self._sm)

    # ------------------------------------------------------------ internals
    def _running_core(self) -> _RaftCore:
        core = self._core
        if self._state != "running" or core is None:
            raise RaftError(f"replicated log is {self._state}")
        return core

    def _apply_entry(self, core: _RaftCore, payload: bytes) -> dict[str, Any] | None:
        """Apply path (tick thread): state machine, then waiters, then on_applied."""
        idx = core.raftLastApplied + 1
        if idx <= self._sm_index:
            return None  # already reflected by the restored snapshot
        try:
            command = json.loads(payload)
        except (ValueError, TypeError):
            command = None
        with self._sm_lock:
            if not isinstance(command, dict):
                result: dict[str, Any] = {"error": "bad_command", "detail": "not a JSON object"}
                command = {}
            else:
                try:
                    result = self._sm.apply(command)
                except Exception as exc:  # the contract says never; keep the node alive
                    logger.critical("state machine raised on index %d: %r", idx, exc)
                    result = {"error": "apply_failed", "detail": repr(exc)}
            self._sm_index = idx
        rid = command.get("rid")
        if isinstance(rid, str):
            with self._waiters_lock:
                waiters = self._waiters.pop(rid, [])
            for w in waiters:
                w.result = result
                w.event.set()
        if self._on_applied is not None:
            try:
                self._on_applied(command, result)
            except Exception:
                logger.exception("on_applied hook failed")
        return result

    def _on_state_changed(self, old: int, new: int) -> None:
        was, now = old == internals.LEADER, new == internals.LEADER
        if now and not was:
            since = time.monotonic()
            self._lease.start_term(since)
            self._leader_since = since
        elif was and not now:
            self._leader_since = None
            self._lease.stop_term()
        if was != now:
            self._notify_role(now)

    def _notify_role(self, leader: bool) -> None:
        if self._on_role_change is None:
            return
        try:
            self._on_role_change(leader)
        except Exception:
            logger.exception("on_role_change hook failed")

    # ------------------------------------------------------------ snapshots
    #
    # When a snapshot is taken (pysyncobj compacts through our serializer):
    # * pysyncobj's triggers: compaction_min_entries entries, or compaction_min_time;
    # * size: once the applied part of the journal holds more bytes than
    #   compaction_min_bytes and than the newest snapshot (_maybe_compact). Replaying a
    #   journal costs more CPU per byte than loading a snapshot (issue 14: ~0.3 us/B
    #   against ~0.05 us/B at 5,000 groups), so a crash restart replays at most about
    #   one snapshot's worth of journal, and snapshots write at most one byte per
    #   byte journaled;
    # * a graceful stop (_snapshot_before_stop): the next start loads one state and
    #   replays ~nothing.
    # Every one goes through the same path: temp file, fsync, rename, directory fsync,
    # and only then is the journal's front dropped (journal.deleteEntriesTo), so a
    # crash at any point leaves either the old snapshot with the whole journal or the
    # new snapshot with a journal whose front it covers (_align_journal).
    def _maybe_compact(self, core: _RaftCore) -> None:
        """Tick callback: ask for a snapshot once the journal outgrew the last one."""
        journal = self._journal
        if journal is None or journal.fault is not None:
            return
        now = time.monotonic()
        last = internals.last_snapshot_entry(core)
        forced_at, forced_after = self._snap_forced
        if last == forced_after and now - forced_at < _FORCE_RETRY:
            return  # the one asked for is under way (it takes two ticks)
        limit = max(self.settings.compaction_min_bytes, self._snap_bytes)
        if journal.bytes_through(int(core.raftLastApplied)) > limit:
            self._snap_forced = (now, last)
            internals.force_compaction(core)

    def _snapshot_before_stop(self, core: _RaftCore) -> None:
        """Graceful stop: snapshot what is applied, so the next start loads it instead of
        replaying the journal. Bounded; without it the next start replays, as after a
        crash, so a failure here costs time, never data."""
        timeout = self.settings.snapshot_on_stop_timeout
        journal = self._journal
        if timeout <= 0 or journal is None or journal.fault is not None \
                or time.monotonic() < self._snap_retry_at:
            return  # no timeout, or the disk failed: a write would not get through
        target = int(core.raftLastApplied) - 1  # what pysyncobj would compact to
        done = internals.last_snapshot_entry(core)
        first = journal.first_index
        if target < 2 or first is None or first >= target or (done is not None
                                                              and done >= target):
            return  # the journal holds nothing a snapshot would save replaying
        if journal.bytes_through(target + 1) * _STOP_SNAPSHOT_RATIO < self._snap_bytes:
            return  # replaying this little costs less than loading a new snapshot would
        t0 = time.monotonic()
        failures = self._snap_failures
        internals.force_compaction(core)
        internals.wake_tick(core)
        while time.monotonic() - t0 < timeout and self._snap_failures == failures:
            done = internals.last_snapshot_entry(core)
            if done is not None and done >= target:
                logger.info("raft: snapshot written at stop", extra={
                    "index": done, "bytes": self._snap_bytes,
                    "seconds": round(time.monotonic() - t0, 3)})
                return
            time.sleep(0.005)
        logger.warning("raft: no snapshot written at stop (%s); the next start replays "
                       "the journal", "write failed" if self._snap_failures != failures
                       else f"not done within {timeout:.1f} s")

    def _serialize(self, path: str, data: tuple[Any, Any, Any]) -> None:
        """pysyncobj compaction hook: write our JSON snapshot to its tmp file, fsynced."""
        last, prev, cluster = data
        now = time.monotonic()
        if now < self._snap_retry_at:
            # pysyncobj retries compaction every tick; a full disk gets one try per back-off
            raise SnapshotError("snapshot write backing off after a disk error")
        with self._sm_lock:
            state = self._sm.snapshot()
            sm_index = max(self._sm_index, int(last[1]))
        nodes = sorted(str(getattr(n, "id", n)) for n in cluster)
        snap = Snapshot(sm_index=sm_index, last=(bytes(last[0]), int(last[1]), int(last[2])),
                        prev=(bytes(prev[0]), int(prev[1]), int(prev[2])),
                        cluster=tuple(nodes), state=state)
        try:
            size = write_snapshot_file(path, snap)
        except OSError as exc:
            self._snap_failures += 1
            self._snap_retry_at = now + retry_delay(FaultPolicy(), self._snap_failures)
            if self._snap_log.allow("snapshot", now):
                logger.error("snapshot: cannot write %s: %s (old snapshot kept, journal "
                             "not compacted; %d failures)", path,
                             errno.errorcode.get(exc.errno or 0, exc.errno), self._snap_failures)
            raise
        self._snap_failures = 0
        self._snap_bytes = size if isinstance(size, int) else 0

    def _deserialize(self, path: str) -> tuple[Any, Any, list[str]]:
        """pysyncobj load hook (startup and snapshot install).

        Makes the snapshot durable before pysyncobj may clear the journal,
        restores the state machine (never backwards), and trims the journal
        front to the snapshot so pysyncobj's "first two entries equal the
        dump's" check passes instead of wiping newer committed entries.
        """
        fsync_file(Path(path))
        fsync_dir(Path(path).parent)
        snap = self._read_snapshot(Path(path))
        self._install(snap)
        self._align_journal(snap)
        return snap.last, snap.prev, list(snap.cluster)

    def _read_snapshot(self, path: Path) -> Snapshot:
        """Read a snapshot file; the one decoded at start is not decoded again when
        pysyncobj loads the same file a tick later (~40 ms at 5,000 groups)."""
        st = os.stat(path)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached, self._start_snap = self._start_snap, None
        if cached is not None and cached[0] == key:
            snap = cached[1]
        else:
            snap = read_snapshot_file(path)
        self._snap_bytes = st.st_size
        return snap

    def _install(self, snap: Snapshot) -> None:
        with self._sm_lock:
            if snap.sm_index <= self._sm_index:
                return
            self._sm.restore(snap.state)
            self._sm_index = snap.sm_index
        if self._on_restored is not None:
            try:
                self._on_restored(snap.sm_index)
            except Exception:
                logger.exception("on_restored hook failed")

    def _align_journal(self, snap: Snapshot) -> None:
        journal = self._journal
        assert journal is not None
        first = journal.first_index
        if first is None:
            return
        pos = snap.prev[1] - first
        if 0 < pos < len(journal) - 1 and journal[pos] == snap.prev \
                and journal[pos + 1] == snap.last:
            journal.trim_front_to(snap.prev[1])

    def _load_snapshot_at_start(self) -> None:
        """Restore before pysyncobj starts, so nothing is applied on an empty state."""
        journal = self._journal
        assert journal is not None
        if self._dump_path.exists():
            try:
                snap = self._read_snapshot(self._dump_path)
            except (OSError, SnapshotError) as exc:
                first = journal.first_index
                if first is not None and first > 1:
                    raise JournalError(
                        f"snapshot {self._dump_path} is unreadable ({exc}) and the journal "
                        f"starts at index {first}: committed state would be lost") from exc
                logger.warning("ignoring unreadable snapshot %s: %s", self._dump_path, exc)
                self._dump_path.rename(self._dump_path.with_suffix(".bad"))
                return
            self._install(snap)
            self._align_journal(snap)
            st = os.stat(self._dump_path)
            self._start_snap = ((st.st_ino, st.st_size, st.st_mtime_ns), snap)
            return
        first = journal.first_index
        if first is not None and first > 1:
            raise JournalError(f"journal starts at index {first} but there is no snapshot "
                               f"{self._dump_path}: committed state would be lost")
