"""The node index (model.node_index / advance_index): what each node hosts, kept per
state, and which nodes a commit affects. Checked against brute force over random
command sequences."""

from __future__ import annotations

import random

import pytest
from cluster_builders import build

from vnfha.coordinator import commands as C
from vnfha.coordinator.model import ClusterState, Health, advance_index, node_index
from vnfha.coordinator.service.agent import assignments_for
from vnfha.coordinator.state_machine import apply


def scan(state: ClusterState) -> dict[str, frozenset[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for g in state.groups.values():
        for m in g.members.values():
            out.setdefault(m.node, set()).add((g.name, m.name))
    return {n: frozenset(p) for n, p in out.items()}


def random_command(rng: random.Random, st: ClusterState) -> dict:
    gname = rng.choice(sorted(st.groups))
    g = st.groups[gname]
    member = rng.choice(sorted(g.members)) if g.members else "x"
    kind = rng.randrange(7)
    if kind == 0:
        return C.set_health(gname, member, rng.choice(list(Health)))
    if kind == 1:
        return C.promote(gname, member, g.epoch, reason="r")
    if kind == 2:
        return C.demote(gname, g.epoch, reason="r")
    if kind == 3 and g.releasing:
        return C.confirm_release(gname, g.releasing, g.epoch, reason="r")
    if kind == 4:  # a node takes on (or gives up) a member
        node = rng.choice(["n1", "n2", "n3", "n4", "n5"])
        have = [{"group": m.group, "member": m.name, "priority": m.priority}
                for m in st.members_on(node)]
        if have and rng.random() < 0.5:
            have.pop(rng.randrange(len(have)))
        else:
            have.append({"group": gname, "member": f"m{rng.randrange(40)}", "priority": 50})
        return C.register_node(node, "198.18.1.9", have, remove_undeclared=True)
    if kind == 5:
        return C.apply_groups([{"name": gname, "vip": rng.choice(["", "198.18.0.20/24"])}])
    return C.apply_groups([{"name": f"h{rng.randrange(5)}"}])


@pytest.mark.parametrize("seed", range(20))
def test_the_index_and_the_affected_nodes_match_brute_force(seed):
    rng = random.Random(seed)
    st = build()
    st = build((("x", "n4", 100), ("y", "n5", 90)), group="g2", state=st, active="x")
    node_index(st)
    applied = 0
    for _ in range(150):
        new, result = apply(st, random_command(rng, st))
        if not result["ok"]:
            continue
        applied += 1
        affected = advance_index(st, new)
        assert node_index(new) == scan(new)
        nodes = set(scan(st)) | set(scan(new))
        expected = {n for n in nodes if assignments_for(st, n) != assignments_for(new, n)}
        # Exactly the nodes whose watch would send something, plus (harmlessly) none:
        # a superset would wake streams for nothing, a subset would lose an update.
        assert affected == expected, (seed, new.events[-1:])
        st = new
    assert applied > 50


def test_a_health_change_affects_nobody_and_a_promotion_only_its_groups_nodes():
    st = build()
    st = build((("x", "n4", 100), ("y", "n5", 90)), group="g2", state=st)
    new, _ = apply(st, C.set_health("g", "a", Health.UNHEALTHY))
    assert advance_index(st, new) == frozenset()
    st = new
    new, _ = apply(st, C.promote("g2", "x", 0, reason="r"))
    assert advance_index(st, new) == {"n4", "n5"}


def test_members_on_reads_the_index_in_name_order():
    st = build((("b", "n1", 100), ("a", "n1", 90), ("c", "n2", 80)))
    assert [m.name for m in st.members_on("n1")] == ["a", "b"]
    assert st.members_on("nobody") == []
