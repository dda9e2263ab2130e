"""VIP guardian: a second, independent process that enforces the agent's lease.

The agent removes its VIP when its lease ends, but a process that is killed
(SIGKILL, OOM) or frozen (SIGSTOP) removes nothing, and the kernel keeps the
address. The guardian is started by the agent in a session of its own (so a
kill of the agent's process group spares it) and is told over a pipe which
VIPs are held and until when the lease runs. It removes every held VIP

* when the lease deadline passes without a renewal (agent frozen or stuck),
* at once when the pipe closes without a goodbye (agent died).

Protocol, one line per message (each shorter than PIPE_BUF, so atomic):
``lease DEADLINE`` (CLOCK_MONOTONIC seconds, shared by every process),
``hold KEY ADDRESS/PREFIX IFNAME``, ``release KEY``, ``bye``.

    python -m vnfha.agents.guardian --fd N     (started by the agent)
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vnfha.agents.kernellease import KernelLease, KernelLeaseError

log = logging.getLogger("vnfha.agent.guardian")


@dataclass
class GuardState:
    """Pure: what is held and until when; which VIPs must go now."""

    deadline: float | None = None
    held: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (address, ifname)

    def apply(self, line: str) -> bool:
        """Apply one message; False for a goodbye (exit without removing)."""
        parts = line.split()
        if not parts:
            return True
        if parts[0] == "bye":
            return False
        if parts[0] == "lease" and len(parts) == 2:
            self.deadline = float(parts[1])
        elif parts[0] == "hold" and len(parts) == 4:
            self.held[parts[1]] = (parts[2], parts[3])
        elif parts[0] == "release" and len(parts) == 2:
            self.held.pop(parts[1], None)
        else:
            raise ValueError(f"malformed guardian message {line!r}")
        return True

    def expired(self, now: float) -> bool:
        return bool(self.held) and (self.deadline is None or now >= self.deadline)

    def timeout(self, now: float) -> float | None:
        if not self.held or self.deadline is None:
            return None
        return max(0.0, self.deadline - now)


def remove_all(state: GuardState, ipr: IPRoute, why: str) -> None:
    """Remove every held VIP. At a lease's end the agent removes its VIP too, at the same
    moment: whoever comes second finds it gone, which is the outcome both wanted, so an
    address (or interface) already gone is success, logged at debug level only."""
    for key, (address, ifname) in list(state.held.items()):
        ip, _, prefix = address.partition("/")
        try:
            index = ipr.link_lookup(ifname=ifname)
            if not index:
                log.debug("VIP already gone (no interface)", extra={"address": address,
                                                                    "interface": ifname})
            else:
                ipr.addr("del", index=index[0], address=ip, prefixlen=int(prefix))
                log.warning("guardian removed VIP", extra={"key": key, "address": address,
                                                            "reason": why})
        except NetlinkError as e:
            if e.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
                log.debug("VIP already gone (the agent removed it first)",
                          extra={"key": key, "address": address})
            else:
                log.error("guardian could not remove VIP", extra={"address": address,
                                                                   "error": str(e)})
        except Exception as e:  # the loop must go on to the other VIPs
            log.error("guardian could not remove VIP", extra={"address": address,
                                                               "error": str(e)})
        state.held.pop(key, None)


class Renewer:
    """Rewrites the kernel lease of the held VIPs to each new deadline (the agent
    writes it on a claim and deletes it on a release). Errors are logged once per
    distinct message: the kernel lease then lapses on its own, the safe direction."""

    def __init__(self, enabled: bool) -> None:
        self._lease = KernelLease() if enabled else None
        self._said: set[str] = set()

    def renew(self, state: GuardState) -> None:
        if self._lease is None or not state.held or state.deadline is None:
            return
        try:
            self._lease.renew([a for a, _ in state.held.values()], state.deadline,
                              time.monotonic())
        except KernelLeaseError as e:
            if str(e) not in self._said:
                self._said.add(str(e))
                log.error("guardian cannot renew the kernel lease", extra={"error": str(e)})

    def release(self, addresses: list[str]) -> None:
        if self._lease is None or not addresses:
            return
        try:
            self._lease.release(addresses)
        except KernelLeaseError as e:
            log.error("guardian cannot end the kernel lease", extra={"error": str(e)})


def run(fd: int, kernel_lease: bool = False) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the agent is not for us
    # Everything the removal needs is loaded and opened now: importing pyroute2 at
    # the moment of acting took ~200 ms, past the lease end.
    ipr = IPRoute()
    state = GuardState()
    renewer = Renewer(kernel_lease)
    buf = b""
    while True:
        now = time.monotonic()
        if state.expired(now):
            late = now - (state.deadline or now)
            held = [a for a, _ in state.held.values()]
            remove_all(state, ipr, f"lease ran out without renewal ({late * 1000:.0f} ms ago)")
            renewer.release(held)  # expired by itself already; belt and braces
        ready, _, _ = select.select([fd], [], [], state.timeout(time.monotonic()))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            held = [a for a, _ in state.held.values()]
            remove_all(state, ipr, "agent gone (pipe closed without goodbye)")
            renewer.release(held)
            return 0
        buf += chunk
        *lines, buf = buf.split(b"\n")
        renew = False
        for raw in lines:
            try:
                if not state.apply(raw.decode()):
                    return 0
                renew = renew or raw.startswith(b"lease ")
            except ValueError as e:
                log.error("ignoring message", extra={"error": str(e)})
        if renew and not state.expired(time.monotonic()):
            renewer.renew(state)  # once per read, to the newest deadline


class GuardianLink:
    """The agent's end: start the guardian and keep it informed."""

    def __init__(self, on_exit: Callable[[int], None] | None = None,
                 kernel_lease: bool = False, realtime_priority: int | None = None) -> None:
        r, w = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "vnfha.agents.guardian", "--fd", str(r),
             *(["--kernel-lease"] if kernel_lease else []),
             *(["--realtime", str(realtime_priority)] if realtime_priority else [])],
            pass_fds=(r,), start_new_session=True, stdin=subprocess.DEVNULL)
        os.close(r)
        self._w = w
        self.alive = True
        self._closing = False
        self._on_exit = on_exit
        # Supervised: a guardian that dies (OOM, a bug) leaves a frozen agent's VIP up,
        # so its owner is told and fail-stops rather than hold the VIP unguarded.
        threading.Thread(target=self._watch, name="guardian-watch", daemon=True).start()

    def _watch(self) -> None:
        rc = self._proc.wait()
        if self._closing:
            return
        self.alive = False
        log.error("VIP guardian exited", extra={"status": rc})
        if self._on_exit is not None:
            self._on_exit(rc)

    def _send(self, line: str) -> None:
        if not self.alive:
            return
        try:
            os.write(self._w, (line + "\n").encode())
        except OSError as e:
            self.alive = False
            log.error("VIP guardian is gone; the kernel lifetime remains the only backstop",
                      extra={"error": str(e)})

    def lease(self, deadline: float) -> None:
        self._send(f"lease {deadline:.6f}")

    def hold(self, key: str, address: str, ifname: str) -> None:
        self._send(f"hold {key} {address} {ifname}")

    def release(self, key: str) -> None:
        self._send(f"release {key}")

    def close(self) -> None:
        """Clean shutdown: the agent has released everything itself."""
        self._closing = True
        self._send("bye")
        try:
            os.close(self._w)
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--kernel-lease", action="store_true",
                    help="renew the nftables kernel lease of held VIPs on every lease message")
    ap.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                    help="run at SCHED_FIFO PRIORITY with memory locked, where permitted")
    args = ap.parse_args(argv)
    from vnfha.coordinator.logs import setup_logging

    setup_logging("info", "json")
    if args.realtime:
        from vnfha.agents import realtime

        rt = realtime.apply(realtime.RealtimeSettings("auto", args.realtime),
                            threads_inherit=True)
        if rt.problems:
            log.warning("guardian without part of the real-time set-up",
                        extra={"problems": list(rt.problems)})
        realtime.freeze_garbage()
    return run(args.fd, kernel_lease=args.kernel_lease)


if __name__ == "__main__":
    sys.exit(main())
