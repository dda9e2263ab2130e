"""Scale: N simulated nodes and G groups on 3 coordinators, speaking the real protocol.

Per point (N nodes, G groups): three real `vnfha coordinator` processes (embedded Raft,
fsync on; or `--backend etcd`, one real etcd process) on loopback, G groups of two
members each on distinct nodes, and a load generator in its own process
(tests/integration/loadgen.py: RegisterNode, then to every coordinator a Keepalive
stream and a WatchAssignments stream per node, a real QuorumLease per node). After a
warm-up it measures, over `--seconds` with no fault:

* coordinator CPU per acknowledged keepalive (all three coordinators' CPU over all
  their acknowledgements; the load generator's CPU is reported apart),
* acknowledgement latency p50/p99 from the round's send to its answer's arrival (the
  kernel's receive stamp at the generator; as read, and the generator's own lateness in
  sending and reading, reported apart: loadgen's docstring),
* lease lapses by arrival and as read (nodes that held no lease at some moment; the
  fewest holding one at once) and promotions (every one a false failover),

then crashes one node carrying actives (it stops sending) and reports the time until
every one of its groups was seen granted to the standby: crash failover under load,
split from the coordinator's log into expiry, promotion applied and seen.

`--transport grpc,fast` runs each point on the gRPC keepalive streams and on the
keepalive fast path (loadgen.FastTransport: keys from OpenFastPath, AES-GCM datagrams,
the agent's own fallback rule), one after the other in one invocation, each on a fresh
cluster. `--pin` measures "per coordinator core": ONE coordinator (a one-member
cluster) pinned to CPU 0 and the load generator pinned to CPU 1; CPU per keepalive
is the coordinator process's CPU time over the keepalives it answered, a figure that
stays meaningful when other work shares the machine (the load average is printed
with every point). Bounded: each point runs at most warm-up + seconds + the failover
limit, and every process is reaped. Prints JSON.

    .venv/bin/python bench/scale.py [--nodes 25,100,400] [--groups-per-node 0.5]
        [--seconds 20] [--ttl 0.25] [--interval 0.06] [--backend raft|etcd]
        [--transport grpc,fast] [--pin] [--rt] [--nice -10]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import shutil
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
from cpubudget import cpu_seconds, family  # noqa: E402

from vnfha_lab.etcdserver import EtcdServer  # noqa: E402

TRANSPORTS = loadgen.TRANSPORTS
COORDINATOR_CPU = 0  # --pin: the coordinator's core ...
GENERATOR_CPU = 1  # ... and the load generator's
#: --rt: SCHED_FIFO priorities. The generator runs as the agents it simulates do
#: (agents/realtime.py: 10); the coordinator one above its own default (5), so the
#: coordinators of other work on a shared machine do not take its core meanwhile.
GENERATOR_FIFO = 10
COORDINATOR_FIFO = 6


def pin(pid: int, cpu: int | None, nice: int | None = None,
        fifo: int | None = None) -> None:
    """Pin every thread of process `pid` and of the processes it started to `cpu`, and
    give each the `nice` value or the SCHED_FIFO priority `fifo` (all per thread on
    Linux; threads started later inherit them). Those other processes (a coordinator's
    keepalive intake) get `fifo` - 1: below their parent, as the coordinator runs them."""
    for p in family(pid):
        prio = None if fifo is None else (fifo if p == pid else max(1, fifo - 1))
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                if cpu is not None:
                    os.sched_setaffinity(int(task.name), {cpu})
                if nice is not None:
                    os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
                if prio is not None:
                    os.sched_setscheduler(int(task.name), os.SCHED_FIFO,
                                          os.sched_param(prio))
            except (ProcessLookupError, OSError):
                pass  # a thread that just ended


def _pin_self(cpu: int | None, nice: int | None = None, fifo: int | None = None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if fifo is not None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo))




def rss_mb(pid: int) -> float:
    """Resident memory of a process and the processes it started."""
    kb = 0
    for p in family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb += int(line.split()[1])
        except FileNotFoundError:
            pass
    return round(kb / 1024, 1)


async def _point(endpoints: list[str], pids: list[int], nodes: int, groups: int,
                 transport: str, seconds: float, interval: float, ttl: float,
                 warmup: float, failover_limit: float, pinned: bool,
                 nice: int | None, fifo: int | None = None,
                 profile: str | None = None) -> dict[str, Any]:
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
        if pinned or nice is not None or fifo is not None:
            for p in pids:  # threads started since the first pinning
                pin(p, COORDINATOR_CPU if pinned else None, nice, fifo)
        load0 = os.getloadavg()[0]
        cpu0 = [cpu_seconds(p) for p in pids]
        prof = cProfile.Profile() if profile else None
        lg.mark()
        if prof is not None:
            prof.enable()
        await asyncio.sleep(seconds)
        closed = lg.close()  # summarized after the crash: sorting stalls the generator
        if prof is not None and profile:
            prof.disable()
            prof.dump_stats(profile)
        cpu = sum(cpu_seconds(p) for p in pids) - sum(cpu0)
        load1 = os.getloadavg()[0]
        await asyncio.sleep(2 * interval)  # every node sent a round since
        victim = max(range(nodes), key=lambda i: len(lg.actives_on(i)))
        crash = await lg.crash(victim, failover_limit)
        w = lg.window(closed)
        acked_total = w["acked_per_coordinator_per_s"] * len(endpoints) * w["seconds"]
        cores = cpu / w["seconds"] / len(pids)  # per coordinator
        per_ka = cpu / acked_total if acked_total else None
        return {
            "nodes": nodes, "groups": groups, "transport": transport,
            "coordinators": len(pids), "pinned": pinned, "nice": nice,
            "sched": ({"coordinator_fifo": fifo, "generator_fifo": GENERATOR_FIFO}
                      if fifo is not None else "default"),
            "load_average_1m": [round(load0, 1), round(load1, 1)],
            "cold_start_s": cold,
            "coordinator_cpu_cores_each": round(cores, 3),
            "coordinator_cpu_us_per_keepalive": (round(per_ka * 1e6, 1)
                                                 if per_ka else None),
            # One core's worth of this CPU per keepalive, at this timing: what one
            # coordinator core could serve if nothing else ran on it.
            "nodes_per_coordinator_core": (round(interval / per_ka) if per_ka else None),
            "coordinator_rss_mb": [rss_mb(p) for p in pids],
            **{k: w[k] for k in ("offered_per_coordinator_per_s",
                                 "acked_per_coordinator_per_s", "ack_p50_ms", "ack_p99_ms",
                                 "ack_max_ms", "ack_p99_as_read_ms",
                                 "nodes_lapsed_by_arrival", "lapse_events_by_arrival",
                                 "nodes_lapsed", "lapse_events", "min_nodes_with_lease",
                                 "promotions", "groups_with_active", "datagrams_sent",
                                 "lapse_events_by_arrival_generator",
                                 "nodes_lapsed_by_arrival_generator",
                                 "lapse_events_by_arrival_answer",
                                 "grpc_rounds_while_fast", "generator_cpu_s",
                                 "generator_cpu_us_per_round_trip", "generator_cpu_sys_s",
                                 "generator_cpu_loop_thread_s", "generator_cpu_send_s",
                                 "generator_cpu_read_s", "generator_gc",
                                 "generator_lag_p99_ms", "answer_read_lag_p50_ms",
                                 "answer_read_lag_p99_ms", "send_late_p50_ms",
                                 "send_late_p99_ms", "send_late_max_ms")},
            "generator_cpu_cores": round(w["generator_cpu_s"] / w["seconds"], 3),
            "ack_p99_under_ttl_5": (w["ack_p99_ms"] is not None
                                    and w["ack_p99_ms"] < ttl / 5 * 1000),
            "crash": crash,
        }
    finally:
        await lg.stop()
        await tr.close()


def point(endpoints: list[str], pids: list[int], nodes: int, groups: int, transport: str,
          seconds: float, interval: float, ttl: float, warmup: float,
          failover_limit: float, pinned: bool, nice: int | None,
          fifo: int | None = None, profile: str | None = None) -> dict[str, Any]:
    return asyncio.run(_point(endpoints, pids, nodes, groups, transport, seconds, interval,
                              ttl, warmup, failover_limit, pinned, nice, fifo, profile))


def failover_log(c: CoordinatorCluster, crash: dict[str, Any]) -> dict[str, Any]:
    """Where a crash failover's time went, from the coordinators' logs (wall clock,
    seconds after the crash): the majority-confirmed expiry of the node, the first and
    last promotion of its groups applied, and whether a coordinator reported itself
    overloaded (it then vouches only for silences of several TTLs) in between."""
    at, node, groups = crash["crashed_at"], crash["node"], set(crash["groups"])
    expired: list[float] = []
    promoted: list[float] = []
    overloaded = 0
    for cid in c.ids:
        path = c.root / f"{cid}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if '"ts"' not in line or (node not in line and "overloaded" not in line
                                      and '"promoted"' not in line):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            ts = d.get("ts", 0.0)
            if ts < at or ts > at + 60:
                continue
            msg = d.get("msg")
            if msg == "node lease expired on a majority of coordinators" \
                    and d.get("node") == node:
                expired.append(ts - at)
            elif msg == "promoted" and d.get("group") in groups:
                promoted.append(ts - at)
            elif msg.startswith("coordinator overloaded:"):
                overloaded += 1
    before = crash.get("last_round_before_ms", 0.0) / 1000
    return {"expired_s": round(min(expired), 3) if expired else None,
            # from the node's last round (the crash, as its coordinators can see it)
            "expired_from_last_round_s": round(min(expired) + before, 3) if expired else None,
            "first_promotion_applied_s": round(min(promoted), 3) if promoted else None,
            "last_promotion_applied_s": round(max(promoted), 3) if promoted else None,
            "overload_reports": overloaded}


def run_point(args: argparse.Namespace, nodes: int, transport: str, tmp: Path,
              etcd: EtcdServer | None) -> dict[str, Any]:
    groups = max(1, round(nodes * args.groups_per_node))
    root = tmp / f"n{nodes}-{args.backend}-{transport}"
    root.mkdir()
    c = CoordinatorCluster(root, size=1 if args.pin else 3, ttl=args.ttl,
                           interval=args.interval, tls=False,
                           stabilization=1.0, backend=args.backend,
                           etcd_endpoint=etcd.endpoint if etcd else None)
    try:
        c.start_all()
        fifo = COORDINATOR_FIFO if args.rt else None
        if args.pin or args.nice is not None or fifo is not None:
            for cid in c.ids:
                pin(c.procs[cid].pid, COORDINATOR_CPU if args.pin else None, args.nice, fifo)
        leader = c.leader()
        if leader is None:
            raise SystemExit("no leader")
        loadgen.create_groups(c.api[leader], nodes, groups)
        pids = [c.procs[cid].pid for cid in c.ids]
        profile = None
        if args.profile_generator:
            Path(args.profile_generator).mkdir(parents=True, exist_ok=True)
            profile = str(Path(args.profile_generator).resolve()
                          / f"generator-n{nodes}-{transport}.prof")
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"),
                                 initializer=_pin_self,
                                 initargs=(GENERATOR_CPU if args.pin else None,
                                           args.nice,
                                           GENERATOR_FIFO if args.rt else None)) as ex:
            result = ex.submit(point, c.endpoints, pids, nodes, groups, transport,
                               args.seconds, args.interval, args.ttl, args.warmup,
                               args.failover_limit, args.pin, args.nice, fifo,
                               profile).result(
                timeout=args.seconds + args.warmup + args.failover_limit + 300)
        if profile is not None:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue(), file=sys.stderr)
        crash = result.get("crash") or {}
        if crash.get("crashed_at"):
            crash["coordinator_log"] = failover_log(c, crash)
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
    ap.add_argument("--transport", default="grpc",
                    help="comma-separated, each point runs on each in turn: "
                         f"{', '.join(sorted(TRANSPORTS))}")
    ap.add_argument("--pin", action="store_true",
                    help=f"one coordinator pinned to CPU {COORDINATOR_CPU}, the load "
                         f"generator to CPU {GENERATOR_CPU} (per-core figures)")
    ap.add_argument("--nice", type=int, default=None,
                    help="nice value for the coordinators and the load generator (e.g. "
                         "-10 as root: measure them, not the other work of a shared "
                         "machine; reported with every point)")
    ap.add_argument("--rt", action="store_true",
                    help=f"SCHED_FIFO: the load generator at {GENERATOR_FIFO} (as the agents "
                         f"it simulates run), the coordinators at {COORDINATOR_FIFO} (one above "
                         "their default 5: other coordinators on a shared machine do not "
                         "take their core); needs root")
    ap.add_argument("--profile-generator", metavar="DIR", default=None,
                    help="run the load generator under cProfile over each measured "
                         "window: DIR/generator-n<N>-<transport>.prof, and its top "
                         "functions on stderr (cProfile slows it: figures of a profiled "
                         "run are not the generator's cost)")
    args = ap.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    if any(not 2 <= n <= 2000 for n in counts):
        raise SystemExit("--nodes: each count must be in 2..2000")
    transports = args.transport.split(",")
    if any(t not in TRANSPORTS for t in transports):
        raise SystemExit(f"--transport: each must be one of {', '.join(sorted(TRANSPORTS))}")
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--pin needs two CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="vnfha-scale-"))
    etcd = None
    if args.backend == "etcd":
        etcd = EtcdServer(tmp / "etcd")
        etcd.start()
    points = []
    try:
        for n in counts:
            for t in transports:  # side by side: the same N on each transport in turn
                p = run_point(args, n, t, tmp, etcd)
                print(json.dumps(p), file=sys.stderr)  # in case a later point fails
                points.append(p)
    finally:
        if etcd is not None:
            etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"benchmark": "scale", "cpus": os.cpu_count(),
                      "load_average": [round(x, 1) for x in os.getloadavg()],
                      "points": points}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
