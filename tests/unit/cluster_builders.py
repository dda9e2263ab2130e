"""Builders for cluster states used by the unit tests (pure; no store, no clock).

States are built through the real command path (`apply`), so a builder can only
produce states the state machine itself can reach.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import Command
from vnfha.coordinator.model import ClusterState, Health
from vnfha.coordinator.state_machine import apply

GROUP = "g"
# (member, node, priority): three members of one group, one per node.
THREE = (("a", "n1", 100), ("b", "n2", 90), ("c", "n3", 80))


def run(state: ClusterState, *cmds: Command) -> ClusterState:
    """Apply every command; each must be accepted."""
    for cmd in cmds:
        state, result = apply(state, cmd)
        assert result["ok"], (cmd, result)
    return state


def build(members: Iterable[tuple[str, str, int]] = THREE, group: str = GROUP,
          health: Health | None = Health.HEALTHY, active: str | None = None,
          state: ClusterState | None = None, failsafe_port: int = 0) -> ClusterState:
    """A group with `members` (name, node, priority), each set to `health`
    (None: left UNKNOWN), and optionally `active` promoted at epoch 0 -> 1. With
    `failsafe_port`, every node registers a failsafe listener on that port."""
    members = list(members)
    st = run(state or ClusterState(), C.apply_groups([{"name": group, "vip": "198.18.0.10/24"}]))
    by_node: dict[str, list[dict]] = defaultdict(list)
    for name, node, prio in members:
        by_node[node].append({"group": group, "member": name, "priority": prio})
    for i, (node, specs) in enumerate(sorted(by_node.items())):
        existing = [{"group": m.group, "member": m.name, "priority": m.priority}
                    for m in st.members_on(node)]
        endpoint = f"198.18.1.{i + 1}:{failsafe_port}" if failsafe_port else ""
        st = run(st, C.register_node(node, f"198.18.1.{i + 1}", existing + specs,
                                     failsafe_endpoint=endpoint))
    if health is not None:
        for name, _node, _prio in members:
            st = run(st, C.set_health(group, name, health))
    if active is not None:
        st = run(st, C.promote(group, active, st.groups[group].epoch, reason="test"))
    return st
