"""State-sync figures: peer-sync round trip and throughput, checkpoint commit latency.

* Peer sync (loopback, one process): a SyncReceiver and a SyncSender over real
  gRPC. Sync mode: N sequential `send()` calls, each timed from append to
  acknowledgement (the receiver applied it) -> p50/p99 and updates/s. Async
  mode: N `append()` calls, then wait for a zero lag -> updates/s (batched).
* Checkpoint commit: 3 `vnfha coordinator` processes (Raft, fsync on) on
  loopback and one agent session holding the active role; N sequential
  PutCheckpoint calls of --checkpoint-bytes each, timed at the client from
  request to committed answer -> p50/p99, sent to the leader and to a follower
  (which forwards through the store).

Prints one JSON object. Usage:
    .venv/bin/python bench/state_sync.py [--updates N] [--checkpoints N] [--checkpoint-bytes B]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from cluster import CoordinatorCluster
from support import wait_for

from vnfha.agents.session import AgentSession, HostedMember
from vnfha.agents.statesync.receiver import SyncReceiver
from vnfha.agents.statesync.sender import FixedEpoch, SyncSender
from vnfha.agents.statesync.store import StateClient


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x: float) -> float:
    return round(x * 1000, 3)


def summary(lat: list[float]) -> dict[str, float]:
    return {"n": len(lat), "p50_ms": ms(statistics.median(lat)), "p99_ms": ms(pct(lat, 0.99)),
            "max_ms": ms(max(lat))}


class CountingApp:
    def __init__(self) -> None:
        self.n = 0

    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        self.n += len(entries)

    def install_snapshot(self, sequence: int, data: bytes) -> None:
        pass


def peer_sync(updates: int, size: int) -> dict[str, object]:
    app = CountingApp()
    rx = SyncReceiver("bench", app, lambda g, e: 1, bind="127.0.0.1:0")
    rx.start()
    addr = f"127.0.0.1:{rx.port}"
    payload = os.urandom(size)
    try:
        tx = SyncSender("bench", FixedEpoch(1), [addr], base=(0, b""), mode="sync")
        for _ in range(200):  # warm up: connection, install
            tx.send(payload)
        lat = []
        t0 = time.perf_counter()
        for _ in range(updates):
            t = time.perf_counter()
            tx.send(payload)
            lat.append(time.perf_counter() - t)
        sync_rate = updates / (time.perf_counter() - t0)
        tx.close()
        rx.reset()
        tx = SyncSender("bench", FixedEpoch(1), [addr], base=(0, b""), mode="async",
                        max_lag=10_000)
        tx.send(payload)
        while tx.lag()[addr]:
            time.sleep(0.001)
        t0 = time.perf_counter()
        for _ in range(updates):
            tx.append(payload)
        while tx.lag()[addr]:
            time.sleep(0.0005)
        async_rate = updates / (time.perf_counter() - t0)
        batches = tx.status()["batches"]
        tx.close()
    finally:
        rx.stop()
    return {"sync_round_trip": summary(lat), "sync_updates_per_s": round(sync_rate),
            "async_updates_per_s": round(async_rate), "async_batches": batches,
            "entry_bytes": size}


def checkpoints(n: int, size: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="vnfha-statebench-") as tmp:
        c = CoordinatorCluster(Path(tmp), groups=[{"name": "web"}, {"name": "kv"}])
        session = None
        try:
            c.start_all()
            session = AgentSession("vm1", [HostedMember("kv", "kv-1", 100)], c.endpoints,
                                   ttl=0.6, interval=0.1, tls=c.tls_for("node/vm1"))
            session.start()
            leader = wait_for(c.leader, 10, what="leader")
            g = wait_for(lambda: (g := c.group(leader, "kv")) is not None and g.active
                         and g, 15, what="kv-1 active")
            follower = next(x for x in c.ids if x != leader)
            data = os.urandom(size)
            out: dict[str, object] = {"checkpoint_bytes": size}
            for name, cid in (("via_leader", leader), ("via_follower", follower)):
                with StateClient([c.api[cid]], tls=c.tls_for("node/vm1")) as store:
                    for _ in range(20):
                        store.put_checkpoint("kv", g.epoch, data)
                    lat = []
                    for _ in range(n):
                        t = time.perf_counter()
                        store.put_checkpoint("kv", g.epoch, data)
                        lat.append(time.perf_counter() - t)
                out[name] = summary(lat)
            return out
        finally:
            if session is not None:
                session.stop()
            c.stop_all()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--updates", type=int, default=5000)
    p.add_argument("--entry-bytes", type=int, default=100)
    p.add_argument("--checkpoints", type=int, default=500)
    p.add_argument("--checkpoint-bytes", type=int, default=4096)
    args = p.parse_args()
    print(json.dumps({"peer_sync_loopback": peer_sync(args.updates, args.entry_bytes),
                      "checkpoint_commit_3_coordinators":
                          checkpoints(args.checkpoints, args.checkpoint_bytes)}, indent=2))


if __name__ == "__main__":
    main()
