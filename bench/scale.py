"""Scale: N simulated nodes and G groups on 3 coordinators, speaking the real protocol.

Per point (N nodes, G groups): three real `vnfha coordinator` processes (embedded Raft,
fsync on; or `--backend etcd`, one real etcd process) on loopback, G groups of two
members each on distinct nodes, and a load generator in its own process
(tests/integration/loadgen.py: RegisterNode, then to every coordinator a Keepalive
stream and a WatchAssignments stream per node, a real QuorumLease per node). After a
warm-up it measures, over `--seconds` with no fault:

* coordinator CPU per acknowledged keepalive (all three coordinators' CPU over all
  their acknowledgements; the load generator's CPU is reported apart),
* acknowledgement latency p50/p99 as the agents see it (send to ack),
* lease lapses (nodes that at some check held no lease; the fewest holding one at once)
  and promotions (every one is a false failover: nothing failed),

then crashes one node carrying actives (it stops sending) and reports the time until
every one of its groups was seen granted to the standby: crash failover under load.

The transport is pluggable (`--transport`, loadgen.Transport): gRPC streams today; a
datagram fast path plugs in with the same three calls. Bounded: each point runs at
most warm-up + seconds + the failover limit, and every process is reaped. Prints JSON.

    .venv/bin/python bench/scale.py [--nodes 25,100,400] [--groups-per-node 0.5]
        [--seconds 20] [--ttl 0.25] [--interval 0.06] [--backend raft|etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import loadgen  # noqa: E402
from cluster import CoordinatorCluster  # noqa: E402

from vnfha_lab.etcdserver import EtcdServer  # noqa: E402

TRANSPORTS = {"grpc": loadgen.GrpcTransport}


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        pass
    return 0.0


async def _point(endpoints: list[str], pids: list[int], nodes: int, groups: int,
                 transport: str, seconds: float, interval: float, ttl: float,
                 warmup: float, failover_limit: float) -> dict[str, Any]:
    tr = TRANSPORTS[transport](endpoints, nodes)
    lg = loadgen.LoadGen(endpoints, interval, ttl, transport=tr, max_nodes=nodes,
                         groups=groups)
    try:
        t0 = time.monotonic()
        await lg.add(nodes)
        # Cold start: every group has an active and the grants stood still for 1 s.
        last, still = None, time.monotonic()
        while time.monotonic() - t0 < warmup + 60:
            snap = dict(lg.grants)
            if snap != last:
                last, still = snap, time.monotonic()
            elif len(snap) == groups and time.monotonic() - still >= 1.0:
                break
            await asyncio.sleep(0.05)
        cold = round(still - t0, 2)
        await asyncio.sleep(warmup)
        cpu0 = [cpu_seconds(p) for p in pids]
        lg.mark()
        await asyncio.sleep(seconds)
        w = lg.window()
        cpu = sum(cpu_seconds(p) for p in pids) - sum(cpu0)
        acked_total = w["acked_per_coordinator_per_s"] * len(endpoints) * w["seconds"]
        victim = max(range(nodes), key=lambda i: len(lg.actives_on(i)))
        crash = await lg.crash(victim, failover_limit)
        return {
            "nodes": nodes, "groups": groups, "transport": transport,
            "cold_start_s": cold,
            "coordinators_cpu_cores": round(cpu / w["seconds"], 2),
            "coordinator_cpu_us_per_keepalive": (round(cpu / acked_total * 1e6)
                                                 if acked_total else None),
            "coordinator_rss_mb": [rss_mb(p) for p in pids],
            **{k: w[k] for k in ("offered_per_coordinator_per_s",
                                 "acked_per_coordinator_per_s", "ack_p50_ms", "ack_p99_ms",
                                 "nodes_lapsed", "lapse_events", "min_nodes_with_lease",
                                 "promotions", "groups_with_active", "generator_cpu_s")},
            "crash": crash,
        }
    finally:
        await lg.stop()
        await tr.close()


def point(endpoints: list[str], pids: list[int], nodes: int, groups: int, transport: str,
          seconds: float, interval: float, ttl: float, warmup: float,
          failover_limit: float) -> dict[str, Any]:
    return asyncio.run(_point(endpoints, pids, nodes, groups, transport, seconds, interval,
                              ttl, warmup, failover_limit))


def run_point(args: argparse.Namespace, nodes: int, tmp: Path,
              etcd: EtcdServer | None) -> dict[str, Any]:
    groups = max(1, round(nodes * args.groups_per_node))
    root = tmp / f"n{nodes}-{args.backend}"
    root.mkdir()
    c = CoordinatorCluster(root, ttl=args.ttl, interval=args.interval, tls=False,
                           stabilization=1.0, backend=args.backend,
                           etcd_endpoint=etcd.endpoint if etcd else None)
    try:
        c.start_all()
        leader = c.leader()
        if leader is None:
            raise SystemExit("no leader")
        loadgen.create_groups(c.api[leader], nodes, groups)
        pids = [c.procs[cid].pid for cid in c.ids]
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
            result = ex.submit(point, c.endpoints, pids, nodes, groups, args.transport,
                               args.seconds, args.interval, args.ttl, args.warmup,
                               args.failover_limit).result(
                timeout=args.seconds + args.warmup + args.failover_limit + 300)
        return {"backend": args.backend, "ttl": args.ttl, "interval": args.interval,
                **result}
    finally:
        c.stop_all()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="25,100",
                    help="comma-separated node counts (25..2000)")
    ap.add_argument("--groups-per-node", type=float, default=0.5,
                    help="groups per node (each group has 2 members on 2 nodes)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--failover-limit", type=float, default=30.0)
    ap.add_argument("--ttl", type=float, default=0.25)
    ap.add_argument("--interval", type=float, default=0.06)
    ap.add_argument("--backend", choices=("raft", "etcd"), default="raft")
    ap.add_argument("--transport", choices=sorted(TRANSPORTS), default="grpc")
    args = ap.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    if any(not 2 <= n <= 2000 for n in counts):
        raise SystemExit("--nodes: each count must be in 2..2000")
    tmp = Path(tempfile.mkdtemp(prefix="vnfha-scale-"))
    etcd = None
    if args.backend == "etcd":
        etcd = EtcdServer(tmp / "etcd")
        etcd.start()
    points = []
    try:
        for n in counts:
            p = run_point(args, n, tmp, etcd)
            print(json.dumps(p), file=sys.stderr)  # in case a later point fails
            points.append(p)
    finally:
        if etcd is not None:
            etcd.stop()
    print(json.dumps({"benchmark": "scale", "cpus": os.cpu_count(),
                      "load_average": [round(x, 1) for x in os.getloadavg()],
                      "points": points}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
