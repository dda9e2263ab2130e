"""Hazard 1: a crash between "snapshot renamed" and "journal truncated" loses nothing.

Stock pysyncobj then finds journal[0:2] != the dump's two entries and clears
the whole journal, dropping every committed entry after the dump. We stop
the truncation from ever happening (as if the process died right after the
rename), keep writing, and restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from raft_helpers import CounterSM, cluster_settings, wait_for

from vnfha.coordinator.raft import log as log_module
from vnfha.coordinator.raft.journal import DurableJournal
from vnfha.coordinator.raft.log import SNAPSHOT_FILE, ReplicatedLog
from vnfha.coordinator.raft.snapshot import read_snapshot_file


def crash_after_rename(tmp_path: Path, make_log: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    (s,) = cluster_settings(tmp_path, 1, compaction_min_entries=10)
    truncations: list[int] = []
    monkeypatch.setattr(DurableJournal, "deleteEntriesTo",
                        lambda self, n: truncations.append(n))
    log = make_log(s)
    wait_for(log.is_leader, 5, "leadership")
    for i in range(15):
        log.submit({"rid": f"a{i}"}, timeout=2)
    wait_for(lambda: truncations, 5, "a compaction")
    # From now on no new snapshot can be written either: the dump on disk is older
    # than the journal's tail, exactly the state a crash leaves behind.
    def refuse(*_a: Any) -> None:
        raise OSError("disk full (test)")
    monkeypatch.setattr(log_module, "write_snapshot_file", refuse)
    for i in range(10):
        log.submit({"rid": f"b{i}"}, timeout=2)
    log.stop()
    monkeypatch.undo()
    snap = read_snapshot_file(s.data_dir / SNAPSHOT_FILE)
    j = DurableJournal(s.data_dir)
    assert j.first_index == 1 and snap.sm_index < j.last_index  # the crash window
    j.close()
    return s.data_dir


def test_restart_after_crash_between_dump_and_truncate(
        tmp_path: Path, make_log: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_after_rename(tmp_path, make_log, monkeypatch)
    (s,) = cluster_settings(tmp_path, 1, compaction_min_entries=10)
    sm = CounterSM()
    log = make_log(s, sm)
    wait_for(log.is_leader, 5, "leadership after restart")
    log.submit({"rid": "after"}, timeout=2)
    expected = [f"a{i}" for i in range(15)] + [f"b{i}" for i in range(10)] + ["after"]
    assert sm.applied_rids == expected
    assert sm.epoch == 26


def test_control_without_journal_alignment_loses_entries(
        tmp_path: Path, make_log: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shows the test above can fail: skip our alignment and pysyncobj wipes the journal."""
    crash_after_rename(tmp_path, make_log, monkeypatch)
    monkeypatch.setattr(ReplicatedLog, "_align_journal", lambda self, snap: None)
    (s,) = cluster_settings(tmp_path, 1, compaction_min_entries=10)
    sm = CounterSM()
    log = make_log(s, sm)
    wait_for(log.is_leader, 5, "leadership after restart")
    log.submit({"rid": "after"}, timeout=2)
    assert sm.epoch < 26 and "b9" not in sm.applied_rids
