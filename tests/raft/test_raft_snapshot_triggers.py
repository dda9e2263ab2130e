"""When snapshots are taken (issue 14: cold start), and that taking one can be cut
short at any point without losing an acknowledged write.

* a graceful stop writes a snapshot, so the next start loads one state and replays
  (almost) nothing;
* the journal's size triggers a snapshot (not only pysyncobj's entry count and timer),
  which bounds what a restart after a crash replays;
* a real SIGKILL in the middle of a snapshot write, after its rename, or in the middle
  of the journal rewrite that follows loses nothing acknowledged.
"""

from __future__ import annotations

import errno
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from raft_helpers import CounterSM, cluster_settings, wait_for

from vnfha.coordinator.raft import log as log_module
from vnfha.coordinator.raft.journal import DurableJournal
from vnfha.coordinator.raft.log import SNAPSHOT_FILE
from vnfha.coordinator.raft.snapshot import read_snapshot_file

CHILD = Path(__file__).with_name("snapshot_crash_child.py")


class CountingSM(CounterSM):
    """Counts the commands it applies (a restored snapshot applies none)."""

    def __init__(self) -> None:
        super().__init__()
        self.apply_calls = 0

    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        self.apply_calls += 1
        return super().apply(command)


def test_a_graceful_stop_leaves_a_snapshot_and_the_restart_replays_nothing(
        tmp_path: Path, make_log: Any) -> None:
    (s,) = cluster_settings(tmp_path, 1)
    log = make_log(s)
    wait_for(log.is_leader, 5, "leadership")
    for i in range(40):
        log.submit({"rid": f"r{i}"}, timeout=2)
    log.stop()
    snap = read_snapshot_file(s.data_dir / SNAPSHOT_FILE)
    assert snap.sm_index >= 41  # the first entry is pysyncobj's no-op
    j = DurableJournal(s.data_dir)
    assert len(j) <= 3 and j.first_index is not None and j.first_index >= 40
    j.close()
    sm = CountingSM()
    log2 = make_log(s, sm)
    wait_for(log2.is_leader, 5, "leadership after restart")
    wait_for(lambda: log2.catching_up() is None, 5, "reads open")
    assert sm.applied_rids == [f"r{i}" for i in range(40)]
    assert sm.apply_calls == 0  # the old code replayed all 40
    assert log2.submit({"rid": "after"}, timeout=2)["epoch"] == 41


def test_journal_bytes_trigger_snapshots(tmp_path: Path, make_log: Any) -> None:
    """Entry count and timer far away: only the journal's size can trigger one."""
    (s,) = cluster_settings(tmp_path, 1, compaction_min_bytes=4096,
                            compaction_min_entries=100_000, compaction_min_time=3600.0,
                            snapshot_on_stop_timeout=0)
    sm = CounterSM()
    log = make_log(s, sm)
    wait_for(log.is_leader, 5, "leadership")
    pad = "x" * 400
    for i in range(120):  # ~60 KB of journal
        log.submit({"rid": f"r{i}", "pad": pad}, timeout=2)
    wait_for(lambda: (s.data_dir / SNAPSHOT_FILE).exists(), 5, "a snapshot")

    def bounded() -> bool:
        journal_bytes = (s.data_dir / "journal.log").stat().st_size
        return journal_bytes <= max(4096, (s.data_dir / SNAPSHOT_FILE).stat().st_size)

    # at most the trigger's worth of journal once the last snapshot is through (the old
    # code, with only the entry count and timer, kept all ~60 KB)
    wait_for(bounded, 5, "the journal cut to the trigger's size")
    assert read_snapshot_file(s.data_dir / SNAPSHOT_FILE).sm_index > 100
    log.stop()
    sm2 = CounterSM()
    make_log(s, sm2)
    wait_for(lambda: len(sm2.applied_rids) == 120, 5, "state after restart")
    assert sm2.applied_rids == sm.applied_rids


@pytest.mark.parametrize("kill_at", ["torn-snapshot", "after-rename", "torn-journal"])
def test_a_kill_during_a_snapshot_loses_nothing_acknowledged(
        tmp_path: Path, make_log: Any, kill_at: str) -> None:
    proc = subprocess.run([sys.executable, str(CHILD), "--data", str(tmp_path),
                           "--kill-at", kill_at], capture_output=True, text=True,
                          timeout=120, cwd=str(CHILD.parent))
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    acked = proc.stdout.split()
    assert len(acked) >= 8, "killed before anything was acknowledged"
    (s,) = cluster_settings(tmp_path, 1)
    data = s.data_dir
    assert data.exists()
    sm = CounterSM()
    log = make_log(s, sm)
    wait_for(log.is_leader, 10, "leadership after the kill")
    wait_for(lambda: log.catching_up() is None, 10, "reads open")
    missing = [rid for rid in acked if rid not in sm.results]
    assert not missing, f"acknowledged and lost: {missing[:10]}"
    # in order, each once; a write applied but killed before its answer may follow
    assert sm.applied_rids[:len(acked)] == acked and len(sm.applied_rids) <= len(acked) + 1
    assert log.submit({"rid": "after"}, timeout=2)["epoch"] == len(sm.applied_rids)


def test_a_failed_snapshot_at_stop_is_noticed_and_loses_nothing(
        tmp_path: Path, make_log: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The disk refuses the snapshot: the stop notices the failure (it does not wait
    out its bound) and the next start replays the journal, which was not cut."""
    (s,) = cluster_settings(tmp_path, 1, snapshot_on_stop_timeout=60)
    log = make_log(s)
    wait_for(log.is_leader, 5, "leadership")
    for i in range(30):
        log.submit({"rid": f"r{i}"}, timeout=2)

    def refuse(*_a: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device (test)")

    monkeypatch.setattr(log_module, "write_snapshot_file", refuse)
    caplog.set_level(logging.WARNING, logger="vnfha.coordinator.raft.log")
    log.stop()
    assert any("no snapshot written at stop (write failed)" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    monkeypatch.undo()
    assert not (s.data_dir / SNAPSHOT_FILE).exists()
    sm = CountingSM()
    make_log(s, sm)
    wait_for(lambda: len(sm.applied_rids) == 30, 5, "replay after restart")
    assert sm.apply_calls == 30
