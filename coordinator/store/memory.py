"""In-memory store: one process, always the leader. For unit tests and laptops.

Nothing survives a restart; use the raft store (single node is fine) for that.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.state_machine import StateMachine
from vnfha.coordinator.store.base import Guarantees, Result, Store, StoreUnavailable


class MemoryStore(Store):
    # One process, nothing on disk: for tests, demos and a single coordinator.
    guarantees = Guarantees(durable=False, fenced_leader_writes=False, external_quorum=False,
                            monotonic_reads_after_restart=False, shared=False)

    def __init__(self, node_id: str = "memory") -> None:
        super().__init__()
        self._node_id = node_id
        self._sm = StateMachine()
        self._lock = threading.Lock()
        self._running = False
        self._since: float | None = None

    def start(self) -> None:
        self._running = True
        self._since = time.monotonic()

    def stop(self) -> None:
        self._running = False
        self._notify()

    def submit(self, command: Command, timeout: float = 2.0) -> Result:
        if not self._running:
            raise StoreUnavailable("memory store is not running")
        with self._lock:
            result = self._sm.apply(command)
        self._notify()
        return result

    def state(self) -> ClusterState:
        return self._sm.state

    def is_leader(self) -> bool:
        return self._running

    def leader_since(self) -> float | None:
        return self._since if self._running else None

    def quorum_contact(self) -> float | None:
        return time.monotonic() if self._running else None

    def leader_id(self) -> str | None:
        return self._node_id if self._running else None

    def describe(self) -> dict[str, Any]:
        return {"backend": "memory", "revision": self._sm.state.revision}
