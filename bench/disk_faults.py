"""Disk faults on a 3-node Raft cluster (tests/raft/node_main.py processes, fsync on).

Each node's data dir is a 16 MiB tmpfs. Per trial:
* leader disk full: fill the leader's tmpfs, then submit through the survivors
  until one commits; prints the time from the fill to that commit (the old
  leader must step down and the others elect);
* follower recovery: fill a follower's tmpfs mid-burst, free it, and time from
  the free to the follower persisting and caught up again.
Root only (mounts). Prints one JSON object.
Usage: sudo .venv/bin/python bench/disk_faults.py [--trials T]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "raft"))
sys.path.insert(0, str(ROOT / "tests"))

from cluster_proc import ProcCluster  # noqa: E402
from support_disk import fill, small_tmpfs  # noqa: E402


def ms(x: float) -> float:
    return round(x * 1000, 1)


def submit(c: ProcCluster, via: int, rid: str) -> bool:
    try:
        return "ok" in c.submit(via, {"rid": rid, "value": 0}, timeout=0.5)
    except OSError:
        return False


def leader_full(c: ProcCluster, mounts: list[Path], trial: int) -> float:
    old = c.leader()
    others = [i for i in range(3) if i != old]
    assert submit(c, old, f"warm-{trial}")
    filler = fill(mounts[old])
    t0 = time.monotonic()
    try:
        for k in range(5000):
            if time.monotonic() - t0 > 30:
                raise RuntimeError("no commit within 30 s")
            if submit(c, others[k % 2], f"lf-{trial}-{k}"):
                st = c.status(others[k % 2]) or {}
                if st.get("leader") not in (None, c.raft[old]):
                    return time.monotonic() - t0
        raise RuntimeError("no commit")
    finally:
        filler.unlink()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (c.status(old) or {}).get("persist_fault"):
            time.sleep(0.05)


def follower_recovery(c: ProcCluster, mounts: list[Path], trial: int) -> float:
    leader = c.leader()
    victim = (leader + 1) % 3
    filler = fill(mounts[victim])
    for k in range(300):  # small records may still fit in the journal's last page
        submit(c, leader, f"fr-{trial}-{k}")
        if k % 10 == 0 and (c.status(victim) or {}).get("persist_fault"):
            break
    else:
        raise RuntimeError("the follower did not notice its full disk")
    filler.unlink()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        mine, lead = c.status(victim), c.status(c.leader())
        if mine and lead and mine.get("persist_fault") is None \
                and mine["last_applied"] >= lead["commit_index"]:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise RuntimeError("the follower did not rejoin within 30 s")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=5)
    args = p.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        mounts = [stack.enter_context(small_tmpfs(root / f"node{i}" / "data", "16m"))
                  for i in range(3)]
        c = ProcCluster(root, extra_args=["--disk-min-free", str(256 << 10)])
        stack.callback(c.stop_all)
        c.start_all()
        takeover = [leader_full(c, mounts, t) for t in range(args.trials)]
        rejoin = [follower_recovery(c, mounts, t) for t in range(args.trials)]
        for name, xs in (("leader_disk_full_to_commit_ms", takeover),
                         ("follower_free_to_caught_up_ms", rejoin)):
            out[name] = {"median": ms(statistics.median(xs)), "max": ms(max(xs)),
                         "all": [ms(x) for x in xs]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
