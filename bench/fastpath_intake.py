"""The fast-path intake alone: CPU per keepalive datagram in the intake thread.

The coordinator's keepalive intake (coordinator/fastpath.py) with the real handler
(AgentServicer.handle_datagram: validation, LeaseTable.record, the answer) over an
in-memory store with N registered nodes, on a real UDP socket on loopback; a sender
in its own process seals real keepalives (one key per node, from the intake's own
open_session) at a fixed rate and reads the answers. Reported: the intake thread's
CPU time per answered datagram (/proc/self/task/<tid>/stat: it stays meaningful on a
busy machine), the whole process's, and how many were answered. Bounded: `--seconds`
of sending, then the sender is reaped.

    .venv/bin/python bench/fastpath_intake.py [--nodes 1000] [--rate 16700] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import multiprocessing as mp
import os
import pstats
import socket
import sys
import threading
import time
from pathlib import Path

from vnfha.coordinator import commands as C
from vnfha.coordinator import fastwire as W
from vnfha.coordinator.fastpath import FastPathIntake
from vnfha.coordinator.leases import LeaseTable
from vnfha.coordinator.service.agent import AgentServicer
from vnfha.coordinator.service.feed import ChangeFeed
from vnfha.coordinator.store.memory import MemoryStore
from vnfha.v1 import agent_pb2, types_pb2

TTL = 0.25


class GcStats:
    """Counts and times this process's garbage collections per generation (gc.callbacks):
    a gen-2 pass over a large heap stops every thread, the intake's too."""

    def __init__(self) -> None:
        self._started: float | None = None
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            took = time.perf_counter() - self._started
            g = info["generation"]
            self.count[g] += 1
            self.total[g] += took
            self.longest[g] = max(self.longest[g], took)
            self._started = None

    def close(self) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict:
        return {f"gen{g}": {"collections": self.count[g],
                            "total_ms": round(self.total[g] * 1e3, 2),
                            "longest_ms": round(self.longest[g] * 1e3, 2)}
                for g in range(3)} | {"frozen_objects": gc.get_freeze_count()}


def _ticks(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sender(port: int, sessions: list[tuple[bytes, bytes, bytes]], rate: float,
            seconds: float, cpu: int | None, out: mp.Queue) -> None:
    """Seal and send round-robin over the nodes at `rate` per second; count answers."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    keys = [W.SessionKey(kid, key) for kid, key, _ in sessions]
    reqs = [agent_pb2.KeepaliveRequest.FromString(p) for _, _, p in sessions]
    counters = [0] * len(keys)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setblocking(False)
    addr = ("127.0.0.1", port)
    sent = answered = k = 0
    t0 = time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        for _ in range(max(0, int((now - t0) * rate) - sent)):
            i = k % len(keys)
            k += 1
            counters[i] += 1
            reqs[i].seq = counters[i]
            try:
                sock.sendto(keys[i].seal(W.KIND_KEEPALIVE, counters[i],
                                         reqs[i].SerializeToString()), addr)
                sent += 1
            except BlockingIOError:
                break
        while True:
            try:
                sock.recv(W.MAX_DATAGRAM + 1)
                answered += 1
            except BlockingIOError:
                break
        time.sleep(0.001)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        try:
            sock.recv(W.MAX_DATAGRAM + 1)
            answered += 1
        except BlockingIOError:
            time.sleep(0.01)
    out.put((sent, answered, time.monotonic() - t0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=16700.0, help="datagrams per second")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pin", action="store_true",
                    help="this process on CPU 0, the sender on CPU 1")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile the intake thread and print its top N functions "
                         "(to stderr; the CPU figures then include the profiler's cost)")
    ap.add_argument("--gc-stats", action="store_true",
                    help="count and time garbage collections per generation during the run")
    args = ap.parse_args()
    if not 1 <= args.nodes <= 5000 or not 0 < args.seconds <= 120:
        raise SystemExit("--nodes must be in 1..5000 and --seconds in (0, 120]")
    if args.pin:
        os.sched_setaffinity(0, {0})
    store = MemoryStore("c1")
    store.start()
    names = [f"n{i:05d}" for i in range(args.nodes)]
    groups = [f"g{i:05d}" for i in range((args.nodes + 1) // 2)]
    store.submit(C.apply_groups([{"name": g} for g in groups]))
    for i, n in enumerate(names):
        store.submit(C.register_node(n, "198.18.1.1", [
            {"group": groups[i // 2], "member": f"m{i % 2}", "priority": 100 - i % 2}]))
    leases = LeaseTable(time.monotonic(), ttl=TTL)
    loop = asyncio.new_event_loop()
    api = AgentServicer(store, leases, "c1", TTL, on_report_change=lambda: None,
                        feed=ChangeFeed(loop), cluster_members=("c1",))
    intake = FastPathIntake("127.0.0.1", 0, api.handle_datagram)
    sessions = []
    for i, n in enumerate(names):
        issued = intake.open_session(n)
        req = agent_pb2.KeepaliveRequest(node=n, seq=1, members=[agent_pb2.MemberReport(
            group=groups[i // 2], member=f"m{i % 2}", health=types_pb2.HEALTH_HEALTHY)])
        sessions.append((issued.key_id, issued.key, req.SerializeToString()))
    profiler = None
    if args.profile:
        profiler = cProfile.Profile()
        run = intake._run
        intake._run = lambda: profiler.runcall(run)  # type: ignore[method-assign]
        intake._thread = threading.Thread(target=intake._run, name="fastpath-intake",
                                          daemon=True)
    gc_stats = GcStats() if args.gc_stats else None
    intake.start()
    tid = next(t.native_id for t in threading.enumerate() if t.name == "fastpath-intake")
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    sender = ctx.Process(target=_sender, args=(intake.port, sessions, args.rate,
                                               args.seconds, 1 if args.pin else None, out))
    thread0 = _ticks(f"/proc/self/task/{tid}/stat")
    proc0 = time.process_time()
    load0 = os.getloadavg()[0]
    sender.start()
    try:
        sent, answered, secs = out.get(timeout=args.seconds + 60)
    finally:
        sender.join(timeout=10)
        if sender.is_alive():
            sender.kill()
            sender.join()
    thread_cpu = _ticks(f"/proc/self/task/{tid}/stat") - thread0
    proc_cpu = time.process_time() - proc0
    handled = intake.answered
    intake.stop()
    loop.close()
    if gc_stats is not None:
        gc_stats.close()
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(
            args.profile)
    print(json.dumps({
        "benchmark": "fastpath_intake", "nodes": args.nodes, "rate": args.rate,
        "seconds": round(secs, 2), "sent": sent, "answered_by_intake": handled,
        "answers_received": answered,
        "intake_thread_cpu_us_per_datagram": round(thread_cpu / max(handled, 1) * 1e6, 1),
        "process_cpu_us_per_datagram": round(proc_cpu / max(handled, 1) * 1e6, 1),
        "drops": {k: v for k, v in intake.dropped.items() if v},
        "load_average_1m": [round(load0, 1), round(os.getloadavg()[0], 1)],
        **({"gc": gc_stats.summary()} if gc_stats is not None else {}),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
