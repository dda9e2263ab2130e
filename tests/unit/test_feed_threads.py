"""The change feed's report ticket is set from the fast path's intake thread too: a
waiter on the event loop (a switchover waiting for its new active's report) must wake."""

from __future__ import annotations

import asyncio
import threading

from vnfha.coordinator.service.feed import ChangeFeed


def test_reports_changed_from_another_thread_wakes_the_loops_waiter() -> None:
    """The waiter must resume because of the set, not because the loop happened to wake
    for something else: an Event set off its loop leaves the loop asleep in select()
    until its next timer (here `later`), which the waiter must not need."""

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        feed = ChangeFeed(loop)
        ticket = feed.report_ticket()
        order: list[str] = []
        loop.call_later(3.0, order.append, "later")
        threading.Timer(0.2, feed.reports_changed).start()  # while the waiter waits
        waiter = asyncio.ensure_future(ticket.wait())
        await asyncio.wait([waiter], timeout=10.0)
        order.append("woken" if waiter.done() else "not woken")
        return order

    assert asyncio.run(scenario()) == ["woken"]


def test_reports_changed_on_the_loop_sets_the_ticket_at_once() -> None:
    async def scenario() -> bool:
        feed = ChangeFeed(asyncio.get_running_loop())
        ticket = feed.report_ticket()
        feed.reports_changed()
        return ticket.is_set() and not feed.report_ticket().is_set()

    assert asyncio.run(scenario())
