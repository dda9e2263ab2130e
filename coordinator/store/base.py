"""The one store interface every backend implements, and the contract it keeps.

A store orders commands, makes them durable, and applies them with the shared
state machine (`vnfha.coordinator.state_machine`). It also says who leads: only
the leader runs failure detection and acknowledges keepalives.

Error contract (after Patroni's DCS): *lost a race* is a result, *cannot know*
is an exception.

* `submit` returns the state machine's result. ``{"ok": False, "error":
  "stale_epoch"}`` and the other refusals mean the command was durably
  decided *not* to apply; the state is unchanged.
* `StoreUnavailable` means the command was not applied and will not be (for
  example no leader was reachable when it was submitted).
* `OutcomeUnknown` means it may or may not have been applied. Retry with the
  same command (same ``rid``): the state machine applies a request id once.

Beyond that contract backends differ, and each says how in one place: its
`guarantees` (a `Guarantees`, below). Config load and the contract suite read the
declaration instead of asking which backend they have, and the contract suite checks
that each declared guarantee holds (tests/contract/test_store_guarantees.py).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import ClusterState

Result = dict[str, Any]


class StoreError(Exception):
    """Base of the exceptions a store raises."""


class StoreUnavailable(StoreError):
    """Not applied, and it will not be (no leader, store stopped, ...)."""


class OutcomeUnknown(StoreError):
    """Maybe applied. Retry the same command (same rid) to learn the result."""


@dataclass(frozen=True)
class Guarantees:
    """What a backend promises beyond the common contract (after tooz's per-driver
    characteristics): declared by each backend class, read by config load and the
    contract suite, so nothing else needs to know which backend it has."""

    #: The state outlives a restart of every coordinator process (Raft's journal,
    #: etcd's own storage). False: a restart starts from the empty state.
    durable: bool
    #: `submit_as_leader` is refused by the backend itself, in the same write, once
    #: this node is no longer the leader (etcd compares the leader key in the
    #: transaction). False: a best-effort check just before submitting; safety then
    #: rests on the state machine's epoch compare-and-set (and, for Raft, on a deposed
    #: leader in a minority being unable to commit).
    fenced_leader_writes: bool
    #: Commits are decided by a quorum outside the coordinators (an etcd cluster), so
    #: the coordinators' own number does not decide availability of writes.
    external_quorum: bool
    #: After a restart, reads never return older state than this node served before
    #: it (`read_gate` holds them until it has caught up).
    monotonic_reads_after_restart: bool
    #: Several coordinators may share the state (cluster.members may list more than one).
    shared: bool


class Store(ABC):
    """Durable, ordered application of commands, plus leadership facts."""

    #: What this backend promises (see Guarantees); every backend class sets it.
    guarantees: ClassVar[Guarantees]

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._listeners: list[Callable[[], None]] = []

    @abstractmethod
    def start(self) -> None:
        """Open files and sockets, join the cluster. Returns once serving locally."""

    @abstractmethod
    def stop(self) -> None:
        """Release everything; safe to call twice."""

    @abstractmethod
    def submit(self, command: Command, timeout: float = 2.0) -> Result:
        """Replicate and apply `command` atomically; return the state machine's result.

        Atomic: the command applies entirely or not at all, at one point in the
        total order every node sees. Blocks at most `timeout` seconds.
        """

    def submit_as_leader(self, command: Command, timeout: float = 2.0) -> Result:
        """Submit a decision of this node's leadership (the controller's commands).

        Applied only while this node leads: a node that is not (or no longer) the
        leader gets `StoreUnavailable`. A backend that can make the write itself
        conditional on leadership does so (etcd compares the leader key in the same
        transaction, so a deposed leader is refused even if it has not noticed yet);
        the default checks just before submitting (Raft: a deposed leader in a
        minority cannot commit anyway)."""
        if not self.is_leader():
            raise StoreUnavailable("not the leader: a leader's decision is not submitted")
        return self.submit(command, timeout)

    @abstractmethod
    def state(self) -> ClusterState:
        """The latest locally applied state (immutable). On a follower it may lag
        the leader by the commands still in flight; it never goes backwards."""

    @abstractmethod
    def is_leader(self) -> bool:
        """True if this node leads now. Followers must not run failure detection."""

    @abstractmethod
    def leader_since(self) -> float | None:
        """time.monotonic() at which this node last became leader; None if not leader."""

    @abstractmethod
    def quorum_contact(self) -> float | None:
        """A monotonic time m such that no other leader can have been elected before
        m; None if not leader. Shown in status (how fresh this leader's claim is).
        Keepalive acknowledgements do not depend on it: with quorum leases every
        coordinator acknowledges (docs/design.md)."""

    @abstractmethod
    def leader_id(self) -> str | None:
        """Identifier (the cluster-config node name) of the current leader, if known."""

    def caught_up(self) -> bool:
        """A leader is known and this node has applied everything it knows to be
        committed: its state is as fresh as a read on this node can be."""
        return self.leader_id() is not None

    def pace_for_overload(self, overloaded: Callable[[], bool]) -> None:
        """Tell the store how to ask whether this coordinator is overloaded now (any
        thread may call `overloaded`). Raft: election timeouts and the leader fallback
        are stretched OVERLOAD_TIMING_STRETCH times while it says so, so a starved
        cluster still elects and keeps a leader (settings.RaftSettings.timing); only how
        soon an election starts or a leader gives up changes, never what is safe.
        Memory and etcd (etcd runs its own elections): nothing."""
        return None

    def store_reachable(self) -> bool:
        """True while this node is in touch with the store that holds the state.

        A coordinator acknowledges agents' keepalives only while this holds
        (service/agent.py). Memory: always True. Raft: False while this node
        cannot persist (disk full or failing, docs/design.md "Disk faults"): it
        can take no part in committing anything, so its acknowledgement would
        count towards an agent's majority while it cannot back the decision it
        promises to inform; the agent relies on the coordinators that can. An
        external store (etcd) says False once its last successful round trip is
        older than its session TTL, so a coordinator cut off from etcd stops
        renewing agents' leases (docs/design.md)."""
        return True

    def read_gate(self) -> str | None:
        """Why reads here could return older state than this node served before it
        restarted ("catching up: applied X < Y"), or None.

        Reads (status, epochs, assignments, watches) answer UNAVAILABLE with this
        reason while it is set (service/errors.py), so no client ever sees state,
        roles or epochs go backwards. Raft: set from start until the node has
        re-applied its own journal (log.py ``catching_up``). Memory: no restart
        survives. etcd: set until the state was first read from etcd (a coordinator
        started while etcd was unreachable would otherwise serve an empty state);
        afterwards etcd's revisions only move the mirror forward."""
        return None

    def not_ready_reason(self) -> str | None:
        """Why this coordinator should get no traffic now, or None when it is ready.

        Drives gRPC health (NOT_SERVING for "" and every service, re-evaluated
        every 100 ms by server.py): the store is unreachable or cannot persist,
        no leader is known (no quorum), or reads are gated (`read_gate`)."""
        if not self.store_reachable():
            return "store unreachable"
        if self.leader_id() is None:
            return "no leader known"
        return self.read_gate()

    def set_fatal_handler(self, handler: Callable[[str], None]) -> None:
        """Register `handler(line)`, called once if the backend's local storage failed
        for good (Raft: EIO that outlasted its retries). The coordinator then exits
        with that line. Backends without local storage never call it."""
        del handler  # nothing to fail here

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Backend facts for `vnfha status` (term, indexes, peers)."""

    # -- change notification, shared by every backend --------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from the applying thread; keep it short) after every change."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
        for callback in self._listeners:
            callback()

    def wait_for_change(self, after_revision: int, timeout: float) -> ClusterState:
        """Block until the state's revision exceeds `after_revision` or `timeout` passes;
        return the state either way (callers compare revisions)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                st = self.state()
                left = deadline - time.monotonic()
                if st.revision > after_revision or left <= 0:
                    return st
                self._changed.wait(left)
