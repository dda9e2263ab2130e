"""The embedded default store: the shared state machine on our hardened Raft log.

All pysyncobj hazards are handled in `vnfha.coordinator.raft`; this adapter
only maps the store contract onto it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from vnfha.coordinator.commands import Command, InvalidCommand, validate_command
from vnfha.coordinator.model import ClusterState
from vnfha.coordinator.raft.errors import CommitTimeoutError, NoLeaderError, RaftError
from vnfha.coordinator.raft.log import ReplicatedLog
from vnfha.coordinator.raft.settings import OVERLOAD_TIMING_STRETCH, RaftSettings
from vnfha.coordinator.state_machine import StateMachine, refused
from vnfha.coordinator.store.base import (
    Guarantees,
    OutcomeUnknown,
    Result,
    Store,
    StoreUnavailable,
)

log = logging.getLogger(__name__)


class RaftStore(Store):
    # The journal survives restarts and `read_gate` holds reads until it is re-applied;
    # the quorum is the coordinators; submit_as_leader checks leadership just before
    # proposing (a deposed leader in a minority cannot commit anyway).
    guarantees = Guarantees(durable=True, fenced_leader_writes=False, external_quorum=False,
                            monotonic_reads_after_restart=True, shared=True)

    def __init__(self, node_id: str, settings: RaftSettings,
                 ids_by_address: dict[str, str]) -> None:
        super().__init__()
        self._node_id = node_id
        self._ids = ids_by_address  # raft address -> coordinator id
        self._sm = StateMachine()
        self._sm.log_events = False  # until its own journal is re-applied (_on_applied)
        self._log = ReplicatedLog(settings, self._sm, on_applied=self._on_applied,
                                  on_fatal=self._on_fatal)
        self._running = False
        self._fatal_handler: Callable[[str], None] | None = None

    def set_fatal_handler(self, handler: Callable[[str], None]) -> None:
        self._fatal_handler = handler

    def _on_fatal(self, line: str) -> None:
        if self._fatal_handler is not None:
            self._fatal_handler(line)

    def _on_applied(self, command: dict[str, Any], result: dict[str, Any]) -> None:
        if not self._sm.log_events and self._log.catching_up() is None:
            self._replayed()
        self._notify()

    def _replayed(self) -> None:
        """This node has re-applied its own journal: log once, then every event again.
        Entries up to the journal's end at start were written here before the restart,
        so their events were logged here then (or, for the last few not yet applied,
        by the coordinators that applied them) and are in the replicated history."""
        self._sm.log_events = True
        if self._sm.quiet_events:
            log.info("raft journal re-applied after start", extra={
                "events": self._sm.quiet_events, "revision": self._sm.state.revision})

    def start(self) -> None:
        self._log.start()
        self._running = True
        if not self._sm.log_events and self._log.catching_up() is None:
            self._replayed()  # nothing to re-apply (a new node, or a snapshot at stop)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._log.stop()
        self._notify()

    def submit(self, command: Command, timeout: float = 2.0) -> Result:
        if not self._running:
            raise StoreUnavailable("raft store is not running")
        try:
            validate_command(command)  # refuse garbage before it reaches the log
        except InvalidCommand as e:
            return refused("invalid", str(e))
        try:
            return self._log.submit(command, timeout=timeout)
        except NoLeaderError as e:
            raise StoreUnavailable(str(e)) from e
        except CommitTimeoutError as e:
            raise OutcomeUnknown(str(e)) from e
        except RaftError as e:
            raise StoreUnavailable(str(e)) from e

    def state(self) -> ClusterState:
        return self._sm.state

    def is_leader(self) -> bool:
        return self._running and self._log.is_leader()

    def leader_since(self) -> float | None:
        return self._log.leader_since() if self._running else None

    def quorum_contact(self) -> float | None:
        return self._log.quorum_contact() if self._running else None

    def leader_id(self) -> str | None:
        if not self._running:
            return None
        addr = self._log.leader_address()
        return None if addr is None else self._ids.get(addr, addr)

    def voters_in_contact(self) -> tuple[int, int]:
        """(voters connected, this node included; voters in all). pysyncobj keeps a
        follower's last leader while it is connected to nobody, so `leader_id` alone
        cannot tell an isolated node; readiness (coordinator/metrics.py) also asks this."""
        total = self._log.settings.cluster_size
        if not self._running:
            return 0, total
        peers = self._log.status().get("peers_connected", [])
        return 1 + len(peers), total

    def caught_up(self) -> bool:
        if not self._running or self._log.leader_address() is None:
            return False
        if self._log.catching_up() is not None:
            return False
        st = self._log.status()
        return int(st.get("last_applied", 0)) >= int(st.get("commit_index", 0))

    def pace_for_overload(self, overloaded: Callable[[], bool]) -> None:
        self._log.timing_stretch = lambda: OVERLOAD_TIMING_STRETCH if overloaded() else 1.0

    def store_reachable(self) -> bool:
        return self._running and self._log.persist_fault() is None

    def read_gate(self) -> str | None:
        if not self._running:
            return "raft store is not running"
        return self._log.catching_up()

    def not_ready_reason(self) -> str | None:
        if not self._running:
            return "raft store is not running"
        fault = self._log.persist_fault()
        if fault is not None:
            return fault
        connected, total = self.voters_in_contact()
        if connected < total // 2 + 1:  # a leader remembered while cut off is no leader
            return f"no quorum: in contact with {connected} of {total} raft voters"
        if self._log.leader_address() is None:
            return "no raft leader known"
        return self._log.catching_up()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "raft", "node": self._node_id,
                               "revision": self._sm.state.revision}
        if self._running:
            out.update({k: v for k, v in self._log.status().items()
                        if isinstance(v, (int, float, str, bool))})
        out["checked_at"] = round(time.time(), 3)
        return out
