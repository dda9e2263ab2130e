"""Raft nodes (real processes) on real failing filesystems.

(a) ENOSPC on a follower's data dir mid-burst, then freed: no acknowledged write
    is lost, after restarting every node each holds every acknowledged write, and
    the follower rejoins by itself.
(b) The leader's disk fills: it steps down, another node leads within a few
    election timeouts and commits continue.
(c) A follower's ext4 is shut down (EIO): it stops acknowledging, logs a bounded
    number of lines, and exits with one line naming errno and path.

Root only (tmpfs / loop mounts, see tests/support_disk.py). Every loop is bounded
in count and time; the fixtures unmount and reap whatever the test left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_proc import ProcCluster
from raft_helpers import wait_for
from support_disk import fill, loop_ext4, shutdown_fs, small_tmpfs

pytestmark = pytest.mark.slow

ELECTION_MAX = 0.6  # RaftSettings default


@contextlib.contextmanager
def cluster_on_tmpfs(root: Path, size: str = "16m",
                     extra: list[str] | None = None) -> Iterator[tuple[ProcCluster, list[Path]]]:
    with contextlib.ExitStack() as stack:
        mounts = [stack.enter_context(small_tmpfs(root / f"node{i}" / "data", size))
                  for i in range(3)]
        cluster = ProcCluster(root, extra_args=["--disk-min-free", str(256 << 10),
                                                *(extra or [])])
        stack.callback(cluster.stop_all)  # runs before the unmounts
        cluster.start_all()
        yield cluster, mounts


def submit_all(c: ProcCluster, via: int, tag: str, n: int, acked: list[str]) -> int:
    """n sequential writes through node ``via``; records the acknowledged rids."""
    ok = 0
    for k in range(n):
        rid = f"{tag}-{k}"
        try:
            reply = c.submit(via, {"rid": rid, "value": k}, timeout=1.0)
        except OSError:
            continue
        if "ok" in reply:
            acked.append(rid)
            ok += 1
    return ok


def holds_all(c: ProcCluster, i: int, rids: list[str]) -> bool:
    try:
        state = c.state(i)["ok"]
    except OSError:
        return False
    return all(r in state["rids"] for r in rids)


def test_enospc_on_a_follower_mid_burst_then_freed(tmp_path: Path) -> None:
    with cluster_on_tmpfs(tmp_path) as (c, mounts):
        leader = c.leader()
        victim = (leader + 1) % 3
        acked: list[str] = []
        assert submit_all(c, leader, "before", 20, acked) == 20
        filler = fill(mounts[victim])
        for k in range(30):  # the victim's appends fail mid-burst (small records may
            submit_all(c, leader, f"full{k}", 10, acked)  # still fit its last page first)
            st = c.status(victim)
            if st and st.get("persist_fault"):
                break
        st = c.status(victim)
        assert st is not None
        fault = st.get("persist_fault") or ""
        assert fault.startswith("cannot persist: ENOSPC"), st
        assert st["role"] != "leader"
        assert len(acked) >= 30, "the two healthy nodes keep committing"
        filler.unlink()

        def rejoined() -> bool:
            mine, lead = c.status(victim), c.status(c.leader())
            return bool(mine and lead and mine.get("persist_fault") is None
                        and mine["last_applied"] >= lead["commit_index"])

        wait_for(rejoined, 20, "the follower rejoins once space is back")
        # Now let the once-full follower be needed for every commit: stop the third
        # node, so what the leader acknowledges is on the leader and the victim only.
        bystander = 3 - leader - victim
        c.kill(bystander, whole_group=True)
        assert submit_all(c, leader, "after", 20, acked) == 20
        c.kill_all()
        # Without the old leader, the victim and the bystander must still hold every
        # acknowledged write: the victim's journal has no garbage before them.
        c.start(victim)
        c.start(bystander)
        for i in (victim, bystander):
            wait_for(lambda i=i: holds_all(c, i, acked), 20,
                     f"node {i} holds every acknowledged write after a full restart")
        c.start(leader)
        wait_for(lambda: holds_all(c, leader, acked), 20, "the old leader catches up")
        log = "".join(p.read_text(errors="replace")
                      for p in (tmp_path / f"node{victim}").glob("out-*.log"))
        assert "torn" not in log and "Traceback" not in log, log[-3000:]


def test_leader_disk_full_hands_over_leadership(tmp_path: Path) -> None:
    with cluster_on_tmpfs(tmp_path) as (c, mounts):
        old = c.leader()
        others = [i for i in range(3) if i != old]
        acked: list[str] = []
        assert submit_all(c, old, "before", 10, acked) == 10
        fill(mounts[old])
        # the next write fails on the leader's disk; it must step down at once
        t0 = time.monotonic()
        deadline = t0 + 10 * ELECTION_MAX + 5.0  # "a few election timeouts", loaded host
        k = 0
        new = None
        while time.monotonic() < deadline and k < 2000:
            k += 1
            try:
                reply = c.submit(others[k % 2], {"rid": f"during-{k}", "value": k}, timeout=0.5)
            except OSError:
                continue
            if "ok" in reply:
                acked.append(f"during-{k}")
                st = [c.status(i) for i in others]
                leads = [i for i, s in zip(others, st, strict=True)
                         if s and s.get("role") == "leader"]
                if leads:
                    new = leads[0]
                    break
        assert new is not None, "no other node took over while the leader's disk was full"
        st_old = c.status(old)
        assert st_old is not None and st_old["role"] != "leader", st_old
        assert (st_old.get("persist_fault") or "").startswith("cannot persist: ENOSPC")
        assert submit_all(c, new, "after", 20, acked) == 20, "commits continue"
        for i in others:
            wait_for(lambda i=i: holds_all(c, i, acked), 10, f"node {i} has every write")


def test_follower_fs_shut_down_exits_with_one_clear_line(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        victim = 2
        mnt = stack.enter_context(loop_ext4(tmp_path / f"node{victim}" / "data",
                                            tmp_path / "disk.img"))
        c = ProcCluster(tmp_path, extra_args=["--disk-fatal-after", "1.5"])
        stack.callback(c.stop_all)
        c.start_all()
        leader = c.leader()
        if leader == victim:  # we want a follower: move leadership away
            c.kill(victim, whole_group=True)
            c.start(victim)
            leader = c.leader()
            wait_for(lambda: c.status(victim) is not None, 10, "victim back")
        acked: list[str] = []
        assert submit_all(c, leader, "before", 10, acked) == 10
        shutdown_fs(mnt)
        submit_all(c, leader, "dead", 30, acked)
        proc = c.procs[victim]
        assert proc is not None
        wait_for(lambda: proc.poll() is not None, 30, "the node with a dead disk exits")
        assert proc.returncode == 3
        latest = max((tmp_path / f"node{victim}").glob("out-*.log"),
                     key=lambda p: p.stat().st_mtime)
        out = latest.read_text(errors="replace")
        fatal = [line for line in out.splitlines() if line.startswith("FATAL")]
        assert len(fatal) == 1 and "EIO" in fatal[0] and str(mnt) in fatal[0], out[-2000:]
        assert "Traceback" not in out, out[-3000:]
        assert len(out.splitlines()) <= 20, f"{len(out.splitlines())} log lines:\n{out[-3000:]}"
        c.procs[victim] = None
        assert submit_all(c, leader, "after", 10, acked) == 10, "the majority carries on"
