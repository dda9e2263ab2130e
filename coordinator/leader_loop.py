"""The thread that runs a leader-only round: the one loop under the controller and the
recovery runner.

Both run on every coordinator and act only while the store says this node leads;
both wake on a timer and at once when something changed (`wake`). Keeping that loop
in one place keeps its rules in one place:

* a round runs only while `is_leader()` answers true, asked afresh each round (a
  deposed leader stops acting within one round; the store fences its commits anyway);
* a round that raises does not end the loop: the next round retries;
* a failing round is logged with its traceback once, then at most one line per
  `error_log_interval` with the count of failures in between, so a persistent fault
  (a full disk, a store that is gone) gives one readable line, not a traceback per
  tick (issue 12: "no traceback loops");
* `stop` ends the thread within one wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

#: Seconds between two logged failures of one loop (the rest are counted).
ERROR_LOG_INTERVAL = 10.0


class LeaderLoop:
    """Calls `step` in its own thread while `is_leader()`; see the module docstring.

    `wait_for` answers how long to sleep before the next round (recomputed each round,
    so the controller can wake for the next lease expiry); `on_error` runs after a
    failed round (the controller widens its next round to every group)."""

    def __init__(self, name: str, step: Callable[[], object], is_leader: Callable[[], bool],
                 wait_for: Callable[[], float], log: logging.Logger,
                 on_error: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 error_log_interval: float = ERROR_LOG_INTERVAL) -> None:
        self._name = name
        self._step = step
        self._is_leader = is_leader
        self._wait_for = wait_for
        self._log = log
        self._on_error = on_error
        self._clock = clock
        self._error_log_interval = error_log_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_log: float | None = None
        self._unlogged_errors = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the thread runs (/livez: a coordinator whose loop died is not alive)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_once(self) -> None:
        """One round as the thread runs it (leader check, step, error handling)."""
        try:
            if self._is_leader():
                self._step()
                if self._last_error_log is not None:
                    self._recovered()
        except Exception as e:
            if self._on_error is not None:
                self._on_error()
            self._failed(e)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._wait_for())
            self._wake.clear()
            if self._stop.is_set():
                break
            self.run_once()

    def _failed(self, e: Exception) -> None:
        now = self._clock()
        if self._last_error_log is None:
            self._last_error_log = now
            self._log.exception("%s round failed; retrying next round", self._name,
                                extra={"loop": self._name})
            return
        self._unlogged_errors += 1
        if now - self._last_error_log >= self._error_log_interval:
            self._log.error("%s rounds still failing; retrying", self._name,
                            extra={"loop": self._name, "failures": self._unlogged_errors,
                                   "since_s": round(now - self._last_error_log, 1),
                                   "cause": f"{type(e).__name__}: {e}"})
            self._last_error_log = now
            self._unlogged_errors = 0

    def _recovered(self) -> None:
        """A round after failures succeeded: say so; the next failure logs its traceback."""
        self._log.info("%s rounds succeed again", self._name,
                       extra={"loop": self._name, "failures": self._unlogged_errors})
        self._last_error_log = None
        self._unlogged_errors = 0
