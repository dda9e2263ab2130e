"""Wake asyncio watchers when the store changes.

Store listeners run on the store's own thread; watch streams live on the
gRPC event loop. A watcher takes the current `ticket` *before* reading the
state, so a change between its read and its wait is never missed.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import fields

from vnfha.coordinator.model import ClusterState, advance_index


class ChangeFeed:
    """Wakes every watcher on a change (`states`), or only the watchers of the nodes a
    change affects (`node_states`, the WatchAssignments streams): per commit the feed
    diffs the new state against the last one it saw (`model.advance_index`, cost
    proportional to the groups the commit replaced) and sets only those nodes' tickets."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._read: Callable[[], ClusterState] | None = None
        self._seen: ClusterState | None = None
        self._node_events: dict[str, asyncio.Event] = {}
        self._node_watchers: Counter[str] = Counter()
        self.node_wakeups = 0  # node tickets set, for tests and benchmarks
        # Set when an agent's keepalive changed what it reports (a role taken or
        # released): a switchover waits for its new active's report, which no commit
        # announces.
        self._report_event = asyncio.Event()

    def notify_threadsafe(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._notify)
        except RuntimeError:
            pass  # the loop is closed: the server is shutting down, nobody is watching

    def _notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()
        self._wake_nodes()

    def _wake_nodes(self) -> None:
        if self._read is None:
            return  # no node watch ever started
        state = self._read()
        if self._seen is None or self._seen.failsafe_lease_ms != state.failsafe_lease_ms or (
                state.failsafe_lease_ms and state.nodes is not self._seen.nodes):
            # Failsafe turned on or off, or (while on) a node record changed (its failsafe
            # endpoint is in its peers' assignments): every node's assignments may change.
            affected = frozenset(self._node_events)
        else:
            affected = advance_index(self._seen, state)
        self._seen = state
        for node in affected:
            ev = self._node_events.pop(node, None)
            if ev is not None:
                self.node_wakeups += 1
                ev.set()

    def node_ticket(self, node: str) -> asyncio.Event:
        """Set when a change affects `node`'s assignments (take it before reading)."""
        ev = self._node_events.get(node)
        if ev is None:
            ev = self._node_events[node] = asyncio.Event()
        return ev

    async def node_states(self, node: str, read: Callable[[], ClusterState],
                          poll: float) -> AsyncIterator[ClusterState]:
        """The current state, then a state after each change that affects `node`'s
        assignments (and at least every `poll` seconds, in case a wake-up is lost).
        Callers compare what they derive and send only differences."""
        self._read = read
        self._node_watchers[node] += 1
        try:
            while True:
                ticket = self.node_ticket(node)
                yield read()
                await self.wait(ticket, poll)
        finally:
            self._node_watchers[node] -= 1
            if self._node_watchers[node] <= 0:
                del self._node_watchers[node]
                self._node_events.pop(node, None)

    def ticket(self) -> asyncio.Event:
        return self._event

    def report_ticket(self) -> asyncio.Event:
        """Set when an agent's report changes (take it before reading the lease table)."""
        return self._report_event

    def reports_changed(self) -> None:
        """An agent's keepalive changed its reports. Safe from any thread: the fast
        path's intake thread calls it too, and an asyncio.Event may only be set on its
        loop (set from another thread, its waiters are not woken reliably)."""
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop runs in this thread
            on_loop = False
        if on_loop:
            self._set_reports_changed()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set_reports_changed)

    def _set_reports_changed(self) -> None:
        self._report_event.set()
        self._report_event = asyncio.Event()

    async def wait_any(self, tickets: list[asyncio.Event], timeout: float) -> None:
        """Until one of `tickets` is set or `timeout` seconds passed."""
        waits = [asyncio.ensure_future(t.wait()) for t in tickets]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def wait(self, ticket: asyncio.Event, timeout: float) -> None:
        try:
            await asyncio.wait_for(ticket.wait(), timeout)
        except TimeoutError:
            pass

    async def states(self, read: Callable[[], ClusterState],
                     poll: float) -> AsyncIterator[ClusterState]:
        """Each state with a new revision, starting with the current one: the loop
        every watch stream shares (ticket first, so no change is missed; `poll`
        bounds a wait in case a notification is lost)."""
        revision = -1
        while True:
            ticket = self.ticket()
            state = read()
            if state.revision != revision:
                revision = state.revision
                yield state
                continue
            await self.wait(ticket, poll)


# ClusterState fields that state-sync data commands change (coordinator/state_data.py);
# every other field is role state. New fields count as role state by default.
DATA_FIELDS = frozenset({"revision", "checkpoints", "queues"})


class OnlyRoleChanges:
    """A store listener that passes a change on only when role state changed.

    Checkpoint and queue writes bump the revision too; without this filter each
    one would wake every WatchAssignments/WatchEvents stream and the leader's
    decide loop for nothing. Commands replace only the fields they change (the
    state is immutable), so an identity check per field is exact and cheap.
    """

    def __init__(self, state: Callable[[], ClusterState], callback: Callable[[], None]) -> None:
        self._state = state
        self._callback = callback
        self._last: ClusterState | None = None
        self._lock = threading.Lock()
        self.suppressed = 0  # data-only changes not passed on (for tests and status)

    def __call__(self) -> None:
        st = self._state()
        with self._lock:
            last, self._last = self._last, st
            changed = last is None or any(
                getattr(st, f.name) is not getattr(last, f.name)
                for f in fields(st) if f.name not in DATA_FIELDS)
            if not changed and st is not last:
                self.suppressed += 1
        if changed:
            self._callback()
