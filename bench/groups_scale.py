"""Groups per cluster: role-change commits, cold start and etcd's size at 1,000 and 5,000
groups, on embedded Raft and on etcd, side by side in one run (issue 14).

Per backend and group count G, three stores in this process (raft: three RaftStores,
fsync on; etcd: three EtcdStores on one real etcd 3.4 process started by
lab/vnfha_lab/etcdserver.py, with the settings docs/config.md asks for):

* seed: G groups, member `a` on one of G/500 hosts, `b` on one of 10 standby nodes,
  every member healthy, every `a` active (batches of 1,000, as the controller sends);
* role-change commits: `--commands` single role changes in a row on the leader's
  store (demote, confirm_release, promote the other member: each one changes a group's
  active or epoch), each timed from submit() to its result (committed, applied and
  visible on that node); p50 / p99 / max;
* a 500-promotion batch (one lost host's groups, one entry/transaction): commit time;
* bytes written per role change: etcd, the transaction requests' size (and what layout
  1 wrote: the whole state value); Raft, the growth
  of the three journals divided by the commands (what each replica appends per entry);
* etcd history (etcd only): `--history-commands` more role changes, then etcd's db
  size (Maintenance.Status: the bbolt file) and the data directory's
  size on disk (WAL included);
* cold start: stop all three stores, start three new ones on the same data (Raft:
  journals and snapshots; etcd: the prefix), time until a leader serves the full
  state (read gate open, G groups) and until all three do. Raft again with one process
  per replica at the product's default election timeouts, as coordinators run, with
  each replica's CPU seconds until it served: first on the data a crash leaves (the
  bench's stores stop without a snapshot: the last size-triggered snapshot plus the
  journal since, `..._after_crash`), then after those replicas stopped gracefully
  (a snapshot at stop, `..._after_stop`). Each says the journal and snapshot bytes
  it started from and the 1-minute load average before and after.

Wall-clock figures on a shared machine mostly measure the machine's load (a runnable
thread at load 25 on 2 cores gets ~1/12 of a core), so the process CPU time (all
three stores: in this process every commit is applied three times, once per
replica) is printed next to them.

    .venv/bin/python bench/groups_scale.py [--groups 1000 5000] [--backends raft etcd]
        [--commands 300] [--history-commands 10000] [--history-groups 5000] [--replicas 3]

Bounded: every wait has a deadline, every loop a count. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from pyetcd import etcdrpc

ROOT = Path(__file__).resolve().parents[1]

from vnfha.coordinator import commands as C  # noqa: E402
from vnfha.coordinator.model import Health, state_to_dict  # noqa: E402
from vnfha.coordinator.raft.settings import RaftSettings  # noqa: E402
from vnfha.coordinator.store.base import OutcomeUnknown, Store, StoreUnavailable  # noqa: E402
from vnfha.coordinator.store.etcd import EtcdStore  # noqa: E402
from vnfha.coordinator.store.etcd_client import EtcdClient  # noqa: E402
from vnfha.coordinator.store.etcd_config import EtcdSettings  # noqa: E402
from vnfha.coordinator.store.etcd_layout import encode  # noqa: E402
from vnfha.coordinator.store.raft import RaftStore  # noqa: E402
from vnfha_lab.etcdserver import EtcdServer  # noqa: E402
from vnfha_lab.ports import free_ports  # noqa: E402

PER_HOST = 500
STANDBYS = 10
SECRET = "groups-scale-bench-secret-32-bytes"
WAIT = 300.0  # s: upper bound for any one wait (leader, start, catch-up)
#: Raft election timeouts (s). Three replicas share one process and a loaded machine
#: here, so a 1,000-item batch can hold the GIL past the defaults (0.3-0.6 s); this is
#: about commit cost, not failover speed.
ELECTION = (2.0, 4.0)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x: float) -> float:
    return round(x * 1000, 2)


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


class Cluster:
    """Three stores of one backend on data that outlives them (restartable)."""

    def __init__(self, make: Callable[[int], Store], size: int = 3) -> None:
        self.make = make
        self.size = size
        self.stores: list[Store] = []

    def start(self) -> float:
        """Start the stores at once; seconds until all of them returned from start()."""
        self.stores = [self.make(i) for i in range(self.size)]
        t0 = time.monotonic()
        threads = [threading.Thread(target=s.start) for s in self.stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=WAIT)
        return time.monotonic() - t0

    def leader(self) -> Store:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            leaders = [s for s in self.stores if s.is_leader()]
            if len(leaders) == 1 and leaders[0].read_gate() is None:
                return leaders[0]
            time.sleep(0.01)
        raise TimeoutError("no leader within the bound")

    def stop(self) -> None:
        for s in self.stores:
            s.stop()
        self.stores = []


def raft_store(root: Path, addrs: list[str], i: int,
               election: tuple[float, float] = ELECTION,
               snapshot_on_stop: bool = True) -> RaftStore:
    """Replica i of a Raft cluster on `addrs`, its data under root/c<i+1>. Without
    `snapshot_on_stop` a stop leaves the data as a crash (kill -9) would."""
    ids = {a: f"c{k + 1}" for k, a in enumerate(addrs)}
    a = addrs[i]
    return RaftStore(ids[a], RaftSettings(
        self_address=a, peers=tuple(p for p in addrs if p != a), data_dir=root / ids[a],
        secret=SECRET if len(addrs) > 1 else None, election_timeout_min=election[0],
        election_timeout_max=election[1], connection_timeout=max(3.5, election[1] + 1),
        snapshot_on_stop_timeout=RaftSettings.snapshot_on_stop_timeout
        if snapshot_on_stop else 0), ids)


def raft_cluster(root: Path, size: int = 3) -> Cluster:
    """The bench's own stores stop as if killed (no snapshot at stop), so the cold
    starts below measure what a crash leaves: the last snapshot the journal's size
    triggered, plus the journal since."""
    addrs = [f"127.0.0.1:{p}" for p in free_ports(size)]
    cluster = Cluster(lambda i: raft_store(root, addrs, i, snapshot_on_stop=False), size)
    cluster.raft = (root, addrs)  # type: ignore[attr-defined]  # for the process cold start
    return cluster


def _replica_process(root: Path, addrs: list[str], i: int, groups: int, conn: Connection) -> None:
    """One replica in its own process, as a coordinator runs it (no GIL shared with the
    others), at the product's default election timeouts. Sends ("serving", t) once it
    serves the full state and ("leading", t) once it leads with it (t: CLOCK_MONOTONIC,
    comparable across processes); stops when told to (bounded by WAIT)."""
    store = raft_store(root, addrs, i, election=(RaftSettings.election_timeout_min,
                                                 RaftSettings.election_timeout_max))
    store.start()
    sent: set[str] = set()
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline and not conn.poll(0.005):
            if store.read_gate() is None and len(store.state().groups) == groups:
                for what, yes in (("serving", True), ("leading", store.is_leader())):
                    if yes and what not in sent:
                        sent.add(what)
                        conn.send((what, time.monotonic(), time.process_time()))
    finally:
        store.stop()


def data_files(root: Path, addrs: list[str]) -> dict:
    """Per replica: bytes of journal and of snapshot a start would read."""
    out = {}
    for k in range(len(addrs)):
        d = root / f"c{k + 1}"
        out[f"c{k + 1}"] = {name: (d / name).stat().st_size if (d / name).exists() else 0
                            for name in ("journal.log", "snapshot.json")}
    return out


def cold_start_processes(root: Path, addrs: list[str], groups: int) -> dict:
    """Cold start with one process per replica (the deployment's shape): seconds from
    starting the processes until a leader serves the full state and until all do.
    The replicas stop gracefully (a snapshot at stop), as a coordinator does on
    SIGTERM."""
    files = data_files(root, addrs)
    load = os.getloadavg()[0]
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    t0 = time.monotonic()
    for i in range(len(addrs)):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_replica_process, args=(root, addrs, i, groups, theirs))
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    seen: dict[tuple[int, str], float] = {}
    cpu_to_serve: list[float] = []  # per replica: its process's CPU seconds until it served
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline and not (
                all((i, "serving") in seen for i in range(len(addrs)))
                and any(w == "leading" for _, w in seen)):
            for i, c in enumerate(pipes):
                while c.poll(0.01):
                    what, t, cpu = c.recv()
                    seen[(i, what)] = t
                    if what == "serving":
                        cpu_to_serve.append(cpu)
        lead = [t for (_, w), t in seen.items() if w == "leading"]
        serve = [t for (_, w), t in seen.items() if w == "serving"]
        if not lead or len(serve) < len(addrs):
            raise TimeoutError("cold start (processes): not every replica served in time")
        return {"processes": len(addrs), "election_timeout_s": [
                    RaftSettings.election_timeout_min, RaftSettings.election_timeout_max],
                "data_at_start_bytes": files,
                "load_average_1m": [round(load, 1), round(os.getloadavg()[0], 1)],
                "leader_serves_s": round(min(lead) - t0, 2),
                "all_serve_s": round(max(serve) - t0, 2),
                "process_start_included": True,
                # What the wall clock cannot say on a loaded machine: a replica on its own
                # core (a coordinator VM) serves after about this much CPU plus the election.
                "replica_cpu_to_serve_s": sorted(round(c, 2) for c in cpu_to_serve)}
    finally:
        for c in pipes:
            c.send("stop")
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


class CountingClient(EtcdClient):
    """Counts the bytes of the transactions a store sends (what etcd must accept)."""

    sent = 0

    def txn(self, compare, success, failure, timeout):  # type: ignore[override]
        req = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure)
        CountingClient.sent += req.ByteSize()
        return super().txn(compare, success, failure, timeout)


def etcd_cluster(etcd: EtcdServer, prefix: str, size: int = 3) -> Cluster:
    settings = EtcdSettings(endpoints=(etcd.endpoint,), prefix=prefix, session_ttl=2)
    return Cluster(lambda i: EtcdStore(f"c{i + 1}", settings, client_factory=CountingClient),
                   size)


def seed(cluster: Cluster, groups: int) -> list[str]:
    names = [f"g{i:05d}" for i in range(groups)]

    def ok(cmd: dict) -> None:
        # Retried (same request id: applies once) through whoever leads: on a loaded
        # machine a leader can change while seeding.
        for _ in range(5):
            try:
                r = cluster.leader().submit(cmd, timeout=60)
                break
            except (StoreUnavailable, OutcomeUnknown):
                continue
        assert r["ok"], (cmd["op"], r)

    for i in range(0, groups, 1000):
        ok(C.apply_groups([{"name": n} for n in names[i:i + 1000]]))
    for h in range(0, groups, PER_HOST):
        ok(C.register_node(f"host{h // PER_HOST}", f"198.18.2.{h // PER_HOST + 1}",
                           [{"group": g, "member": "a", "priority": 100}
                            for g in names[h:h + PER_HOST]]))
    for s in range(STANDBYS):
        ok(C.register_node(f"stby{s}", f"198.18.3.{s + 1}",
                           [{"group": g, "member": "b", "priority": 90}
                            for g in names[s::STANDBYS]]))
    for m in ("a", "b"):
        for i in range(0, groups, 1000):
            ok(C.batch([C.set_health(g, m, Health.HEALTHY) for g in names[i:i + 1000]]))
    for i in range(0, groups, 1000):
        ok(C.batch([C.promote(g, "a", 0, reason="seed") for g in names[i:i + 1000]]))
    return names


_last: dict[str, str] = {}  # group -> its last active member


def role_changes(store: Store, names: list[str], n: int, start: int = 0) -> list[float]:
    """n single role-changing commands, spread over the groups (each group in turn goes
    demote -> confirm_release -> promote the other member); seconds per commit."""
    lat: list[float] = []
    i = start
    while len(lat) < n:
        name = names[(i // 3) % len(names)]
        i += 1
        g = store.state().groups[name]
        if g.active is not None:
            _last[name] = g.active
            cmd = C.demote(name, g.epoch, reason="bench")
        elif g.releasing is not None:
            cmd = C.confirm_release(name, g.releasing, g.epoch, reason="bench")
        else:
            cmd = C.promote(name, "b" if _last.get(name, "b") == "a" else "a", g.epoch,
                            reason="bench")
        t0 = time.perf_counter()
        r = store.submit(cmd, timeout=10)
        lat.append(time.perf_counter() - t0)
        assert r["ok"], (cmd, r)
    return lat


def layout_1_size(store: Store) -> int:
    """What every command wrote before layout 2: the whole state without events,
    checkpoints and queued messages, as one value."""
    d = state_to_dict(store.state())
    for k in ("events", "checkpoints", "queues"):
        d.pop(k, None)
    return len(encode(d))


def etcd_status(etcd: EtcdServer) -> dict:
    ch = grpc.insecure_channel(etcd.endpoint)
    try:
        st = etcdrpc.MaintenanceStub(ch).Status(etcdrpc.StatusRequest(), timeout=10)
        return {"db_size_bytes": st.dbSize, "revision": st.header.revision}
    finally:
        ch.close()


def cold_start(cluster: Cluster, groups: int) -> dict:
    cluster.stop()
    files = data_files(*cluster.raft) if hasattr(cluster, "raft") else None
    t0 = time.monotonic()
    cpu0 = time.process_time()
    started = cluster.start()
    leader = cluster.leader()
    assert len(leader.state().groups) == groups
    leader_ready = time.monotonic() - t0
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if all(s.read_gate() is None and len(s.state().groups) == groups
               for s in cluster.stores):
            break
        time.sleep(0.01)
    else:
        raise TimeoutError("not every store caught up")
    out = {"start_returned_s": round(started, 2), "leader_serves_s": round(leader_ready, 2),
           "all_serve_s": round(time.monotonic() - t0, 2),
           "process_cpu_s": round(time.process_time() - cpu0, 2)}
    if files is not None:
        out["data_at_start_bytes"] = files
    return out


def run_point(backend: str, groups: int, args: argparse.Namespace, tmp: Path,
              etcd: EtcdServer | None) -> dict:
    root = tmp / f"{backend}-{groups}"
    root.mkdir()
    if backend == "raft":
        cluster = raft_cluster(root, args.replicas)
    else:
        assert etcd is not None
        cluster = etcd_cluster(etcd, f"/bench/{groups}", args.replicas)
    out: dict = {}
    cluster.start()
    try:
        leader = cluster.leader()
        t0 = time.monotonic()
        names = seed(cluster, groups)
        leader = cluster.leader()
        out["seed_s"] = round(time.monotonic() - t0, 1)
        role_changes(leader, names, 20)  # warm up
        journal_before = du(root) if backend == "raft" else 0
        CountingClient.sent = 0
        cpu0 = time.process_time()
        lat = role_changes(leader, names, args.commands, start=60)
        cpu = time.process_time() - cpu0
        out["role_change_commit_ms"] = {"n": len(lat), "p50": ms(statistics.median(lat)),
                                        "p99": ms(pct(lat, 0.99)), "max": ms(max(lat)),
                                        "process_cpu_per_commit": ms(cpu / len(lat))}
        if backend == "raft":
            out["bytes_per_role_change_per_replica"] = round(
                (du(root) - journal_before) / args.replicas / len(lat))
        else:
            out["bytes_per_role_change"] = round(CountingClient.sent / len(lat))
            out["layout_1_bytes_per_command"] = layout_1_size(leader)
        # one lost host: its 500 groups move to b in one batch (demotes, as one entry)
        host = [n for n in names[:PER_HOST] if leader.state().groups[n].active == "a"]
        batch = C.batch([C.demote(n, leader.state().groups[n].epoch, reason="host lost")
                         for n in host])
        t1 = time.perf_counter()
        r = leader.submit(batch, timeout=30)
        out["batch_commit_ms"] = {"items": len(host), "ms": ms(time.perf_counter() - t1)}
        assert r["ok"], r
        if backend == "etcd" and args.history_commands and groups in args.history_groups:
            assert etcd is not None
            before = etcd_status(etcd)
            t2 = time.monotonic()
            hist = role_changes(leader, names, args.history_commands, start=10_000)
            out["etcd_history"] = {
                "commands": len(hist), "seconds": round(time.monotonic() - t2, 1),
                "commit_p99_ms": ms(pct(hist, 0.99)),
                "before": before, "after": etcd_status(etcd),
                "data_dir_bytes": du(etcd.data_dir),
                "compaction_retention": etcd.compaction_retention}
        out["cold_start"] = cold_start(cluster, groups)
        if backend == "raft":
            cluster.stop()  # as a crash leaves it (see raft_cluster)
            out["cold_start_one_process_per_replica_after_crash"] = cold_start_processes(
                *cluster.raft, groups)  # type: ignore[attr-defined]
            # those replicas stopped gracefully: each wrote a snapshot at stop
            out["cold_start_one_process_per_replica_after_stop"] = cold_start_processes(
                *cluster.raft, groups)  # type: ignore[attr-defined]
    finally:
        cluster.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--backends", nargs="+", default=["raft", "etcd"],
                    choices=["raft", "etcd"])
    ap.add_argument("--commands", type=int, default=300)
    ap.add_argument("--replicas", type=int, default=3,
                    help="stores per backend (1: what one replica costs on its own)")
    ap.add_argument("--history-commands", type=int, default=10_000)
    ap.add_argument("--history-groups", type=int, nargs="+", default=[5000],
                    help="group counts at which to run the etcd history phase")
    args = ap.parse_args()
    load_before = os.getloadavg()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="vnfha-groups-") as tmp_s:
        tmp = Path(tmp_s)
        etcd = None
        if "etcd" in args.backends:
            etcd = EtcdServer(tmp / "etcd" / "data")
            etcd.start()
        try:
            for backend in args.backends:
                for g in args.groups:
                    results[f"{backend} {g} groups"] = run_point(backend, g, args, tmp, etcd)
                    print(json.dumps({f"{backend} {g}": results[f"{backend} {g} groups"]}),
                          file=sys.stderr, flush=True)
        finally:
            if etcd is not None:
                etcd.stop()
    results["load_average_before"] = [round(x, 2) for x in load_before]
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["cpus"] = os.cpu_count()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
