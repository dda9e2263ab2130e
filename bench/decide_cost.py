"""What the leader's per-round and per-commit work costs as the state grows.

In one process, no I/O (pure functions on a built state; G groups of two members,
node `h{i % N}` hosts the actives, `s{i % N}` the standbys; every node fresh):

* decide round, nothing to do: the full sweep vs the incremental round
  (decide_dirty.DirtyTracker: only groups whose inputs changed, here none);
* a round after one node reported a change (its groups only);
* per commit for the watches: the old per-stream scan (every stream recomputes its
  node's assignments by scanning every member) vs the node index (advance_index once
  per commit, then only the affected nodes' streams compute);
* one batch of G/N promotions (a lost node's actives) applied by the state machine.

    .venv/bin/python bench/decide_cost.py [--groups 10 1000 5000] [--nodes 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from cluster_builders import run

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import new_rid
from vnfha.coordinator.decide import Policy, decide
from vnfha.coordinator.decide_dirty import DirtyTracker
from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import ClusterState, Health, advance_index, node_index
from vnfha.coordinator.service.agent import assignments_for
from vnfha.coordinator.state_machine import apply

POLICY = Policy(ttl=0.25, stabilization=5.0)


def build_state(groups: int, nodes: int) -> ClusterState:
    st = run(ClusterState(), *[C.apply_groups([{"name": f"g{i:05d}"} for i in range(j, min(
        groups, j + C.MAX_GROUPS_PER_APPLY))]) for j in range(0, groups, C.MAX_GROUPS_PER_APPLY)])
    for n in range(min(nodes, groups)):
        for role, prio in (("h", 100), ("s", 90)):
            members = [{"group": f"g{i:05d}", "member": f"{role}{i}", "priority": prio}
                       for i in range(n, groups, nodes)]
            st = run(st, C.register_node(f"{role}{n}", "198.18.1.1", members))
    items = []
    for g in st.groups.values():
        for m in g.members.values():
            items.append(C.set_health(g.name, m.name, Health.HEALTHY))
    for j in range(0, len(items), C.MAX_BATCH_ITEMS):
        st = run(st, C.batch(items[j:j + C.MAX_BATCH_ITEMS]))
    promos = [C.promote(g.name, f"h{int(g.name[1:])}", 0, reason="bench")
              for g in st.groups.values()]
    for j in range(0, len(promos), C.MAX_BATCH_ITEMS):
        st = run(st, C.batch(promos[j:j + C.MAX_BATCH_ITEMS]))
    return st


def keepalives(st: ClusterState, leases: LeaseTable, now: float, unhealthy: str = "") -> None:
    for node in st.nodes:
        leases.record(node, [Report(m.group, m.name,
                                    Health.UNHEALTHY if node == unhealthy else Health.HEALTHY,
                                    st.groups[m.group].epoch,
                                    st.groups[m.group].epoch
                                    if st.groups[m.group].active == m.name else 0)
                             for m in st.members_on(node)], now)


def timed(fn, repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def scan_members_on(st: ClusterState, node: str) -> list:
    """The old ClusterState.members_on: every member of every group."""
    return [m for g in st.groups.values() for m in g.members.values() if m.node == node]


def point(groups: int, nodes: int) -> dict:
    st = build_state(groups, nodes)
    leases = LeaseTable(started_at=0.0, ttl=POLICY.ttl)
    now = 100.0
    keepalives(st, leases, now)
    obs = leases.observations(0.0, None)
    repeat = max(3, 2000 // groups)
    full = timed(lambda: decide(st, obs, now, POLICY, ids=new_rid, at=0.0), repeat)
    tracker = DirtyTracker(full_every=10**9)
    tracker.groups(st, obs, now, POLICY)

    def incremental() -> None:
        decide(st, obs, now, POLICY, groups=tracker.groups(st, obs, now, POLICY), ids=new_rid,
               at=0.0)

    quiet = timed(incremental, repeat * 5)
    keepalives(st, leases, now, unhealthy="s0")
    obs2 = leases.observations(0.0, None)
    dirty = tracker.groups(st, obs2, now, POLICY)
    t0 = time.perf_counter()
    decide(st, obs2, now, POLICY, groups=dirty, ids=new_rid, at=0.0)
    one_node = time.perf_counter() - t0
    # Watches: one commit changing one group, then every node's stream reacting.
    gname = "g00000"
    g = st.groups[gname]
    new, _ = apply(st, C.demote(gname, g.epoch, reason="bench"))
    all_nodes = sorted(st.nodes)

    def old_watch() -> None:
        for n in all_nodes:
            sorted(scan_members_on(new, n), key=lambda m: (m.group, m.name))

    def new_watch() -> None:
        new.__dict__.pop("_node_index", None)
        affected = advance_index(st, new)
        for n in affected:
            assignments_for(new, n)

    node_index(st)
    old_w = timed(old_watch, max(1, repeat // 5))
    new_w = timed(new_watch, repeat)
    lost = [C.promote(f"g{i:05d}", f"s{i}", st.groups[f"g{i:05d}"].epoch, reason="h0 lost")
            | {"replace": f"h{i}"} for i in range(0, groups, nodes)]
    t0 = time.perf_counter()
    _, result = apply(st, C.batch(lost))
    batch_apply = time.perf_counter() - t0
    assert result["ok"], result
    return {
        "groups": groups, "nodes": 2 * min(nodes, groups),
        "decide_full_sweep_ms": round(full * 1e3, 3),
        "decide_quiet_incremental_ms": round(quiet * 1e3, 3),
        "decide_one_node_changed_ms": round(one_node * 1e3, 3),
        "groups_decided_one_node_changed": len(dirty or ()),
        "watch_per_commit_old_scan_ms": round(old_w * 1e3, 3),
        "watch_per_commit_indexed_ms": round(new_w * 1e3, 3),
        "batch_of_lost_node_promotions": len(lost),
        "batch_apply_ms": round(batch_apply * 1e3, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, nargs="+", default=[10, 1000, 5000])
    ap.add_argument("--nodes", type=int, default=100, help="active hosts (as many standby)")
    args = ap.parse_args()
    print(json.dumps({"benchmark": "decide_cost",
                      "points": [point(g, args.nodes) for g in args.groups]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
