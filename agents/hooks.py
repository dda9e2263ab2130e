"""Notify hooks for VNFCs that cannot speak gRPC.

Each role change runs the member's command as `CMD ROLE EPOCH GROUP MEMBER`
(also in VNFHA_* environment variables). One worker thread runs them all in
order, so hooks for a member never overlap and never run out of order.

A hook runs in a session of its own; one that outlives `timeout` is killed with
its whole process group (a hung hook must not hold up every later one), and the
owner is told through `on_hung`: the VNFC may not know its role, so the agent
fail-stops that member rather than trust it.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable

from vnfha.agents.realtime import children_ordinary

log = logging.getLogger("vnfha.agent.hooks")

HOOK_TIMEOUT = 10.0

#: on_hung(group, member, why): a hook was killed after its timeout.
HungCallback = Callable[[str, str, str], None]


class HookRunner:
    def __init__(self, timeout: float = HOOK_TIMEOUT, on_hung: HungCallback | None = None
                 ) -> None:
        self.timeout = timeout
        self._on_hung = on_hung or (lambda g, m, why: None)
        self._queue: queue.Queue[
            tuple[tuple[str, ...], str, int, str, str, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="hooks", daemon=True)
        self._thread.start()

    def submit(self, command: tuple[str, ...], role: str, epoch: int, group: str,
               member: str, timeout: float | None = None) -> None:
        if command:
            self._queue.put((command, role, epoch, group, member,
                             self.timeout if timeout is None else timeout))

    def stop(self, timeout: float | None = None) -> None:
        self._queue.put(None)
        self._thread.join(self.timeout + 2 if timeout is None else timeout)

    def _run(self) -> None:
        children_ordinary()  # hooks run as ordinary processes (agents/realtime.py)
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._run_one(*item)
            except Exception as e:  # one bad hook must not end the worker
                log.error("notify hook failed", extra={"error": f"{type(e).__name__}: {e}"})

    def _run_one(self, command: tuple[str, ...], role: str, epoch: int, group: str,
                 member: str, timeout: float) -> None:
        env = {**os.environ, "VNFHA_ROLE": role, "VNFHA_EPOCH": str(epoch),
               "VNFHA_GROUP": group, "VNFHA_MEMBER": member}
        facts = {"group": group, "member": member, "role": role, "epoch": epoch}
        try:
            proc = subprocess.Popen([*command, role, str(epoch), group, member], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            log.error("notify hook failed", extra={**facts, "error": str(e)})
            return
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            why = f"notify hook {command[0]} hung: killed after {timeout:g} s"
            log.error("notify hook hung: killed", extra={**facts, "timeout_s": timeout})
            self._on_hung(group, member, why)
            return
        if proc.returncode != 0:
            log.warning("notify hook exited non-zero",
                        extra={**facts, "rc": proc.returncode,
                               "stderr": err.decode(errors="replace")[-500:]})


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the hook's whole process group and reap it (bounded)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=2.0)
    except subprocess.TimeoutExpired:  # a grandchild holds stderr open: stop reading
        if proc.stderr is not None:
            proc.stderr.close()
        proc.wait(timeout=2.0)
