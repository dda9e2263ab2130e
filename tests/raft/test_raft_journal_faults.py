"""Journal fault paths that a real filesystem will not produce on demand: a failed
fdatasync (after which the page cache cannot be trusted) and a failed roll-back.
Injected by replacing os functions for the duration of one test (pure logic);
the ENOSPC and EIO paths on real filesystems are in test_raft_journal_diskfull.py
and test_raft_diskfaults.py."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from vnfha.coordinator.raft.journal import DurableJournal


def failing(code: int, times: int = 1 << 30, then=None):  # type: ignore[no-untyped-def]
    """A stand-in for an os function: raises OSError(code) ``times`` times, then calls
    ``then`` (the real function)."""
    left = [times]

    def fail(*args: object) -> object:
        if left[0] > 0:
            left[0] -= 1
            raise OSError(code, os.strerror(code))
        return then(*args)
    return fail


def test_failed_fdatasync_rolls_back_to_the_last_synced_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = DurableJournal(tmp_path)
    for i in range(1, 6):
        j.add(b"c%d" % i, i, 1)
    assert j.sync()
    synced_size = j.path.stat().st_size
    for i in range(6, 9):
        j.add(b"c%d" % i, i, 1)
    real = os.fdatasync
    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", failing(errno.EIO, times=1, then=real))
        assert not j.sync()  # the roll-back's own fdatasync works
    assert j.fault is not None and j.fault.op == "sync" and j.fault.errno == errno.EIO
    # the unsynced entries are gone from memory and from the file: they must be
    # received and written again, not trusted to a page cache that failed once
    assert j.last_index == 5 and j.durable_last_index == 5
    assert j.path.stat().st_size == synced_size
    assert os.fdatasync is real
    assert j.try_recover()
    for i in range(6, 9):
        j.add(b"again%d" % i, i, 1)
    assert j.sync()
    j.close()
    j2 = DurableJournal(tmp_path)
    assert [e[0] for e in j2[5:]] == [b"again6", b"again7", b"again8"]
    j2.close()


def test_failed_roll_back_breaks_the_journal_for_good(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = DurableJournal(tmp_path)
    j.add(b"c1", 1, 1)
    assert j.sync()
    size = j.path.stat().st_size
    with monkeypatch.context() as m:
        m.setattr(os, "write", failing(errno.EIO))
        m.setattr(os, "ftruncate", failing(errno.EIO))
        j.add(b"c2", 2, 1)
    assert j.fault is not None and j.fault.broken
    j.add(b"c3", 3, 1)  # nothing is ever written after possible garbage
    assert not j.sync()
    assert j.path.stat().st_size == size and j.last_index == 1
    assert not j.try_recover(), "a broken journal never resumes in this process"
    j.close()
