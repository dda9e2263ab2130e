"""Commit latency of a 3-node Raft cluster with and without a flood on every Raft port.

Runs three node processes (tests/raft/node_main.py, fsync on). Phase 1
measures commit latency with nobody else on the ports; phase 2 starts
tests/raft/flooder.py (one unauthenticated client per port streaming
bytes behind a huge length prefix, reconnecting whenever it is dropped)
for ``--seconds`` and measures again. Latency is timed inside the leader
process, from submit() to "applied here", in batches of sequential
commits. Prints one JSON object.

Usage: .venv/bin/python bench/raft_flood.py [--seconds 60] [--baseline-seconds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "raft"))

from cluster_proc import ProcCluster, call

RAFT_TESTS = Path(__file__).resolve().parents[1] / "tests" / "raft"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(lat: list[float], failed: int, seconds: float) -> dict[str, Any]:
    if not lat:
        return {"commits": 0, "failed_batches": failed, "seconds": round(seconds, 1)}
    return {"commits": len(lat), "failed_batches": failed, "seconds": round(seconds, 1),
            "commits_per_s": round(len(lat) / seconds, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 3),
            "p99_ms": round(pct(lat, 0.99) * 1000, 3), "max_ms": round(max(lat) * 1000, 3)}


def measure(c: ProcCluster, seconds: float, batch: int, tag: str) -> dict[str, Any]:
    """Sequential commits on the current leader, in batches, for ``seconds``."""
    lat: list[float] = []
    failed = 0
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        n += 1
        try:
            leader = c.leader(timeout=10.0)
            reply = call(c.ctl[leader], {"op": "bench", "n": batch, "prefix": f"{tag}{n}"},
                         timeout=batch * 6.0)
        except (OSError, RuntimeError, TimeoutError):
            failed += 1
            continue
        if "ok" in reply:
            lat.extend(reply["ok"])
        else:
            failed += 1
    return summary(lat, failed, time.monotonic() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=60.0, help="flood duration")
    p.add_argument("--baseline-seconds", type=float, default=20.0)
    p.add_argument("--batch", type=int, default=50, help="commits per bench call")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="raftflood-") as tmp:
        c = ProcCluster(Path(tmp), n=3)
        try:
            c.start_all()
            leader = c.leader()
            c.submit(leader, {"rid": "warm", "value": 0}, timeout=2)
            quiet = measure(c, args.baseline_seconds, args.batch, "q")
            targets = list(c.raft)
            flooder = subprocess.Popen(
                [sys.executable, str(RAFT_TESTS / "flooder.py"), "--seconds",
                 str(args.seconds), *targets], stdout=subprocess.PIPE, text=True)
            try:
                time.sleep(1.0)
                flooded = measure(c, max(1.0, args.seconds - 2.0), args.batch, "f")
                out, _ = flooder.communicate(timeout=args.seconds + 30)
            finally:
                if flooder.poll() is None:
                    flooder.kill()
                    flooder.wait()
            roles = {c.raft[i]: (c.status(i) or {}).get("role") for i in range(c.n)}
        finally:
            c.stop_all()
    print(json.dumps({
        "cluster": "3 processes, loopback, fsync on",
        "without_flood": quiet,
        "with_flood": flooded,
        "flood": json.loads(out) if out.strip() else None,
        "roles_after": roles,
    }, indent=2))


if __name__ == "__main__":
    main()
