"""Wake asyncio watchers when the store changes.

Store listeners run on the store's own thread; watch streams live on the
gRPC event loop. A watcher takes the current `ticket` *before* reading the
state, so a change between its read and its wait is never missed.
"""

from __future__ import annotations

import asyncio


class ChangeFeed:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def notify_threadsafe(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._notify)
        except RuntimeError:
            pass  # the loop is closed: the server is shutting down, nobody is watching

    def _notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        return self._event

    async def wait(self, ticket: asyncio.Event, timeout: float) -> None:
        try:
            await asyncio.wait_for(ticket.wait(), timeout)
        except TimeoutError:
            pass
