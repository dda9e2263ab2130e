"""Shared test helpers: a dedup-by-rid counter state machine, free ports, cluster builder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vnfha.coordinator.raft import (
    CommitTimeoutError,
    NoLeaderError,
    RaftSettings,
    ReplicatedLog,
)
from vnfha_lab.ports import free_ports

SECRET = "test-cluster-secret-of-at-least-32-bytes"


class CounterSM:
    """Counters keyed by name; every rid applies once, repeats return the first result."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.epoch = 0
        self.applied_rids: list[str] = []
        self.lock = threading.Lock()

    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        rid = command.get("rid")
        if not isinstance(rid, str):
            return {"error": "no rid"}
        if rid in self.results:
            return self.results[rid]
        key = command.get("key", "c")
        if not isinstance(key, str):
            return {"error": "bad key"}
        self.counters[key] = self.counters.get(key, 0) + 1
        self.epoch += 1
        self.applied_rids.append(rid)
        result = {"ok": True, "value": self.counters[key], "epoch": self.epoch}
        self.results[rid] = result
        return result

    def snapshot(self) -> dict[str, Any]:
        return {"counters": dict(self.counters), "results": dict(self.results),
                "epoch": self.epoch, "applied_rids": list(self.applied_rids)}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.counters = dict(snapshot["counters"])
        self.results = dict(snapshot["results"])
        self.epoch = int(snapshot["epoch"])
        self.applied_rids = list(snapshot["applied_rids"])




def cluster_settings(tmp: Path, n: int, **kw: Any) -> list[RaftSettings]:
    addrs = [f"127.0.0.1:{p}" for p in free_ports(n)]
    out = []
    for i, addr in enumerate(addrs):
        peers = tuple(a for a in addrs if a != addr)
        kw.setdefault("secret", SECRET if peers else None)
        out.append(RaftSettings(self_address=addr, peers=peers, data_dir=tmp / f"n{i}", **kw))
    return out


def wait_for(pred: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_leader(logs: list[ReplicatedLog], timeout: float = 10.0) -> ReplicatedLog:
    def find() -> ReplicatedLog | None:
        leaders = [lg for lg in logs if lg.is_leader()]
        return leaders[0] if len(leaders) == 1 else None
    return wait_for(find, timeout, "a single leader")  # type: ignore[no-any-return]


def submit_retry(log: ReplicatedLog, command: dict[str, Any], total: float = 10.0,
                 each: float = 1.0) -> dict[str, Any]:
    """Submit with the same rid until it is applied (what a real client does)."""
    deadline = time.monotonic() + total
    while True:
        try:
            return log.submit(command, timeout=each)
        except (NoLeaderError, CommitTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
