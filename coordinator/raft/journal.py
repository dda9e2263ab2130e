"""Durable Raft journal replacing pysyncobj's (which never fsyncs and edits in place).

File layout (``journal.log``)::

    b"VNFHAJ1\\n"
    record*:  <u32 payload_len> <u32 crc32> <u64 idx> <u64 term> <payload>

The CRC covers length, idx, term and payload, so a record torn by power loss
is detected on load and the file is truncated there. Records must have
consecutive indexes and non-decreasing terms; anything else ends the valid
prefix too.

Term, vote and commit index live in ``journal.meta`` (JSON, replaced
atomically). Term/vote are written synchronously (Raft: they must be durable
before a vote or request leaves the node); the commit index lazily, after
the journal itself is synced, since it only lets a restarted node apply
earlier.

Appends are buffered in the page cache and made durable by :meth:`sync`
(fdatasync only if dirty): the transport calls it before any message
leaves, and a tick callback calls it before the next tick can count an
entry committed. That is group commit: one fdatasync per batch.

Conflict handling (why ``deleteEntriesFrom`` is a no-op): pysyncobj's
follower truncates the log at ``prevLogIdx + 1`` whenever a message carries
an older ``prevLogIdx``, even without a conflict; a stale reply at the
leader makes that happen and can drop entries the follower already applied
and acknowledged. Raft only truncates at a real conflict, so :meth:`add`
resolves each entry: append at ``last + 1``; skip an entry we hold with the
same term (identical by Log Matching); truncate only when the term differs,
and never at or below the commit index.

Write failures (ENOSPC, EIO, short writes; see ``diskfault.py``): every
method pysyncobj calls catches ``OSError`` instead of raising it into the
tick thread. A failed append is rolled back (truncate to where the record
began, fdatasync) and the entry is not held; a failed fdatasync rolls back
to the last synced offset, since after a failed fsync the page cache can no
longer be trusted to hold what was written. Either way :attr:`fault` is set
and the journal writes nothing more until :meth:`try_recover` succeeds. If
the roll-back itself fails, the fault is *broken*: nothing is ever written
again by this process, so no record can land after garbage.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any, overload

from pysyncobj.journal import Journal

from .diskfault import PersistFault, RateLimit
from .errors import JournalError
from .fsutil import atomic_write, free_bytes, fsync_dir

logger = logging.getLogger(__name__)

MAGIC = b"VNFHAJ1\n"
_HEADER = struct.Struct("<IIQQ")  # payload_len, crc32, idx, term
_CRC_PART = struct.Struct("<IQQ")  # payload_len, idx, term (what the crc covers with payload)
MAX_RECORD_BYTES = 64 * 1024 * 1024

Entry = tuple[bytes, int, int]


def _encode(command: bytes, idx: int, term: int) -> bytes:
    crc = zlib.crc32(_CRC_PART.pack(len(command), idx, term) + command)
    return _HEADER.pack(len(command), crc, idx, term) + command


def _parse(data: bytes) -> tuple[list[Entry], list[int], int]:
    """Return the valid prefix of a journal file: entries, their offsets, end offset."""
    entries: list[Entry] = []
    offsets: list[int] = []
    pos = len(MAGIC)
    while pos + _HEADER.size <= len(data):
        length, crc, idx, term = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            break
        payload = bytes(data[start : start + length])
        if zlib.crc32(_CRC_PART.pack(length, idx, term) + payload) != crc:
            break
        if entries and (idx != entries[-1][1] + 1 or term < entries[-1][2]):
            break
        entries.append((payload, idx, term))
        offsets.append(pos)
        pos = start + length
    return entries, offsets, pos


class DurableJournal(Journal):
    """Append-only, CRC-checked, fsync-on-demand journal with durable meta.

    Used only from pysyncobj's tick thread (plus ``status`` reads); it does no
    locking of its own.
    """

    def __init__(self, data_dir: Path) -> None:
        self._dir = Path(data_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self.path = self._dir / "journal.log"
        self.meta_path = self._dir / "journal.meta"
        self._entries: list[Entry] = []
        self._offsets: list[int] = []
        self._dirty = False
        self._meta_dirty = False
        self._fd = -1
        self.syncs = 0  # number of fdatasync calls, for tests and status
        #: set while this journal cannot persist; see the module docstring
        self.fault: PersistFault | None = None
        self.faults = 0  # outages so far, for tests and status
        #: lowest Raft index ever cut off at a conflict (those entries were never committed)
        self.lowest_truncation: int | None = None
        self._log_limit = RateLimit()
        self._meta = self._load_meta()
        self._open()
        self._mark_durable()

    # ------------------------------------------------------------------ load
    def _load_meta(self) -> dict[str, Any]:
        try:
            raw = self.meta_path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            meta = json.loads(raw)
        except ValueError as exc:
            # Meta is replaced atomically, so this is corruption, not a torn write.
            raise JournalError(f"corrupt journal meta {self.meta_path}: {exc}") from exc
        if not isinstance(meta, dict):
            raise JournalError(f"corrupt journal meta {self.meta_path}")
        return meta

    def _open(self) -> None:
        if not self.path.exists():
            atomic_write(self.path, MAGIC)
        data = self.path.read_bytes()
        if not data.startswith(MAGIC):
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                data = b""  # torn header of a brand-new file
            else:
                raise JournalError(f"{self.path} is not a vnfha journal")
        entries, offsets, end = _parse(data) if data else ([], [], len(MAGIC))
        self._fd = os.open(self.path, os.O_RDWR)
        if not data:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, MAGIC)
            os.fsync(self._fd)
        elif end != len(data):
            logger.warning(
                "journal %s: dropping %d bytes of torn/invalid tail after index %s",
                self.path, len(data) - end, entries[-1][1] if entries else None)
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        os.lseek(self._fd, 0, os.SEEK_END)
        self._entries = entries
        self._offsets = offsets
        self._end = end if data else len(MAGIC)

    # ------------------------------------------------------------ properties
    @property
    def first_index(self) -> int | None:
        """Raft index of the first entry held (None when empty)."""
        return self._entries[0][1] if self._entries else None

    @property
    def last_index(self) -> int | None:
        """Raft index of the last entry held (None when empty)."""
        return self._entries[-1][1] if self._entries else None

    def bytes_through(self, idx: int) -> int:
        """Bytes of the records up to and including Raft index ``idx`` (what a
        snapshot at ``idx`` would let compaction drop, header included)."""
        if not self._entries or idx < self._entries[0][1]:
            return 0
        pos = idx - self._entries[0][1] + 1
        return self._offsets[pos] if pos < len(self._offsets) else self._end

    @property
    def commit_index(self) -> int:
        """Highest index pysyncobj told us is committed."""
        return int(self._meta.get("commit_index", 1))

    # ------------------------------------------------------- pysyncobj API
    def add(self, command: bytes, idx: int, term: int) -> None:
        """Append, skip (already held), or truncate-at-conflict then append."""
        command = bytes(command)
        if self.fault is not None:
            return  # not held, and (transport.py) not acknowledged either
        if not self._entries or idx == self._entries[-1][1] + 1:
            self._append(command, idx, term)
            return
        first = self._entries[0][1]
        last = self._entries[-1][1]
        if idx > last + 1:
            raise JournalError(f"gap in journal: got index {idx}, last is {last}")
        if idx < first:
            return  # compacted away: committed, and so identical by Log Matching
        pos = idx - first
        if self._entries[pos][2] == term:
            return  # same index and term: identical entry, keep what we have
        if idx <= self.commit_index:
            raise JournalError(
                f"refusing to overwrite committed entry {idx} (commit index "
                f"{self.commit_index}): term {self._entries[pos][2]} vs {term}")
        logger.info("journal: conflict at index %d (term %d vs %d), truncating %d entries",
                    idx, self._entries[pos][2], term, len(self._entries) - pos)
        self._truncate_at(pos)
        self._append(command, idx, term)

    def _append(self, command: bytes, idx: int, term: int) -> None:
        """Write one record, or leave the file exactly as before and set :attr:`fault`."""
        if self.fault is not None:
            return  # not held: nothing is acknowledged while we cannot persist
        record = _encode(command, idx, term)
        start = self._end
        view = memoryview(record)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._fail("append", exc)
            self._roll_back(start)
            return
        self._entries.append((command, idx, term))
        self._offsets.append(start)
        self._end += len(record)
        self._dirty = True

    def _fail(self, op: str, exc: OSError, path: Path | None = None) -> None:
        if self.fault is None:
            self.fault = PersistFault.from_error(op, exc, str(path or self.path),
                                                 time.monotonic())
            self.faults += 1
            if self._log_limit.allow("fault", self.fault.since):  # a flapping disk: 1 line/5 s
                logger.error("journal: %s", self.fault.describe())

    def _roll_back(self, offset: int) -> None:
        """Cut the file back to ``offset`` (a record boundary) and forget entries past it.

        If the cut cannot be made durable the file may end in garbage: the
        fault becomes *broken* and nothing is written again by this process.
        """
        keep = len(self._offsets)
        while keep and self._offsets[keep - 1] >= offset:
            keep -= 1
        del self._entries[keep:]
        del self._offsets[keep:]
        self._end = offset
        self._dirty = False
        try:
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
            os.fdatasync(self._fd)
        except OSError as exc:
            self._fail("truncate", exc)
            assert self.fault is not None
            if not self.fault.broken:
                self.fault.broken = True
                logger.critical("journal %s: cannot roll back to offset %d (%s); "
                                "writing nothing more", self.path, offset,
                                os.strerror(exc.errno or 0))
            self._durable_end = min(self._durable_end, offset)
            self._durable_count = min(self._durable_count, len(self._entries))
            return
        self._mark_durable()  # the fdatasync covered everything before offset too

    def _mark_durable(self) -> None:
        self._durable_end = self._end
        self._durable_count = len(self._entries)

    def try_recover(self, min_free: int = 0) -> bool:
        """Recovery probe (tick thread): clear :attr:`fault` if persisting works again.

        Syncs what is held, rewrites the meta (a term or vote may be waiting),
        and for "no room" faults insists on ``min_free`` bytes of headroom, so
        a node does not rejoin only to fail on its next append.
        """
        fault = self.fault
        if fault is None:
            return True
        if fault.broken:
            return False
        try:
            if min_free and fault.no_room and free_bytes(self._dir) < min_free:
                raise OSError(fault.last_errno, "still too little free space", str(self._dir))
            os.fdatasync(self._fd)
            atomic_write(self.meta_path, json.dumps(self._meta, sort_keys=True).encode())
        except OSError as exc:
            fault.attempts += 1
            fault.last_errno = exc.errno if isinstance(exc.errno, int) else fault.last_errno
            return False
        self.syncs += 1
        self._dirty = False
        self._meta_dirty = False
        self._mark_durable()
        self.fault = None
        return True

    def _truncate_at(self, pos: int) -> None:
        """Drop entries[pos:] durably (rare: only at a real conflict)."""
        idx = self._entries[pos][1]
        if self.lowest_truncation is None or idx < self.lowest_truncation:
            self.lowest_truncation = idx
        self.syncs += 1
        self._roll_back(self._offsets[pos])

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        """No-op on purpose: truncation happens only at a real conflict, in :meth:`add`."""

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Compaction: drop entries[:entryTo] by rewriting the file atomically.

        pysyncobj calls this right after renaming a new snapshot into place;
        the directory fsync first makes that rename durable, so the journal
        never loses its front before the snapshot that covers it is on disk.
        """
        if entryTo <= 0:
            return
        try:
            fsync_dir(self._dir)
        except OSError as exc:
            self._fail("rewrite", exc, self._dir)
            return  # keep every entry; compaction is retried after recovery
        self._rewrite(self._entries[entryTo:])

    def clear(self) -> None:
        """Empty the journal (snapshot install); durable before anything is appended."""
        self._rewrite([])

    def trim_front_to(self, idx: int) -> None:
        """Drop every entry before Raft index ``idx`` (durably)."""
        if not self._entries or idx <= self._entries[0][1]:
            return
        self._rewrite(self._entries[idx - self._entries[0][1]:])

    def _rewrite(self, keep: list[Entry]) -> None:
        """Replace the file by one holding ``keep``; on failure the old file stays."""
        self.sync()
        if self.fault is not None:
            return  # compaction waits; the old journal still holds everything
        blob = bytearray(MAGIC)
        offsets = []
        for command, idx, term in keep:
            offsets.append(len(blob))
            blob += _encode(command, idx, term)
        try:
            atomic_write(self.path, bytes(blob))
            new_fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            self._fail("rewrite", exc)
            assert self.fault is not None
            try:
                replaced = os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
            except OSError:
                replaced = True
            if replaced:  # our fd no longer names the file on disk
                self.fault.broken = True
            return
        os.close(self._fd)
        self._fd = new_fd
        os.lseek(self._fd, 0, os.SEEK_END)
        self._entries = list(keep)
        self._offsets = offsets
        self._end = len(blob)
        self._dirty = False
        self._mark_durable()
        self.syncs += 1

    @overload
    def __getitem__(self, item: int) -> Entry: ...
    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...
    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def sync(self) -> bool:
        """fdatasync if anything was appended since the last sync (group commit).

        Returns True if it had to sync. A failed fdatasync rolls back to the
        last synced offset and sets :attr:`fault` (never raises ``OSError``).
        """
        if self._dirty and self._fd >= 0 and self.fault is None:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._fail("sync", exc)
                self._roll_back(self._durable_end)
                return False
            self._dirty = False
            self.syncs += 1
            self._mark_durable()
            return True
        return False

    @property
    def durable_last_index(self) -> int | None:
        """Raft index of the last entry known to be on stable storage."""
        if self._durable_count == 0:
            return None
        return self._entries[self._durable_count - 1][1]

    def _destroy(self) -> None:
        if self._fd < 0:
            return
        self.sync()
        if self._meta_dirty and self.fault is None:
            self._store_meta()
        try:
            os.close(self._fd)
        except OSError:
            pass  # a dead disk; everything worth keeping was synced or never acknowledged
        self._fd = -1

    close = _destroy

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        if self._meta.get("commit_index") != raftCommitIndex:
            self._meta["commit_index"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:
        return self.commit_index

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        """Raft: term and vote are durable before any message reflecting them leaves."""
        self._meta["term"] = term
        self._meta["voted_for"] = votedForNodeId
        self._meta_dirty = True
        self._store_meta()

    def getCurrentTerm(self) -> int:
        return int(self._meta.get("term", 0))

    def getVotedForNodeId(self) -> str | None:
        voted = self._meta.get("voted_for")
        return voted if isinstance(voted, str) else None

    def onOneSecondTimer(self) -> None:
        if self._meta_dirty:
            self._store_meta()

    def _store_meta(self) -> None:
        # The commit index must never be durable ahead of the entries it covers.
        self.sync()
        if self.fault is not None:
            return  # stays dirty; try_recover() writes it
        try:
            atomic_write(self.meta_path, json.dumps(self._meta, sort_keys=True).encode())
        except OSError as exc:
            self._fail("meta", exc, self.meta_path)
            return
        self._meta_dirty = False
