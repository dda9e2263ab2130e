"""Unit tests of the durable journal: reload, torn tail, conflicts, compaction, meta."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vnfha.coordinator.raft.errors import JournalError
from vnfha.coordinator.raft.journal import MAGIC, DurableJournal


def fill(j: DurableJournal, first: int, last: int, term: int = 1) -> None:
    for i in range(first, last + 1):
        j.add(b"cmd-%d" % i, i, term)


def test_append_and_reload(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 20)
    j.sync()
    j.close()
    j2 = DurableJournal(tmp_path)
    assert len(j2) == 20
    assert j2[0] == (b"cmd-1", 1, 1)
    assert j2[-1] == (b"cmd-20", 20, 1)
    assert j2[3:5] == [(b"cmd-4", 4, 1), (b"cmd-5", 5, 1)]
    j2.add(b"x", 21, 2)
    assert j2.last_index == 21
    j2.close()


def test_sync_is_group_commit(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 10)
    before = j.syncs
    j.sync()
    j.sync()  # nothing new: no second fdatasync
    assert j.syncs == before + 1
    j.close()


def test_torn_tail_drops_only_the_torn_record(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 10)
    j.close()
    size = j.path.stat().st_size
    with open(j.path, "r+b") as f:
        f.truncate(size - 3)  # power loss mid-way through record 10
    j2 = DurableJournal(tmp_path)
    assert len(j2) == 9 and j2.last_index == 9
    j2.add(b"again", 10, 2)  # the file was cut back to a clean boundary
    j2.close()
    j3 = DurableJournal(tmp_path)
    assert j3[-1] == (b"again", 10, 2) and len(j3) == 10
    j3.close()


def test_corrupt_record_ends_valid_prefix(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 5)
    j.close()
    data = bytearray(j.path.read_bytes())
    data[-2] ^= 0xFF  # flip a payload byte of record 5: CRC mismatch
    j.path.write_bytes(bytes(data))
    j2 = DurableJournal(tmp_path)
    assert j2.last_index == 4
    j2.close()


def test_torn_new_file_header(tmp_path: Path) -> None:
    (tmp_path / "journal.log").write_bytes(MAGIC[:3])
    j = DurableJournal(tmp_path)
    assert len(j) == 0
    fill(j, 1, 2)
    j.close()
    assert len(DurableJournal(tmp_path)) == 2


def test_foreign_file_refused(tmp_path: Path) -> None:
    (tmp_path / "journal.log").write_bytes(b"PYSYNCOBJ-something-else")
    with pytest.raises(JournalError):
        DurableJournal(tmp_path)


def test_conflict_resolution(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 10, term=1)
    # same index, same term: identical by Log Matching -> kept, nothing truncated
    j.add(b"ignored", 5, 1)
    assert len(j) == 10 and j[4] == (b"cmd-5", 5, 1)
    # deleteEntriesFrom is a no-op: pysyncobj calls it without a conflict
    j.deleteEntriesFrom(3)
    assert len(j) == 10
    # a real conflict (different term) truncates from there and appends
    j.add(b"new-8", 8, 2)
    assert j.last_index == 8 and j[-1] == (b"new-8", 8, 2)
    j.close()
    j2 = DurableJournal(tmp_path)
    assert j2.last_index == 8 and j2[-1] == (b"new-8", 8, 2) and j2[6] == (b"cmd-7", 7, 1)
    with pytest.raises(JournalError):
        j2.add(b"gap", 12, 2)
    j2.close()


def test_conflict_below_commit_index_refused(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 10, term=1)
    j.setRaftCommitIndex(7)
    with pytest.raises(JournalError):
        j.add(b"evil", 6, 2)
    assert len(j) == 10
    j.close()


def test_compaction_rewrite(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 100)
    j.deleteEntriesTo(60)  # keep entries from position 60 (index 61)
    assert j.first_index == 61 and j.last_index == 100
    j.add(b"cmd-101", 101, 1)
    assert not list(tmp_path.glob("*.tmp"))
    j.close()
    j2 = DurableJournal(tmp_path)
    assert j2.first_index == 61 and j2.last_index == 101
    j2.trim_front_to(90)
    assert j2.first_index == 90
    j2.clear()
    assert len(j2) == 0
    j2.add(b"snap-prev", 500, 3)
    j2.add(b"snap-last", 501, 3)
    j2.close()
    j3 = DurableJournal(tmp_path)
    assert [e[1] for e in j3] == [500, 501]
    j3.close()


def test_durable_meta(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    assert j.getCurrentTerm() == 0 and j.getVotedForNodeId() is None
    j.setCurrentTerm(7, "127.0.0.1:9")
    # written synchronously: visible on disk before any message could leave
    meta = json.loads((tmp_path / "journal.meta").read_text())
    assert meta["term"] == 7 and meta["voted_for"] == "127.0.0.1:9"
    j.setRaftCommitIndex(5)
    j.onOneSecondTimer()
    j.close()
    j2 = DurableJournal(tmp_path)
    assert (j2.getCurrentTerm(), j2.getVotedForNodeId(), j2.getRaftCommitIndex()) == \
        (7, "127.0.0.1:9", 5)
    j2.close()


def test_meta_never_ahead_of_entries(tmp_path: Path) -> None:
    j = DurableJournal(tmp_path)
    fill(j, 1, 3)
    j.setRaftCommitIndex(3)
    syncs = j.syncs
    j.onOneSecondTimer()
    assert j.syncs == syncs + 1  # entries fsynced before the commit index is stored
    j.close()
    assert not os.path.exists(tmp_path / "journal.meta.tmp")
