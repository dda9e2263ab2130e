"""A single Raft node that SIGKILLs itself in the middle of a snapshot (test helper).

Submits commands one by one and prints each acknowledged rid (flushed) before the
next, with journal-size compaction set low so snapshots are taken while it writes.
At the second snapshot it kills itself at the point named by ``--kill-at``:

* ``torn-snapshot``: half of the snapshot's temp file written (and synced);
* ``after-rename``: the new snapshot renamed into place, the journal not yet cut;
* ``torn-journal``: the journal being rewritten without its front, half of the new
  file written to its temp name.

The kill is real (the process dies by signal 9, as with kill -9 or the OOM killer);
only the moment is chosen. The parent restarts a node on the same data directory and
checks that every printed rid is there (tests/raft/test_raft_snapshot_triggers.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from raft_helpers import CounterSM, cluster_settings, wait_for

from vnfha.coordinator.raft import journal as journal_module
from vnfha.coordinator.raft import log as log_module
from vnfha.coordinator.raft.log import ReplicatedLog
from vnfha.coordinator.raft.snapshot import encode_snapshot

PAD = "x" * 400  # ~0.5 KB per command: 4 KiB of journal every ~8 commands
snapshots = 0


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--kill-at", required=True,
                   choices=["torn-snapshot", "after-rename", "torn-journal"])
    p.add_argument("--commands", type=int, default=400)
    args = p.parse_args()
    root = Path(args.data)
    (settings,) = cluster_settings(root, 1, compaction_min_bytes=4096,
                                   snapshot_on_stop_timeout=0)
    real_write = log_module.write_snapshot_file
    real_atomic = journal_module.atomic_write
    real_cut = journal_module.DurableJournal.deleteEntriesTo

    def write_snapshot(path: Any, snap: Any) -> int:
        global snapshots
        snapshots += 1
        if snapshots == 2 and args.kill_at == "torn-snapshot":
            data = encode_snapshot(snap)
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
            die()
        return real_write(path, snap)

    def cut(self: Any, entry_to: int) -> None:
        if snapshots == 2 and args.kill_at == "after-rename":
            die()
        real_cut(self, entry_to)

    def atomic_write(path: Path, data: bytes) -> None:
        if snapshots == 2 and args.kill_at == "torn-journal" and path.name == "journal.log":
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2])
            die()
        real_atomic(path, data)

    log_module.write_snapshot_file = write_snapshot  # type: ignore[assignment]
    journal_module.atomic_write = atomic_write  # type: ignore[assignment]
    journal_module.DurableJournal.deleteEntriesTo = cut  # type: ignore[method-assign]
    log = ReplicatedLog(settings, CounterSM())
    log.start()
    wait_for(log.is_leader, 10, "leadership")
    for i in range(args.commands):
        result = log.submit({"rid": f"r{i}", "pad": PAD}, timeout=10)
        assert result.get("ok"), result
        print(f"r{i}", flush=True)
    log.stop()
    return 0  # no kill: the parent fails the test (the kill point was never reached)


if __name__ == "__main__":
    sys.exit(main())
