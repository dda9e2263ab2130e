"""The recovery hook: ask the VNF manager to heal an excluded member. Leader only.

`decide` marks a recovery *requested* once the member's exclusion is committed
and applied by the load balancers (decide_pool.py). This module is the I/O
edge that acts on it:

* **Commit, then call.** Each attempt is first committed (`recovery_update
  attempt`, compare-and-set on the attempt count), then the hook runs, then
  the result is committed. A coordinator that is not the leader, or a deposed
  leader that cannot commit, never calls the hook; two leaders cannot both
  run the same attempt.
* **Exactly once per failure.** Success is committed in the replicated state
  (`succeeded`), so a new leader never asks again. The one window left is a
  leader that dies after the hook succeeded but before the success was
  committed: the next leader retries, so the hook receives an idempotency key
  (`request_id`, the same for every attempt of one failure).
* **Retries** with exponential back-off (`backoff`, doubling, capped at
  `backoff_max`) up to `max_attempts`; then `gave_up`. Every attempt,
  failure, success and give-up is an event (`vnfha events`).

The hook is an exec command (JSON body on stdin, the fields also as
VNFHA_* environment variables, exit 0 = success), an HTTP webhook (POST of
the JSON body, 2xx = success), or both (both must succeed).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from vnfha.coordinator import commands as C
from vnfha.coordinator.leader_loop import LeaderLoop
from vnfha.coordinator.model import GroupMode
from vnfha.coordinator.store.base import Store, StoreError

log = logging.getLogger("vnfha.recovery")


@dataclass(frozen=True)
class RecoveryConfig:
    #: argv of a command to run per attempt; () = none
    exec: tuple[str, ...] = ()
    #: http://host:port/path to POST to per attempt; "" = none
    webhook: str = ""
    #: seconds one attempt (command or request) may take
    timeout: float = 5.0
    #: attempts per failure before giving up
    max_attempts: int = 3
    #: delay before the second attempt; doubles per attempt, capped at backoff_max
    backoff: float = 1.0
    backoff_max: float = 30.0
    #: request recovery without waiting for a load balancer's ack when none serves the group
    without_lb: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.exec or self.webhook)


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Wait after the `attempts`-th failed attempt: base, 2*base, 4*base, ... <= cap."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def request_body(group: str, member: str, node: str, reason: str, failure: int,
                 attempt: int) -> dict[str, Any]:
    """What the VNF manager receives. `epoch` is the pool version that excluded the
    member: it names the failure and only grows."""
    return {"group": group, "member": member, "node": node, "reason": reason,
            "epoch": failure, "attempt": attempt,
            "request_id": f"{group}/{member}/{failure}"}


class RecoveryHook:
    """Runs one attempt: the exec command and/or the webhook. Returns (ok, message)."""

    def __init__(self, cfg: RecoveryConfig) -> None:
        self.cfg = cfg

    def __call__(self, body: dict[str, Any]) -> tuple[bool, str]:
        results = []
        if self.cfg.exec:
            results.append(self._exec(body))
        if self.cfg.webhook:
            results.append(self._post(body))
        if not results:
            return False, "no recovery hook configured (recovery.exec / recovery.webhook)"
        return all(ok for ok, _ in results), "; ".join(msg for _, msg in results)

    def _exec(self, body: dict[str, Any]) -> tuple[bool, str]:
        env = {**os.environ, **{f"VNFHA_{k.upper()}": str(v) for k, v in body.items()}}
        try:
            proc = subprocess.run(list(self.cfg.exec), input=json.dumps(body).encode(),
                                  capture_output=True, timeout=self.cfg.timeout, env=env,
                                  check=False)
        except subprocess.TimeoutExpired:
            return False, f"exec timed out after {self.cfg.timeout}s"
        except OSError as e:
            return False, f"exec failed to start: {e}"
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()[-200:]
            return False, f"exec exited {proc.returncode}" + (f": {err}" if err else "")
        return True, "exec exited 0"

    def _post(self, body: dict[str, Any]) -> tuple[bool, str]:
        url = urllib.parse.urlsplit(self.cfg.webhook)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        conn = http.client.HTTPConnection(url.hostname or "", url.port or 80,
                                          timeout=self.cfg.timeout)
        try:
            conn.request("POST", path, body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json",
                                  "User-Agent": "vnfha-coordinator",
                                  "Idempotency-Key": body["request_id"]})
            resp = conn.getresponse()
            resp.read(64 * 1024)
        except (OSError, http.client.HTTPException) as e:
            return False, f"webhook failed: {e or type(e).__name__}"
        finally:
            conn.close()
        if not 200 <= resp.status < 300:
            return False, f"webhook answered {resp.status}"
        return True, f"webhook answered {resp.status}"


class RecoveryRunner:
    """On the leader: run requested recoveries, one worker per in-flight recovery."""

    def __init__(self, store: Store, cfg: RecoveryConfig,
                 hook: Callable[[dict[str, Any]], tuple[bool, str]] | None = None,
                 interval: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cfg = cfg
        self._hook = hook or RecoveryHook(cfg)
        self._interval = interval
        self._clock = clock
        self._loop = LeaderLoop("recovery", self.step, store.is_leader, lambda: interval, log,
                                clock=clock)
        self._lock = threading.Lock()
        self._busy: set[tuple[str, str, int]] = set()
        self._not_before: dict[tuple[str, str, int], float] = {}
        self._ran: set[tuple[tuple[str, str, int], int]] = set()  # (key, attempt) we made
        self._foreign: dict[tuple[tuple[str, str, int], int], float] = {}  # first seen
        # The hook runs as an ordinary process even when the coordinator is real-time.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="recovery",
                                        initializer=_children_ordinary)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._loop.wake()

    def step(self) -> int:
        """Start a worker for every requested recovery that is due; returns how many."""
        state = self._store.state()
        now = self._clock()
        started = 0
        for g in state.groups.values():
            if g.mode != GroupMode.ACTIVE_ACTIVE:
                continue
            for rec in g.recoveries.values():
                key = (g.name, rec.member, rec.failure)
                if rec.status != "requested":
                    continue
                with self._lock:
                    if key in self._busy or self._not_before.get(key, 0.0) > now:
                        continue
                    self._busy.add(key)
                self._pool.submit(self._attempt, g.name, rec.member, rec.failure)
                started += 1
        return started

    def _submit(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        # Fenced like the decide loop: a deposed leader's step is refused by the store.
        try:
            return self._store.submit_as_leader(cmd, timeout=2.0)
        except StoreError as e:
            log.warning("could not commit recovery step", extra={
                "group": cmd["group"], "member": cmd["member"], "status": cmd["status"],
                "error": str(e)})
            return None

    def _defer(self, key: tuple[str, str, int], rec: Any) -> bool:
        """The last attempt was another leader's. If it has no result yet (the message
        is cleared when an attempt starts) it may still be running: give it the hook
        timeout, then the usual back-off, before trying again."""
        now = self._clock()
        with self._lock:
            first = self._foreign.setdefault((key, rec.attempts), now)
        wait = backoff_delay(rec.attempts, self._cfg.backoff, self._cfg.backoff_max)
        if not rec.message:
            wait += self._cfg.timeout
        if now >= first + wait:
            return False
        with self._lock:
            self._not_before[key] = first + wait
        return True

    def _attempt(self, group: str, member: str, failure: int) -> None:
        key = (group, member, failure)
        try:
            rec = self._store.state().groups[group].recoveries.get(member)
            if rec is None or rec.failure != failure or rec.status != "requested":
                return
            if rec.attempts and (key, rec.attempts) not in self._ran and self._defer(key, rec):
                return
            if rec.attempts >= self._cfg.max_attempts:
                self._submit(C.recovery_update(group, member, failure, "gave_up",
                                               message=f"{rec.attempts} attempts failed"))
                return
            res = self._submit(C.recovery_update(group, member, failure, "attempt",
                                                 expect_attempts=rec.attempts))
            if res is None or not res.get("ok"):
                return  # not ours to run (moved on, or another leader got it)
            attempt = res["attempts"]
            self._ran.add((key, attempt))
            body = request_body(group, member, rec.node, rec.reason, failure, attempt)
            log.info("requesting recovery", extra={"event": {
                "kind": "recovery_attempt", "group": group, "member": member, "node": rec.node,
                "epoch": failure, "attempt": attempt, "reason": rec.reason}})
            ok, message = self._hook(body)
            if ok:
                self._submit(C.recovery_update(group, member, failure, "succeeded",
                                               message=message))
                return
            log.warning("recovery attempt failed", extra={
                "group": group, "member": member, "epoch": failure, "attempt": attempt,
                "error": message})
            self._submit(C.recovery_update(group, member, failure, "failed", message=message))
            if attempt >= self._cfg.max_attempts:
                self._submit(C.recovery_update(group, member, failure, "gave_up",
                                               message=f"{attempt} attempts failed; "
                                                       f"last: {message}"))
                return
            with self._lock:
                self._not_before[key] = self._clock() + backoff_delay(
                    attempt, self._cfg.backoff, self._cfg.backoff_max)
        finally:
            with self._lock:
                self._busy.discard(key)
            self._loop.wake()


def _children_ordinary() -> None:
    from vnfha.agents.realtime import children_ordinary

    children_ordinary()
