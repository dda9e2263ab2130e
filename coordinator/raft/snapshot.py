"""Our snapshot ("full dump") format, and a durable snapshot receiver.

pysyncobj's own dump is a pickle written by a forked child, never fsynced.
We hand pysyncobj a custom serializer instead (which also disables the
fork), so the dump is JSON we own::

    b"VNFHASNAP1 <crc32> <body length>\\n" + JSON body
    body = {"sm_index": int,            # log index the state reflects
            "last": [b64, idx, term],   # journal entry at last applied
            "prev": [b64, idx, term],   # the one before it
            "cluster": ["host:port", ...],
            "state": {...}}             # StateMachine.snapshot()

``last``/``prev`` are the two entries pysyncobj passes: after loading a dump
it checks that they are the first two entries of the journal and wipes the
journal otherwise, so they must round-trip exactly (bytes, not str).
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysyncobj.serializer import Serializer

from .errors import SnapshotError
from .fsutil import fsync_dir, write_all

MAGIC = b"VNFHASNAP1"

Entry = tuple[bytes, int, int]


@dataclass(frozen=True)
class Snapshot:
    """A decoded snapshot file."""

    sm_index: int
    last: Entry
    prev: Entry
    cluster: tuple[str, ...]
    state: dict[str, Any]


def _entry_to_json(entry: Entry) -> list[Any]:
    command, idx, term = entry
    return [base64.b64encode(bytes(command)).decode("ascii"), int(idx), int(term)]


def _entry_from_json(raw: Any) -> Entry:
    if not (isinstance(raw, list) and len(raw) == 3):
        raise SnapshotError(f"bad journal entry in snapshot: {raw!r}")
    command, idx, term = raw
    if not (isinstance(command, str) and isinstance(idx, int) and isinstance(term, int)):
        raise SnapshotError(f"bad journal entry in snapshot: {raw!r}")
    return base64.b64decode(command), idx, term


def encode_snapshot(snap: Snapshot) -> bytes:
    """Serialize a snapshot (deterministic JSON, CRC-protected)."""
    body = json.dumps(
        {
            "sm_index": snap.sm_index,
            "last": _entry_to_json(snap.last),
            "prev": _entry_to_json(snap.prev),
            "cluster": list(snap.cluster),
            "state": snap.state,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    header = MAGIC + b" %d %d\n" % (zlib.crc32(body), len(body))
    return header + body


def decode_snapshot(data: bytes) -> Snapshot:
    """Parse and verify a snapshot file's bytes."""
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != MAGIC:
        raise SnapshotError("not a vnfha snapshot")
    try:
        crc, length = int(parts[1]), int(parts[2])
    except ValueError as exc:
        raise SnapshotError("bad snapshot header") from exc
    if len(body) != length or zlib.crc32(body) != crc:
        raise SnapshotError("snapshot body truncated or corrupt")
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise SnapshotError(f"snapshot body is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("state"), dict):
        raise SnapshotError("snapshot body has no state")
    sm_index = raw.get("sm_index")
    cluster = raw.get("cluster", [])
    if not isinstance(sm_index, int) or not isinstance(cluster, list):
        raise SnapshotError("snapshot body is malformed")
    return Snapshot(
        sm_index=sm_index,
        last=_entry_from_json(raw.get("last")),
        prev=_entry_from_json(raw.get("prev")),
        cluster=tuple(str(c) for c in cluster),
        state=raw["state"],
    )


def write_snapshot_file(path: Path | str, snap: Snapshot) -> int:
    """Write and fsync ``path``, a temp file pysyncobj renames into place afterwards;
    return its size.

    On failure (ENOSPC, EIO, short write) the temp file is removed and the
    error raised: pysyncobj then skips the rename, so the old snapshot stays,
    and the journal keeps every entry (it is compacted only after a
    successful snapshot).
    """
    data = encode_snapshot(snap)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass  # best effort; the write error is what matters
        raise
    os.close(fd)
    return len(data)


def read_snapshot_file(path: Path | str) -> Snapshot:
    """Read and verify a snapshot file."""
    with open(path, "rb") as f:
        return decode_snapshot(f.read())


class DurableSerializer(Serializer):
    """pysyncobj's Serializer with a durable snapshot *receive* path.

    Stock ``setTransmissionData`` renames the received dump over ours
    without fsync; the journal is then cleared. A crash in between could
    leave neither. Here the received file is fsynced before the rename and
    the directory after it, so the journal is only cleared once the new
    snapshot is on disk.
    """

    def __init__(self, fileName: str, *args: Any) -> None:
        super().__init__(fileName, *args)
        self._vnfha_path = fileName
        self._vnfha_incoming: Any = None

    def setTransmissionData(self, data: Any) -> bool:
        if data is None or self._vnfha_path is None:
            return False
        chunk, is_first, is_last = data
        tmp = self._vnfha_path + ".1.tmp"
        if is_first:
            if self._vnfha_incoming is not None:
                self._vnfha_incoming.close()
            self._vnfha_incoming = open(tmp, "wb")
        elif self._vnfha_incoming is None:
            return False
        try:
            self._vnfha_incoming.write(bytes(chunk))
            if not is_last:
                return False
            self._vnfha_incoming.flush()
            os.fsync(self._vnfha_incoming.fileno())
            self._vnfha_incoming.close()
        except OSError:
            self._vnfha_drop(tmp)  # a full disk is not left fuller; the old snapshot stays
            return False
        self._vnfha_incoming = None
        try:
            read_snapshot_file(tmp)  # refuse garbage before it replaces a good snapshot
            os.replace(tmp, self._vnfha_path)
            fsync_dir(Path(self._vnfha_path).parent)
        except (OSError, SnapshotError):
            self._vnfha_drop(tmp)
            return False
        return True

    def _vnfha_drop(self, tmp: str) -> None:
        if self._vnfha_incoming is not None:
            try:
                self._vnfha_incoming.close()
            except OSError:
                pass  # closing flushes; the disk already failed
            self._vnfha_incoming = None
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already gone, or the disk is dead
