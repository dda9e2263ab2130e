"""The load generator's own CPU per round trip, apart from any coordinator's.

Why: bench/scale.py judges a coordinator with one Python process simulating every
agent (tests/integration/loadgen.py), and the generator's cost decides how late its
rounds go. On a shared 2-core machine its CPU per round trip in scale.py moves with
everything else (a coordinator woken per datagram, other processes' cache traffic).
This measures the generator's side alone, in one process: N simulated nodes on
loadgen's own paths (`LoadGen._send`: the real QuorumLease and FastRoutes, the
request encoding, an AES-GCM datagram sealed with a fresh counter and sent over a
real loopback UDP socket; `FastTransport.drain`: recvmsg with the kernel receive
stamp, the fastwire checks and opening, the lease and routes counting the answer).
Between the two, each datagram is answered here with the real fastwire format (open,
parse, seal an acknowledgement): the coordinator's part, whose CPU is not counted.
What this leaves out is the event loop's own wake-ups, the gRPC threads and the
kernel's work of waking a real coordinator: scale.py's `generator_cpu_*` have those.
Bounded: `--rounds` rounds of `--nodes` nodes. Prints JSON.

    .venv/bin/python bench/loadgen_cost.py [--nodes 1000] [--rounds 30] [--cpu 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import loadgen  # noqa: E402

from vnfha.coordinator import fastwire as W  # noqa: E402
from vnfha.v1 import agent_pb2  # noqa: E402

INTERVAL, TTL = 0.06, 0.25  # the default timing


async def measure(nodes: int, rounds: int) -> dict[str, Any]:
    coord = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    coord.bind(("127.0.0.1", 0))
    coord.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    coord.setblocking(False)
    addr = coord.getsockname()
    lg = loadgen.LoadGen([f"127.0.0.1:{addr[1]}"], INTERVAL, TTL, transport="fast",
                         max_nodes=nodes, groups=nodes // 2)
    tr = lg.tr
    assert isinstance(tr, loadgen.FastTransport)
    keys: dict[bytes, W.SessionKey] = {}
    counters: dict[bytes, int] = {}
    try:
        for i in range(nodes):
            s = loadgen.Sim(i, loadgen.node_name(i), loadgen.hosted(i, nodes, nodes // 2),
                            loadgen.QuorumLease(coordinators=1, ttl=TTL),
                            [asyncio.Queue(maxsize=loadgen.QUEUE)],
                            routes=loadgen.routes_for(1, TTL, INTERVAL))
            key = W.SessionKey(i.to_bytes(8, "big"), os.urandom(W.KEY_BYTES))
            keys[key.key_id] = key
            tr.install(0, i, key, addr)
            assert s.routes is not None
            s.routes.opened(0, time.monotonic())
            lg.sims.append(s)
        gc.collect()
        gc.freeze()  # as LoadGen.add does after its start-up
        answer_to = tr.address
        send_cpu = read_cpu = 0.0
        lg.mark()
        for _ in range(rounds):
            t0 = time.thread_time()
            for s in lg.sims:
                lg._send(s, time.monotonic())
            send_cpu += time.thread_time() - t0
            while True:  # the coordinator's part, not counted
                try:
                    data = coord.recv(W.MAX_DATAGRAM + 1)
                except BlockingIOError:
                    break
                header = W.parse_header(data, W.KIND_KEEPALIVE)
                key = keys[header.key_id]
                req = agent_pb2.KeepaliveRequest.FromString(key.open(header, data))
                n = counters[key.key_id] = counters.get(key.key_id, 0) + 1
                ack = agent_pb2.KeepaliveResponse(
                    seq=req.seq, coordinator_id="c1", ttl_ms=int(TTL * 1000),
                    result=agent_pb2.KEEPALIVE_RESULT_ACK, cluster_members=["c1"])
                coord.sendto(key.seal(W.KIND_ACK, n, ack.SerializeToString()), answer_to)
            t0 = time.thread_time()
            for _ in range(nodes // 1024 + 1):
                tr.drain()
            read_cpu += time.thread_time() - t0
        w = lg.close()
        trips = nodes * rounds
        return {"nodes": nodes, "rounds": rounds, "round_trips": trips,
                "answered": w.acked, "dropped": tr.dropped,
                "send_us_per_round_trip": round(send_cpu / trips * 1e6, 2),
                "read_us_per_round_trip": round(read_cpu / trips * 1e6, 2),
                "generator_us_per_round_trip": round((send_cpu + read_cpu) / trips * 1e6, 2),
                "gc_collections": w.gc_count,
                "gc_pause_max_ms": [round(p * 1000, 2) for p in w.gc_max]}
    finally:
        await lg.stop()
        coord.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = ap.parse_args()
    if not 1 <= args.nodes <= 5000 or not 1 <= args.rounds <= 1000:
        raise SystemExit("--nodes must be in 1..5000 and --rounds in 1..1000")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(measure(args.nodes, args.rounds))
    result["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps({"benchmark": "loadgen_cost", **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
