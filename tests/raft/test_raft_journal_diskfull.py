"""The journal and snapshots on a real, size-limited tmpfs: ENOSPC (with the short
write before it) leaves the journal exactly as before the failed append, a failed
snapshot write or receive keeps the old snapshot and leaves no temp file, and both
recover when space returns. Root only (mounts); see tests/support_disk.py."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
from support_disk import fill, small_tmpfs

from vnfha.coordinator.raft.journal import DurableJournal
from vnfha.coordinator.raft.snapshot import (
    DurableSerializer,
    Snapshot,
    encode_snapshot,
    read_snapshot_file,
    write_snapshot_file,
)

pytestmark = pytest.mark.slow

RECORD = b"x" * 3000  # a few records per page: the failing write is a short write first


def test_enospc_append_leaves_the_journal_as_before_and_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with small_tmpfs(tmp_path / "fs", "1m") as fs:
        j = DurableJournal(fs / "raft")
        for i in range(1, 11):
            j.add(RECORD, i, 1)
        assert j.sync()
        filler = fill(fs)
        held_before = len(j)
        size_before = j.path.stat().st_size
        idx = 11
        while j.fault is None and idx < 10_000:  # bounded: the fs is 1 MiB
            j.add(RECORD, idx, 1)
            if j.fault is None:
                assert j.sync() or j.fault is not None
                held_before, size_before = len(j), j.path.stat().st_size
                idx += 1
        assert j.fault is not None and j.fault.errno == errno.ENOSPC
        # exactly as before the failed append: no torn bytes, the entry not held
        assert len(j) == held_before and j.last_index == idx - 1
        assert j.path.stat().st_size == size_before
        # while faulted nothing is written, and nothing raises into pysyncobj's tick
        j.add(RECORD, idx, 1)
        j.add(RECORD, idx + 1, 1)  # would be a "gap" if the first had been dropped silently
        j.setCurrentTerm(2, "peer")
        j.onOneSecondTimer()
        assert not j.sync() and j.path.stat().st_size == size_before
        assert not j.try_recover(min_free=64 << 10)  # still full
        filler.unlink()
        assert j.try_recover(min_free=64 << 10)
        assert j.fault is None
        for k in range(idx, idx + 5):
            j.add(RECORD, k, 2)
        assert j.sync()
        j.close()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vnfha.coordinator.raft.journal"):
            j2 = DurableJournal(fs / "raft")
        assert "torn" not in caplog.text  # nothing to cut: no garbage was ever left
        assert j2.last_index == idx + 4 and len(j2) == idx + 4
        assert [e[1] for e in j2[:]] == list(range(1, idx + 5))
        assert j2.getCurrentTerm() == 2 and j2.getVotedForNodeId() == "peer"
        j2.close()


def test_enospc_on_meta_keeps_the_old_meta_and_no_temp_file(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "512k") as fs:
        j = DurableJournal(fs / "raft")
        j.setCurrentTerm(3, "a")
        filler = fill(fs)
        j.setCurrentTerm(4, "b")  # must not raise into the tick thread
        assert j.fault is not None and j.fault.op == "meta"
        assert not (fs / "raft" / "journal.meta.tmp").exists()
        assert '"term": 3' in (fs / "raft" / "journal.meta").read_text()
        filler.unlink()
        assert j.try_recover()
        assert '"term": 4' in (fs / "raft" / "journal.meta").read_text()
        j.close()


def _snap(n: int) -> Snapshot:
    state = {"blob": "y" * n}
    return Snapshot(sm_index=5, last=(b"l", 5, 1), prev=(b"p", 4, 1), cluster=(), state=state)


def test_snapshot_write_on_a_full_disk_keeps_the_old_snapshot(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "512k") as fs:
        final = fs / "snapshot.json"
        write_snapshot_file(final, _snap(10))
        old = final.read_bytes()
        filler = fill(fs)
        tmp = fs / "snapshot.json.tmp"  # what pysyncobj passes; it renames on success
        with pytest.raises(OSError) as info:
            write_snapshot_file(tmp, _snap(200_000))
        assert info.value.errno == errno.ENOSPC
        assert not tmp.exists(), "a failed snapshot must not keep the disk full"
        assert final.read_bytes() == old
        # the receive path (a snapshot sent by the leader) too
        ser = DurableSerializer(str(final), 1 << 16, False, None, None, None)
        chunk = encode_snapshot(_snap(200_000))
        assert not ser.setTransmissionData((chunk, True, True))
        assert not (fs / "snapshot.json.1.tmp").exists()
        assert final.read_bytes() == old
        filler.unlink()
        assert ser.setTransmissionData((chunk, True, True))
        assert read_snapshot_file(final).state["blob"] == "y" * 200_000
