"""Flood Raft ports with unauthenticated bytes for a bounded time (test and bench helper).

One thread per target: connect, send a frame header claiming a huge frame,
then stream junk as fast as the socket takes it; when the server hangs up,
reconnect and start over. Stops after ``--seconds`` (hard bound) and prints
one JSON line: connections made and bytes sent per target.

Usage: python flooder.py --seconds 10 127.0.0.1:7001 127.0.0.1:7002
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time

# a length prefix that is huge both as pysyncobj's native i32 and as our big-endian u32
HEADER = b"\xff\xff\xff\x7f"
CHUNK = os.urandom(64 << 10)


def flood(addr: str, until: float, stats: dict[str, int]) -> None:
    host, port = addr.rsplit(":", 1)
    while time.monotonic() < until:
        try:
            sock = socket.create_connection((host, int(port)), timeout=0.5)
        except OSError:
            time.sleep(0.01)
            continue
        stats["connections"] += 1
        try:
            sock.sendall(HEADER)
            while time.monotonic() < until:
                stats["bytes"] += sock.send(CHUNK)
        except OSError:
            pass  # the server hung up (or the send timed out): reconnect
        finally:
            sock.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("targets", nargs="+")
    args = p.parse_args()
    until = time.monotonic() + min(args.seconds, 600.0)
    stats = {t: {"connections": 0, "bytes": 0} for t in args.targets}
    threads = [threading.Thread(target=flood, args=(t, until, stats[t]), daemon=True)
               for t in args.targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 5)
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
