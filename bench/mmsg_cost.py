"""CPU per datagram of the plain calls against the batched ones (lab/vnfha_lab/mmsg.py).

Why: recvmmsg/sendmmsg through ctypes save syscalls but decode their results in
Python; whether that pays for the fast path's intake is a measurement, not a guess.
On loopback, with the intake's own sizes (a 4,097-byte read buffer, 64 bytes of
control data with SO_TIMESTAMPNS on, ~100-byte datagrams), for batch sizes B:

* read: B datagrams queued, then drained as the intake drains them: B `recvmsg`
  calls and the one that finds the socket empty, against `recv_batch` (one call; a
  second when the batch came back full, to find the socket empty);
* write: B `sendto` calls against one `send_batch`, to 16 receiving sockets in turn.

Only the timed thread's CPU (`time.thread_time`: meaningful on a busy machine) and
wall clock around the calls are counted; filling and emptying the sockets is not.
Variants alternate round by round and the median of `--repeats` is printed, as JSON.
Bounded: `--datagrams` per variant, size and repeat, and `--seconds` in all.

    .venv/bin/python bench/mmsg_cost.py [--sizes 1,8,64,256] [--datagrams 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time

from vnfha.coordinator import rxclock
from vnfha_lab import mmsg

BUFSIZE = 4097  # the intake's read size (fastwire.MAX_DATAGRAM + 1)
PAYLOAD = bytes(range(100))
SINKS = 16


def _rx() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
    s.bind(("127.0.0.1", 0))
    return s


def _drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(BUFSIZE, socket.MSG_DONTWAIT)
            n += 1
        except BlockingIOError:
            return n


def _fill(tx: socket.socket, addr: tuple, count: int) -> None:
    for _ in range(count):
        tx.sendto(PAYLOAD, addr)


def read_plain(rx: socket.socket, count: int, _reader: mmsg.BatchReader) -> int:
    got = 0
    while True:
        try:
            rx.recvmsg(BUFSIZE, rxclock.ANCBUF, socket.MSG_DONTWAIT)
            got += 1
        except BlockingIOError:
            return got


def read_batch(rx: socket.socket, count: int, reader: mmsg.BatchReader) -> int:
    got = 0
    while True:
        try:
            n = len(reader.recv(rx, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return got
        got += n
        if n < reader.max_count:  # short: the socket is drained
            return got


def write_plain(tx: socket.socket, msgs: list, _sender: mmsg.BatchSender) -> None:
    for data, addr in msgs:
        tx.sendto(data, socket.MSG_DONTWAIT, addr)


def write_batch(tx: socket.socket, msgs: list, sender: mmsg.BatchSender) -> None:
    if sender.send(tx, msgs, socket.MSG_DONTWAIT):
        raise SystemExit("a batched send failed")


def measure(size: int, datagrams: int, deadline: float) -> dict:
    """Per-datagram CPU and wall (µs) of the four variants at batch size `size`."""
    rounds = max(1, datagrams // size)
    rx = _rx()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sinks = [_rx() for _ in range(SINKS)]
    reader = mmsg.BatchReader(256, BUFSIZE, rxclock.ANCBUF)
    sender = mmsg.BatchSender(256, BUFSIZE)
    addr = rx.getsockname()
    msgs = [(PAYLOAD, sinks[i % SINKS].getsockname()) for i in range(size)]
    cpu = {"recvmsg": 0.0, "recv_batch": 0.0, "sendto": 0.0, "send_batch": 0.0}
    wall = dict.fromkeys(cpu, 0.0)
    done = dict.fromkeys(cpu, 0)
    try:
        for r in range(rounds):
            if time.monotonic() > deadline:
                break
            order = [("recvmsg", read_plain), ("recv_batch", read_batch)]
            for name, fn in order if r % 2 else order[::-1]:
                _fill(tx, addr, size)
                c0, w0 = time.thread_time(), time.perf_counter()
                got = fn(rx, size, reader)
                wall[name] += time.perf_counter() - w0
                cpu[name] += time.thread_time() - c0
                if got != size:
                    raise SystemExit(f"{name}: read {got} of {size} (datagrams lost)")
                done[name] += got
            order2 = [("sendto", write_plain), ("send_batch", write_batch)]
            for name, fn in order2 if r % 2 else order2[::-1]:
                c0, w0 = time.thread_time(), time.perf_counter()
                fn(tx, msgs, sender)
                wall[name] += time.perf_counter() - w0
                cpu[name] += time.thread_time() - c0
                done[name] += size
                if sum(_drain(s) for s in sinks) != size:
                    raise SystemExit(f"{name}: datagrams lost on loopback")
    finally:
        for s in (rx, tx, *sinks):
            s.close()
    return {name: {"cpu_us": round(cpu[name] / max(done[name], 1) * 1e6, 3),
                   "wall_us": round(wall[name] / max(done[name], 1) * 1e6, 3),
                   "datagrams": done[name]} for name in cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,8,64,256")
    ap.add_argument("--datagrams", type=int, default=20000,
                    help="per variant, batch size and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=50.0, help="stop after this long")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if (not all(1 <= s <= 256 for s in sizes) or not 1 <= args.datagrams <= 200000
            or not 1 <= args.repeats <= 10 or not 0 < args.seconds <= 120):
        raise SystemExit("sizes in 1..256, --datagrams in 1..200000, --repeats in 1..10, "
                         "--seconds in (0, 120]")
    reader = mmsg.BatchReader(1, 1, 0)
    sender = mmsg.BatchSender(1, 1)
    deadline = time.monotonic() + args.seconds
    load0 = os.getloadavg()[0]
    runs: dict[int, list[dict]] = {s: [] for s in sizes}
    for _ in range(args.repeats):
        for s in sizes:
            runs[s].append(measure(s, args.datagrams, deadline))
    result = {}
    for s in sizes:
        result[str(s)] = {
            name: {k: statistics.median(run[name][k] for run in runs[s])
                   for k in ("cpu_us", "wall_us")} | {
                "datagrams": sum(run[name]["datagrams"] for run in runs[s])}
            for name in runs[s][0]}
        per = result[str(s)]
        per["read_saving_cpu_us"] = round(per["recvmsg"]["cpu_us"]
                                          - per["recv_batch"]["cpu_us"], 3)
        per["write_saving_cpu_us"] = round(per["sendto"]["cpu_us"]
                                           - per["send_batch"]["cpu_us"], 3)
    print(json.dumps({
        "benchmark": "mmsg_cost", "native": {"recvmmsg": reader.native,
                                             "sendmmsg": sender.native},
        "repeats": args.repeats, "sizes": result,
        "load_average_1m": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "timed_out": time.monotonic() > deadline,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
