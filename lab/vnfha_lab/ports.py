"""Pick a free loopback port that outgoing connections will not steal.

Ports handed out by the kernel for port 0 come from the ephemeral range, the
same range client sockets use; a test that kills a coordinator and restarts it
on "its" port can then find the port taken by some client's connection. So
we pick below the ephemeral range and check that the port binds.

A port is handed out at most once per process: two calls made before either
caller binds would otherwise return the same free port (a CI run once built a
three-node Raft cluster with two members on one port).
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOW, _HIGH = 20000, 32000
_handed_out: set[int] = set()
_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1", tries: int = 200) -> int:
    eph_lo, eph_hi = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(tries):
        port = rng.randrange(_LOW, _HIGH)
        if eph_lo <= port <= eph_hi:
            continue
        with _lock:
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise OSError(f"no free port found on {host} in {_LOW}-{_HIGH}")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct free ports (see `free_port`)."""
    return [free_port(host) for _ in range(n)]
