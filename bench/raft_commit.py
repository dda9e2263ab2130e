"""Raft commit latency and leader fail-over time on a 3-node loopback cluster.

Runs three node processes (tests/raft/node_main.py: one ReplicatedLog each,
fsync on), then
* commit latency: N sequential submits on the leader, timed inside the
  leader process from submit() to "applied here" (p50/p99/max);
* fail-over: kill -9 the leader, then submit through a survivor until one
  succeeds; time from the kill to that success (repeated, the victim is
  restarted between trials).
Prints one JSON object. Usage: .venv/bin/python bench/raft_commit.py [--commands N] [--trials T]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "raft"))

from cluster_proc import ProcCluster, call


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x: float) -> float:
    return round(x * 1000, 3)


def wait_caught_up(c: ProcCluster, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sts = [c.status(i) for i in range(c.n)]
        if all(sts) and len({s["last_applied"] for s in sts if s}) == 1 \
                and all(len(s["peers_connected"]) == c.n - 1 for s in sts if s):
            return
        time.sleep(0.05)


def failover_trial(c: ProcCluster, trial: int) -> float:
    leader = c.leader()
    wait_caught_up(c)
    time.sleep(0.2)
    survivor = (leader + 1) % c.n
    t_kill = time.monotonic()
    c.kill(leader, whole_group=True)
    i = 0
    while True:
        i += 1
        try:
            reply = c.submit(survivor, {"rid": f"fo{trial}-{i}", "value": i}, timeout=0.25)
        except OSError:
            reply = {}
        if reply.get("ok", {}).get("ok"):
            took = time.monotonic() - t_kill
            break
        if time.monotonic() - t_kill > 10:
            raise SystemExit("no leader within 10 s")
    c.start(leader)
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--commands", type=int, default=2000)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--no-fast-election", action="store_true",
                   help="elect only on timeout (a host that vanishes without closing sockets)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="raftbench-") as tmp:
        c = ProcCluster(Path(tmp), n=3,
                        extra_args=["--no-fast-election"] if args.no_fast_election else [])
        try:
            c.start_all()
            leader = c.leader()
            wait_caught_up(c)
            c.submit(leader, {"rid": "warm", "value": 0}, timeout=2)
            reply = call(c.ctl[leader], {"op": "bench", "n": args.commands, "prefix": "b"},
                         timeout=600)
            lat = reply["ok"]
            st = c.status(leader) or {}
            fo = [failover_trial(c, t) for t in range(args.trials)]
        finally:
            c.stop_all()
    print(json.dumps({
        "cluster": "3 processes, loopback, fsync on, appendEntriesUseBatch=False",
        "commit_latency_ms": {"n": len(lat), "p50": ms(statistics.median(lat)),
                              "p99": ms(pct(lat, 0.99)), "max": ms(max(lat))},
        "journal_syncs_on_leader": st.get("journal_syncs"),
        "fast_election_on_disconnect": not args.no_fast_election,
        "failover_s": {"n": len(fo), "p50": round(statistics.median(fo), 3),
                       "max": round(max(fo), 3), "all": [round(x, 3) for x in fo]},
    }, indent=2))


if __name__ == "__main__":
    main()
