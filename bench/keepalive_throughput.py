"""How many keepalive messages per second one coordinator acknowledges.

Starts one coordinator process (raft backend, single node, fsync on), registers
N nodes with one member each, then client processes open one Keepalive stream
per node (as real agents do: one message per node carrying all its members)
and keep a small window of requests in flight per stream. Prints JSON.

    .venv/bin/python bench/keepalive_throughput.py [--nodes 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import yaml

from vnfha.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc, types_pb2
from vnfha_lab.ports import free_port


def _port() -> int:
    return free_port()


def _client(endpoint: str, nodes: list[str], seconds: float, window: int,
            out: mp.Queue) -> None:
    """Load generator on asyncio (cheap on CPU, which the coordinator shares here)."""

    async def run() -> int:
        channel = grpc.aio.insecure_channel(endpoint)
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        stop_at = time.monotonic() + seconds
        counts = [0]

        async def stream(node: str) -> None:
            credits: asyncio.Queue[int] = asyncio.Queue()
            for _ in range(window):
                credits.put_nowait(1)
            report = agent_pb2.MemberReport(group="bench", member=f"m-{node}",
                                            health=types_pb2.HEALTH_HEALTHY)

            async def requests():
                seq = 0
                while time.monotonic() < stop_at:
                    await credits.get()
                    seq += 1
                    yield agent_pb2.KeepaliveRequest(node=node, seq=seq, members=[report])

            async for resp in stub.Keepalive(requests()):
                if resp.result == agent_pb2.KEEPALIVE_RESULT_ACK:
                    counts[0] += 1
                credits.put_nowait(1)

        await asyncio.gather(*(stream(n) for n in nodes))
        await channel.close()
        return counts[0]

    out.put(asyncio.run(run()))


def _cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (Linux /proc), to show where the time goes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=1, help="client processes")
    ap.add_argument("--window", type=int, default=4, help="requests in flight per stream")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin coordinator and load generator to separate cores")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vnfha-bench-"))
    api = f"127.0.0.1:{_port()}"
    cfg = {"node_id": "c1",
           "cluster": {"members": [{"id": "c1", "api": api, "raft": f"127.0.0.1:{_port()}"}]},
           "store": {"backend": "raft", "data_dir": str(root / "data")},
           "leases": {"ttl": 3.0, "keepalive_interval": 0.5},
           "groups": [{"name": "bench"}],
           "logging": {"level": "warning"}}
    (root / "c1.yaml").write_text(yaml.safe_dump(cfg))
    # The coordinator gets core 0 and the load generator core 1, so the figure is
    # what one coordinator sustains, not what is left after the client's share.
    pin = ["taskset", "-c", "0"] if args.pin and shutil.which("taskset") else []
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    proc = subprocess.Popen([*pin, sys.executable, "-m", "vnfha.coordinator.cli", "coordinator",
                             "--config", str(root / "c1.yaml")], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(root / "c1.log", "wb"))
    try:
        channel = grpc.insecure_channel(api)
        grpc.channel_ready_future(channel).result(timeout=15)
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        agent = agent_pb2_grpc.AgentServiceStub(channel)
        deadline = time.monotonic() + 15
        while not any(g.name == "bench" for g in admin.GetStatus(
                admin_pb2.GetStatusRequest()).groups):
            if time.monotonic() > deadline:
                raise SystemExit("group never applied")
            time.sleep(0.1)
        nodes = [f"n{i:04d}" for i in range(args.nodes)]
        for n in nodes:
            agent.RegisterNode(agent_pb2.RegisterNodeRequest(
                node=n, members=[agent_pb2.MemberSpec(group="bench", member=f"m-{n}")]))
        out: mp.Queue = mp.Queue()
        share = [nodes[i::args.clients] for i in range(args.clients)]
        procs = [mp.Process(target=_client, args=(api, s, args.seconds, args.window, out))
                 for s in share]
        t0 = time.monotonic()
        cpu0 = _cpu_seconds(proc.pid)
        for p in procs:
            p.start()
        total = sum(out.get(timeout=args.seconds + 30) for _ in procs)
        elapsed = time.monotonic() - t0
        cpu = _cpu_seconds(proc.pid) - cpu0
        for p in procs:
            p.join()
        print(json.dumps({
            "benchmark": "keepalive_throughput",
            "nodes": args.nodes, "client_processes": args.clients, "window": args.window,
            "seconds": round(elapsed, 2), "acked": total,
            "acked_per_second": round(total / elapsed),
            "coordinator_cpu_seconds": round(cpu, 2),
            "coordinator_cpu_us_per_keepalive": round(cpu / max(total, 1) * 1e6),
            "cpus": os.cpu_count(), "pinned": bool(pin),
        }, indent=2))
        channel.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
