"""A tiny TCP service and a bounded prober, for the demo, tests and benchmarks.

    python -m vnfha_lab.probe serve --port 8080 --name vm1
    python -m vnfha_lab.probe probe --target 198.18.0.100:8080 --interval 0.01 \\
        --duration 10 --out results.jsonl

The service answers every connection with its name and closes it. The prober
connects once per interval (each attempt bounded by --timeout), for at most
--duration seconds and --max-attempts attempts, and writes one JSON line per
attempt: wall-clock time, ok, and who answered. It only ever connects to the
one target it is given.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass


def serve(port: int, name: str, host: str = "0.0.0.0") -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ":" in host:
            srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        srv.bind((host, port))
        srv.listen(128)
        srv.settimeout(0.2)
        reply = f"{name}\n".encode()
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with conn:
                try:
                    conn.sendall(reply)
                except OSError:
                    pass


@dataclass(frozen=True)
class Attempt:
    at: float  # wall clock, seconds
    ok: bool
    who: str  # the name that answered, or the error


def probe_once(host: str, port: int, timeout: float) -> tuple[bool, str]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            data = s.recv(64)
        who = data.decode(errors="replace").strip()
        return (bool(who), who or "empty reply")
    except OSError as e:
        return False, type(e).__name__


def probe(host: str, port: int, interval: float, timeout: float, duration: float,
          max_attempts: int, out) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + duration
    attempts = 0
    next_at = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline and attempts < max_attempts:
        attempts += 1
        at = time.time()
        ok, who = probe_once(host, port, timeout)
        out.write(json.dumps({"at": at, "ok": ok, "who": who}) + "\n")
        out.flush()
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))


def _target(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--host", default="0.0.0.0")
    p = sub.add_parser("probe")
    p.add_argument("--target", required=True, help="HOST:PORT ([v6]:PORT)")
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=0.05)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--max-attempts", type=int, default=100_000)
    p.add_argument("--out", default="-")
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args.port, args.name, args.host)
        return 0
    host, port = _target(args.target)
    if args.out == "-":
        probe(host, port, args.interval, args.timeout, args.duration, args.max_attempts,
              sys.stdout)
    else:
        with open(args.out, "a", buffering=1) as f:
            probe(host, port, args.interval, args.timeout, args.duration, args.max_attempts,
                  f)
    return 0



def load_attempts(path: str) -> list[Attempt]:
    """The attempts written so far (none if the prober has not started writing)."""
    out: list[Attempt] = []
    try:
        f = open(path)
    except FileNotFoundError:
        return out
    with f:
        for line in f:
            line = line.strip()
            if line.endswith("}"):  # the last line may still be being written
                d = json.loads(line)
                out.append(Attempt(at=d["at"], ok=d["ok"], who=d["who"]))
    return out


def outage(attempts: list[Attempt], fault_at: float, new_holder: str) -> float | None:
    """Client-observed outage: from the fault (or the last answer before it, if that
    came later) to the first answer from the new holder. None if it never answered."""
    first_new = next((a.at for a in attempts if a.ok and a.who == new_holder
                      and a.at >= fault_at), None)
    if first_new is None:
        return None
    last_old = max((a.at for a in attempts if a.ok and a.who != new_holder
                    and a.at <= first_new), default=fault_at)
    return first_new - max(fault_at, last_old)



def gap(attempts: list[Attempt], new_holder: str, after: float) -> float | None:
    """Client-observed gap of a handover: from the last answer of anyone else to the
    first answer of `new_holder` after `after`. None if the new holder never answered."""
    first_new = next((a.at for a in attempts if a.ok and a.who == new_holder
                      and a.at >= after), None)
    if first_new is None:
        return None
    last_old = max((a.at for a in attempts if a.ok and a.who != new_holder
                    and a.at <= first_new), default=None)
    return None if last_old is None else first_new - last_old


if __name__ == "__main__":
    sys.exit(main())
