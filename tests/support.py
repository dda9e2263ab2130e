"""Helpers shared by integration and end-to-end tests (real sockets, real processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from vnfha_lab.ports import free_port as _free_port

T = TypeVar("T")


def free_port() -> int:
    return _free_port()


def wait_for(check: Callable[[], T], timeout: float, interval: float = 0.02,
             what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # the thing under test may be restarting
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))
