"""Pick a free loopback port that outgoing connections will not steal.

Ports handed out by the kernel for port 0 come from the ephemeral range, the
same range client sockets use; a test that kills a coordinator and restarts it
on "its" port can then find the port taken by some client's connection. So
we pick below the ephemeral range and check that the port binds.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOW, _HIGH = 20000, 32000


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
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port found on {host} in {_LOW}-{_HIGH}")
