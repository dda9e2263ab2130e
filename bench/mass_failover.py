"""Mass failover: one node carrying many actives is lost; how long from the first
promotion to the last?

Three real `vnfha coordinator` processes (embedded Raft, fsync on, or `--backend etcd`:
one real etcd process; tests/e2e/cluster.py)
with G groups. Each group has member `a` (priority 100) on node `host` and member `b`
(90) on one of S standby nodes. Simulated agents speak the real protocol: RegisterNode,
then to every coordinator a Keepalive stream (one message per interval carrying every
member's health, seen epoch and held epoch) and a WatchAssignments stream (the highest
epoch seen per group feeds the next keepalive). Once every group has an active and the
assignments stood still for 1 s, `host` stops sending keepalives (a crash), and the
bench records, for every group whose active was `a` at that moment, when an agent first
saw its `b` assigned active at a newer epoch (earliest over the coordinators' watches).

Printed per code version: first and last promotion seen (from the loss), their spread,
and the leader's CPU seconds from the loss to the last promotion. `--before REV` runs
the same scenario first on the code of git revision REV (exported to a temporary
directory and put first on PYTHONPATH), so before and after come from one run.

    .venv/bin/python bench/mass_failover.py [--groups 500] [--standby-nodes 10]
        [--before a36b102] [--ttl 0.6] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from cluster import CoordinatorCluster  # noqa: E402
from side_by_side import export_revision  # noqa: E402  (bench/, beside this script)

from vnfha.v1 import agent_pb2, agent_pb2_grpc, types_pb2  # noqa: E402
from vnfha_lab.etcdserver import EtcdServer  # noqa: E402

ACTIVE = types_pb2.ROLE_ACTIVE


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cancelled() -> bool:
    """This task itself is being cancelled (not a call inside it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Agent:
    """One simulated node: keepalives to and watches on every coordinator."""

    def __init__(self, node: str, members: list[tuple[str, str]], interval: float,
                 world: World) -> None:
        self.node = node
        self.members = members
        self.interval = interval
        self.epoch = {g: 0 for g, _ in members}  # highest epoch seen per group
        self.held = {g: 0 for g, _ in members}  # epoch the member holds active at; 0: none
        self.alive = True
        self.world = world

    def report(self, seq: int) -> agent_pb2.KeepaliveRequest:
        return agent_pb2.KeepaliveRequest(node=self.node, seq=seq, members=[
            agent_pb2.MemberReport(group=g, member=m, health=types_pb2.HEALTH_HEALTHY,
                                   seen_epoch=self.epoch[g], active_epoch=self.held[g])
            for g, m in self.members])

    async def keepalive(self, stub: agent_pb2_grpc.AgentServiceStub, until: float) -> None:
        """One stream per coordinator, reopened after an error, as the real agent does
        (a coordinator that cannot reach etcd refuses the stream, for instance)."""
        async def requests():
            seq = 0
            while self.alive and time.monotonic() < until:
                seq += 1
                yield self.report(seq)
                await asyncio.sleep(self.interval)

        while self.alive and time.monotonic() < until:
            try:
                async for _ in stub.Keepalive(requests()):
                    pass
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                if _cancelled():
                    raise  # the bench is ending
                # A refused stream can surface as a cancellation inside grpc.aio.
            await asyncio.sleep(self.interval)

    async def watch(self, stub: agent_pb2_grpc.AgentServiceStub, until: float) -> None:
        while time.monotonic() < until:
            try:
                await self._watch_once(stub, until)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                if _cancelled():
                    raise
            await asyncio.sleep(self.interval)  # then reopened, as the real agent does

    async def _watch_once(self, stub: agent_pb2_grpc.AgentServiceStub, until: float) -> None:
        call = stub.WatchAssignments(agent_pb2.WatchAssignmentsRequest(node=self.node))
        try:
            while time.monotonic() < until:
                try:
                    msg = await asyncio.wait_for(call.read(),
                                                 timeout=max(0.01, until - time.monotonic()))
                except TimeoutError:
                    return
                if msg is grpc.aio.EOF:
                    return
                now = time.monotonic()
                for a in msg.assignments:
                    if a.group not in self.epoch:
                        continue
                    self.epoch[a.group] = max(self.epoch[a.group], a.epoch)
                    active = a.role == ACTIVE
                    self.held[a.group] = a.epoch if active else 0
                    if active:
                        self.world.saw_active(a.group, a.member, a.epoch, now)
        finally:
            call.cancel()


class World:
    """What the agents have seen, over every coordinator's watch."""

    def __init__(self) -> None:
        self.active: dict[str, tuple[int, str]] = {}  # group -> (epoch, member) newest seen
        self.first_seen: dict[tuple[str, str, int], float] = {}  # first sight of each grant

    def saw_active(self, group: str, member: str, epoch: int, now: float) -> None:
        self.first_seen.setdefault((group, member, epoch), now)
        if epoch > self.active.get(group, (0, ""))[0]:
            self.active[group] = (epoch, member)


async def scenario(cluster: CoordinatorCluster, groups: int, standby_nodes: int,
                   interval: float, limit: float) -> dict:
    world = World()
    names = [f"g{i:04d}" for i in range(groups)]
    host = Agent("host", [(g, "a") for g in names], interval, world)
    standbys = [Agent(f"s{j:02d}", [(g, "b") for i, g in enumerate(names)
                                    if i % standby_nodes == j], interval, world)
                for j in range(standby_nodes)]
    agents = [host, *standbys]  # host first: its members are the first candidates
    channels = [grpc.aio.insecure_channel(cluster.api[c]) for c in cluster.ids]
    stubs = [agent_pb2_grpc.AgentServiceStub(ch) for ch in channels]
    t_start = time.monotonic()
    until = t_start + limit
    tasks = []
    for ag in agents:  # each agent starts its streams as soon as it is registered
        await stubs[0].RegisterNode(agent_pb2.RegisterNodeRequest(
            node=ag.node, address="198.18.1.1", remove_undeclared=True,
            members=[agent_pb2.MemberSpec(group=g, member=m, priority=100 if m == "a" else 90)
                     for g, m in ag.members]), timeout=30, wait_for_ready=True)
        tasks += [asyncio.create_task(f(stub, until)) for stub in stubs
                  for f in (ag.keepalive, ag.watch)]
    out: dict = {}
    try:
        # Cold start: every group has an active and nothing changed for 1 s.
        last, stable_since = None, time.monotonic()
        while True:
            now = time.monotonic()
            if now > until:
                raise SystemExit(f"cold start: {len(world.active)} of {groups} groups have an"
                                 f" active after {limit} s")
            snap = dict(world.active)
            if snap != last:
                last, stable_since = snap, now
            elif len(snap) == groups and now - stable_since >= 1.0:
                break
            await asyncio.sleep(0.05)
        out["cold_start_s"] = round(stable_since - t_start, 3)
        victims = {g: epoch for g, (epoch, member) in world.active.items() if member == "a"}
        leader = None
        while leader is None and time.monotonic() < until:  # status may be slow to answer
            leader = await asyncio.to_thread(cluster.leader)
        if leader is None:
            raise SystemExit("no coordinator says it leads")
        pid = cluster.procs[leader].pid
        cpu0 = cpu_seconds(pid)
        lost_at = time.monotonic()
        host.alive = False  # the host crashes: no more keepalives

        def promoted() -> list[float]:
            return [t for (g, m, e), t in list(world.first_seen.items())
                    if m == "b" and g in victims and e > victims[g]]

        while len(promoted()) < len(victims) and time.monotonic() < until:
            await asyncio.sleep(0.01)
        cpu = cpu_seconds(pid) - cpu0
        times = sorted(promoted())
        out.update({
            "actives_on_lost_node": len(victims),
            "promoted": len(times),
            "first_promotion_after_loss_s": round(times[0] - lost_at, 3) if times else None,
            "last_promotion_after_loss_s": round(times[-1] - lost_at, 3) if times else None,
            "first_to_last_promotion_s": round(times[-1] - times[0], 4) if times else None,
            "leader_cpu_s_loss_to_last_promotion": round(cpu, 3),
        })
    finally:
        for ag in agents:
            ag.alive = False
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()
    return out


def run_one(label: str, pythonpath: Path | None, args: argparse.Namespace, tmp: Path,
            etcd: EtcdServer | None) -> dict:
    root = tmp / f"{label} {args.backend}".replace(" ", "-").replace("(", "").replace(")", "")
    root.mkdir()
    # "web": the group CoordinatorCluster waits for; it has no members.
    groups = [{"name": "web"}] + [{"name": f"g{i:04d}"} for i in range(args.groups)]
    old = os.environ.get("PYTHONPATH")
    if pythonpath is not None:
        os.environ["PYTHONPATH"] = str(pythonpath)
    c = CoordinatorCluster(root, ttl=args.ttl, interval=args.interval, groups=groups,
                           stabilization=1.0, backend=args.backend,
                           etcd_endpoint=etcd.endpoint if etcd else None)
    try:
        c.start_all()
        result = asyncio.run(scenario(c, args.groups, args.standby_nodes, args.interval,
                                      args.limit))
    finally:
        c.stop_all()
        if pythonpath is not None:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    print(json.dumps({"code": label, **result}), file=sys.stderr)  # in case a later run fails
    return {"code": label, **result}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--standby-nodes", type=int, default=10)
    ap.add_argument("--ttl", type=float, default=0.6)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--limit", type=float, default=240.0,
                    help="seconds each scenario may take at most (cold start + failover)")
    ap.add_argument("--before", metavar="REV", help="also run on the code of git revision REV")
    ap.add_argument("--backend", choices=("raft", "etcd"), default="raft",
                    help="etcd: one real etcd (its own process) holds the state")
    args = ap.parse_args()
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="vnfha-mass-") as tmp_s:
        tmp = Path(tmp_s)
        etcd = EtcdServer(tmp / "etcd-data") if args.backend == "etcd" else None
        if etcd is not None:
            etcd.start()
        try:
            if args.before:
                path = tmp / "old-code"
                export_revision(args.before, path)  # importable from `path` (side_by_side)
                runs.append(run_one(f"before ({args.before})", path, args, tmp, etcd))
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            runs.append(run_one(f"after ({head or 'worktree'})", None, args, tmp, etcd))
        finally:
            if etcd is not None:
                etcd.stop()
    print(json.dumps({
        "benchmark": "mass_failover", "groups": args.groups, "backend": args.backend,
        "coordinators": 3, "standby_nodes": args.standby_nodes, "ttl": args.ttl,
        "keepalive_interval": args.interval, "runs": runs,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
