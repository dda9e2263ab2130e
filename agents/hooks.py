"""Notify hooks for VNFCs that cannot speak gRPC.

Each role change runs the member's command as `CMD ROLE EPOCH GROUP MEMBER`
(also in VNFHA_* environment variables). One worker thread runs them all in
order, so hooks for a member never overlap and never run out of order.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading

log = logging.getLogger("vnfha.agent.hooks")

HOOK_TIMEOUT = 10.0


class HookRunner:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[tuple[str, ...], str, int, str, str] | None] = (
            queue.Queue())
        self._thread = threading.Thread(target=self._run, name="hooks", daemon=True)
        self._thread.start()

    def submit(self, command: tuple[str, ...], role: str, epoch: int, group: str,
               member: str) -> None:
        if command:
            self._queue.put((command, role, epoch, group, member))

    def stop(self, timeout: float = HOOK_TIMEOUT) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            command, role, epoch, group, member = item
            env = {**os.environ, "VNFHA_ROLE": role, "VNFHA_EPOCH": str(epoch),
                   "VNFHA_GROUP": group, "VNFHA_MEMBER": member}
            facts = {"group": group, "member": member, "role": role, "epoch": epoch}
            try:
                done = subprocess.run([*command, role, str(epoch), group, member], env=env,
                                      timeout=HOOK_TIMEOUT, capture_output=True, check=False)
            except (OSError, subprocess.TimeoutExpired) as e:
                log.error("notify hook failed", extra={**facts, "error": str(e)})
                continue
            if done.returncode != 0:
                log.warning("notify hook exited non-zero",
                            extra={**facts, "rc": done.returncode,
                                   "stderr": done.stderr.decode(errors="replace")[-500:]})
