"""docs/metrics.md documents every metric the code exports (and no other), and the
Grafana dashboard queries only documented metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from vnfha.agents.metrics import AgentView, MemberView, view_metrics
from vnfha.coordinator.fastwire import REASONS
from vnfha.coordinator.metrics import (
    CoordinatorMetrics,
    OverloadCollector,
    fastpath_metrics,
    state_metrics,
    store_metrics,
)
from vnfha.coordinator.model import (
    Checkpoint,
    ClusterState,
    Group,
    GroupMode,
    GroupQueue,
    Member,
    Node,
    Recovery,
)
from vnfha.coordinator.overload import LoopLag
from vnfha.coordinator.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "metrics.md").read_text()
DOCUMENTED = set(re.findall(r"^\| `(vnfha_[a-z_]+)` \|", DOC, re.MULTILINE))
# Backend-specific facts a memory store does not have.
BACKEND_ONLY = {"vnfha_raft_term", "vnfha_raft_commit_index", "vnfha_raft_applied_index",
                "vnfha_raft_log_entries", "vnfha_raft_quorum_contact_age_seconds",
                "vnfha_raft_voters_in_contact",
                "vnfha_etcd_revision"}


class FakeIntake:
    answered = 1
    dropped = dict.fromkeys(REASONS, 0)

    def sessions(self) -> int:
        return 1

    def cpu_seconds(self) -> float | None:
        return 0.5

    def answer_cpu(self) -> float | None:
        return 3e-5


def exported() -> set[str]:
    state = ClusterState(nodes={"vm1": Node("vm1")},
                         checkpoints={"web": Checkpoint(1, 1, b"")},
                         queues={"web": GroupQueue()}, groups={
        "web": Group("web", active="m1", members={"m1": Member("m1", "web", "vm1")}),
        "api": Group("api", mode=GroupMode.ACTIVE_ACTIVE, pool=frozenset({"a1"}),
                     lb_applied={"lb1": 1}, members={"a1": Member("a1", "api", "vm1")},
                     recoveries={"a1": Recovery("a1", "vm1", 1, "lost")})})
    store = MemoryStore("c1")
    families = [*state_metrics(state, {"vm1": 0.1}),
                *store_metrics(store, "c1", lambda: (True, "")),
                *fastpath_metrics(FakeIntake()),
                *view_metrics(AgentView("vm1", 1.0, 2.0, {"c1": 1}, (MemberView(
                    "web", "m1", True, 1, 1, True, "198.18.0.100/24", True),))),
                *OverloadCollector(SimpleNamespace(
                    overload=LoopLag(threshold=0.05, hold=1.0),
                    agent_api=SimpleNamespace(superseded=0,
                                              registrations_refused=0))).collect()]
    names = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    live = CoordinatorMetrics()
    reg: CollectorRegistry = live.registry
    for f in reg.collect():
        names.add(f.name + ("_total" if f.type == "counter" else ""))
    names.add("vnfha_agent_vip_claim_seconds")  # agents/metrics.py AgentMetrics
    return names


def test_every_exported_metric_is_documented_and_every_documented_one_exists():
    names = exported()
    assert names - DOCUMENTED == set(), "exported but not in docs/metrics.md"
    assert DOCUMENTED - names - BACKEND_ONLY == set(), "documented but never exported"


def test_the_dashboard_queries_documented_metrics_only():
    dash = json.loads((ROOT / "docs" / "grafana" / "vnfha.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dash["annotations"]["list"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", m)
            for e in exprs for m in re.findall(r"vnfha_[a-z_]+", e)}
    assert used and used - DOCUMENTED == set()
    # The failover timeline: roles per member, epoch, failovers, durations.
    assert {"vnfha_member_role", "vnfha_group_epoch", "vnfha_failovers_total",
            "vnfha_failover_commit_seconds"} <= used
