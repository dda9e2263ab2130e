"""etcd vs embedded Raft, side by side in one run: role-change commits and keepalives/s.

For each backend, three coordinators' stores:
* role-change commit latency: on the leader's store, N role changes in a row
  (promote, demote, confirm_release, ...: each one epoch change or release),
  timed from submit() to the result (committed, applied, visible on this node);
  raft: three RaftStores (fsync on) in this process; etcd: three EtcdStores in
  this process on one real etcd (its own process, fsync on);
* keepalives/s: three real `vnfha coordinator` processes (tests/e2e/cluster.py),
  N registered nodes, the load generator of bench/keepalive_throughput.py
  against one coordinator. An acknowledgement does not touch the store, so this
  shows what the store costs a coordinator while it only follows.
Also prints what one command writes to etcd (bytes), against a whole-snapshot layout.

    .venv/bin/python bench/store_compare.py [--commands 300] [--nodes 64] [--seconds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
# The contract suite's store factories (its conftest.py, loaded by path: every test
# folder has a conftest module).
_spec = importlib.util.spec_from_file_location("contract_backends",
                                               ROOT / "tests" / "contract" / "conftest.py")
assert _spec is not None and _spec.loader is not None
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

from cluster import CoordinatorCluster  # noqa: E402
from keepalive_throughput import _client  # noqa: E402

from vnfha.coordinator import commands as C  # noqa: E402
from vnfha.coordinator.model import Health  # noqa: E402
from vnfha.coordinator.state_machine import StateMachine  # noqa: E402
from vnfha.coordinator.store.base import Store  # noqa: E402
from vnfha.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from vnfha_lab.etcdserver import EtcdServer  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x: float) -> float:
    return round(x * 1000, 3)


def role_changes(store: Store, n: int) -> list[float]:
    """Move the active between a and b (demote, release, promote the other); time every
    role-changing commit."""
    lat: list[float] = []
    last = "b"
    while len(lat) < n:
        g = store.state().groups["g"]
        if g.active is not None:
            cmd = C.demote("g", g.epoch, reason="bench")
        elif g.releasing is not None:
            cmd = C.confirm_release("g", g.releasing, g.epoch, reason="bench")
        else:
            last = "a" if last == "b" else "b"
            cmd = C.promote("g", last, g.epoch, reason="bench")
        t0 = time.perf_counter()
        r = store.submit(cmd, timeout=5)
        lat.append(time.perf_counter() - t0)
        assert r["ok"], (cmd, r)
    return lat


def contract_seed() -> list[dict]:
    cmds = [C.apply_groups([{"name": "g"}])]
    for i, m in enumerate(("a", "b"), start=1):
        cmds.append(C.register_node(f"n{i}", f"198.18.1.{i}", [{"group": "g", "member": m}]))
        cmds.append(C.set_health("g", m, Health.HEALTHY))
    return cmds


def commit_bench(factory: Callable[[], AbstractContextManager[Store]], n: int) -> dict:
    with factory() as store:
        for cmd in contract_seed():
            assert store.submit(cmd)["ok"], cmd
        role_changes(store, 20)  # warm up (connections, caches)
        lat = role_changes(store, n)
    return {"n": len(lat), "p50_ms": ms(statistics.median(lat)), "p99_ms": ms(pct(lat, 0.99)),
            "max_ms": ms(max(lat))}


def keepalive_bench(backend: str, etcd: EtcdServer | None, nodes: int, seconds: float,
                    tmp: Path) -> dict:
    root = tmp / f"ka-{backend}"
    root.mkdir()
    # Plaintext (insecure: true): this compares the stores; bench/tls_overhead.py
    # measures what mTLS costs.
    c = CoordinatorCluster(root, ttl=3.0, interval=0.5, groups=[{"name": "web"}, {"name": "bench"}],
                           backend=backend, etcd_endpoint=etcd.endpoint if etcd else None,
                           tls=False)
    try:
        c.start_all()
        target = c.ids[0]
        ch = grpc.insecure_channel(c.api[target])
        grpc.channel_ready_future(ch).result(timeout=20)
        agent = agent_pb2_grpc.AgentServiceStub(ch)
        names = [f"n{i:04d}" for i in range(nodes)]
        for name in names:
            agent.RegisterNode(agent_pb2.RegisterNodeRequest(
                node=name, members=[agent_pb2.MemberSpec(group="bench", member=f"m-{name}")]),
                timeout=10)
        leader = c.leader()
        out: mp.Queue = mp.Queue()
        p = mp.Process(target=_client, args=(c.api[target], names, seconds, 4, out))
        t0 = time.monotonic()
        p.start()
        total = out.get(timeout=seconds + 30)
        elapsed = time.monotonic() - t0
        p.join()
        ch.close()
        return {"acked_per_second": round(total / elapsed), "acked": total,
                "coordinator": target, "is_leader": target == leader}
    finally:
        c.stop_all()


def write_sizes() -> dict:
    """Bytes one set_health writes: whole snapshot vs our split layout (1000 events, 10k
    request ids remembered)."""
    from vnfha.coordinator.store.etcd_layout import Keys, evictions, write_ops

    sm = StateMachine()
    for cmd in contract_seed():
        sm.apply(cmd)
    for i in range(10_500):
        sm.apply(C.set_health("g", "a", Health.HEALTHY if i % 2 else Health.UNHEALTHY,
                              reason="probe failed: exit 1"))
    snap = sm.snapshot()
    whole = len(json.dumps(snap, separators=(",", ":")))
    before = sm.state
    cmd = C.set_health("g", "a", Health.UNHEALTHY, reason="probe failed: exit 1")
    result = sm.apply(cmd)
    ops = write_ops(Keys("/vnfha"), before, sm.state, cmd["rid"], result,
                    evictions(dict(snap["recent"])))
    split = sum(len(k) + len(v) for k, v in ops.puts.items()) + sum(len(k) for k in ops.deletes)
    return {"whole_snapshot_bytes": whole, "split_layout_bytes_per_command": split}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commands", type=int, default=300)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vnfha-storecmp-") as tmp_s:
        tmp = Path(tmp_s)
        etcd = EtcdServer(tmp / "etcd-data")
        etcd.start()
        contract._ETCD.append(etcd)
        try:
            out = {
                "role_change_commit": {
                    "raft (3 RaftStores, one process)": commit_bench(contract.raft_three_nodes,
                                                                     args.commands),
                    "etcd (3 EtcdStores, one process; etcd 3.4 single member)":
                        commit_bench(contract.etcd_three, args.commands),
                },
                "keepalives": {
                    "raft (3 coordinator processes)": keepalive_bench(
                        "raft", None, args.nodes, args.seconds, tmp),
                    "etcd (3 coordinator processes)": keepalive_bench(
                        "etcd", etcd, args.nodes, args.seconds, tmp),
                },
                "etcd_write_size": write_sizes(),
            }
        finally:
            contract._ETCD.remove(etcd)
            etcd.stop()
    out["load_average_before"] = [round(x, 2) for x in load_before]
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
