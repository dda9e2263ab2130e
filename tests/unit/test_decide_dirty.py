"""decide driven by changes (decide_dirty.DirtyTracker) proposes exactly what a full
sweep proposes. Property test over seeded random scenarios on a fake clock: the real
lease table records keepalives, nodes fall silent and come back, members flap, nodes
enter maintenance, operators switch over, leadership moves; at every round the
incremental decide and the full decide must return the same commands."""

from __future__ import annotations

import random

import pytest
from cluster_builders import build, run

from vnfha.coordinator import commands as C
from vnfha.coordinator.commands import new_rid
from vnfha.coordinator.control import entries
from vnfha.coordinator.decide import Policy, decide
from vnfha.coordinator.decide_dirty import DirtyTracker
from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import ClusterState, Health
from vnfha.coordinator.state_machine import apply

TTL = 1.0
POLICY = Policy(ttl=TTL, stabilization=2.5, recover_without_lb=True)
NODES = [f"n{i}" for i in range(1, 7)]


def comparable(cmds: list[dict]) -> list[dict]:
    def strip(c: dict) -> dict:
        out = {k: v for k, v in c.items() if k not in ("rid", "at")}
        if "items" in out:
            out["items"] = [strip(i) for i in out["items"]]
        return out
    return [strip(c) for c in cmds]


def random_state(rng: random.Random, failsafe: bool = False) -> ClusterState:
    """Ten active/standby groups and two pools on six nodes. With `failsafe`, failsafe
    mode is on and every node has a failsafe listener, so decide's rule 9 applies."""
    port = 7701 if failsafe else 0
    st = run(ClusterState(), C.set_failsafe(1000 if failsafe else 0))
    for gi in range(10):
        members = [(f"m{j}", node, rng.choice((50, 80, 100)))
                   for j, node in enumerate(rng.sample(NODES, rng.randint(2, 3)))]
        st = build(members, group=f"g{gi}", state=st,
                   health=rng.choice((Health.HEALTHY, None)),
                   active=None, failsafe_port=port)
    # Two active-active groups (always decided: the tracker never skips them).
    st = run(st, C.apply_groups([{"name": "pool1", "mode": "active-active"},
                                 {"name": "pool2", "mode": "active-active"}]))
    for gname in ("pool1", "pool2"):
        for j, node in enumerate(rng.sample(NODES, 2)):
            have = [{"group": m.group, "member": m.name, "priority": m.priority}
                    for m in st.members_on(node)]
            endpoint = st.nodes[node].failsafe_endpoint if node in st.nodes else ""
            st = run(st, C.register_node(node, "198.18.1.1",
                                         [*have, {"group": gname, "member": f"p{j}"}],
                                         failsafe_endpoint=endpoint))
    return st


class World:
    def __init__(self, seed: int, failsafe: bool = False) -> None:
        self.rng = random.Random(seed)
        self.state = random_state(self.rng, failsafe)
        self.now = 100.0
        self.leader_since = self.now
        self.leases = LeaseTable(started_at=0.0, ttl=TTL)
        self.alive = set(NODES)
        self.health = {(g.name, m.name): Health.HEALTHY for g in self.state.groups.values()
                       for m in g.members.values()}
        self.quorum_expired: frozenset[str] | None = frozenset()

    def keepalives(self) -> None:
        for node in sorted(self.alive):
            if self.rng.random() < 0.2:
                continue  # this one is late
            reports = []
            for m in self.state.members_on(node):
                g = self.state.groups[m.group]
                synced = self.rng.random() < 0.9
                reports.append(Report(m.group, m.name, self.health[(m.group, m.name)],
                                      g.epoch if synced else max(0, g.epoch - 1),
                                      g.epoch if synced and g.active == m.name else 0))
            self.leases.record(node, reports, self.now)

    def perturb(self) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.15 and self.alive:
            self.alive.discard(rng.choice(sorted(self.alive)))
        elif r < 0.35:
            self.alive.add(rng.choice(NODES))
        elif r < 0.55:
            key = rng.choice(sorted(self.health))
            self.health[key] = rng.choice((Health.HEALTHY, Health.UNHEALTHY))
        elif r < 0.62:
            node = rng.choice(NODES)
            if node in self.state.nodes:
                self.commit(C.set_maintenance(node, not self.state.nodes[node].maintenance))
        elif r < 0.70:
            g = rng.choice([g for g in sorted(self.state.groups) if g.startswith("g")])
            self.commit(C.switchover(g, None))
        elif r < 0.74:
            self.leader_since = self.now  # leadership moved: no arrival times
            self.leases = LeaseTable(started_at=self.now, ttl=TTL)
        if rng.random() < 0.3:
            stale = [n for n in NODES if n not in self.alive]
            self.quorum_expired = frozenset(rng.sample(stale, rng.randint(0, len(stale))))

    def commit(self, cmd: dict) -> None:
        self.state, _ = apply(self.state, cmd)  # refusals are fine: operators err too


@pytest.mark.parametrize("failsafe", [False, True], ids=["failsafe-off", "failsafe-on"])
@pytest.mark.parametrize("seed", range(30))
def test_incremental_decide_proposes_what_a_full_sweep_proposes(seed, failsafe):
    """With failsafe on, rule 9 waits on inputs that move without a report changing
    (another member heard after the active's lease ended, the rejoin grace running
    out): the tracker must not let such a wait outlast the condition by a full sweep."""
    w = World(seed, failsafe)
    tracker = DirtyTracker(full_every=10_000)  # only the forced sweeps: test the increments
    partial_rounds = proposals = 0
    for _ in range(120):
        w.now += w.rng.choice((0.02, 0.05, 0.3, TTL / 2, TTL + 0.05, 1.3))
        w.perturb()
        w.keepalives()
        obs = w.leases.observations(w.leader_since, w.quorum_expired)
        full = decide(w.state, obs, w.now, POLICY, ids=new_rid, at=0.0)
        groups = tracker.groups(w.state, obs, w.now, POLICY)
        incremental = decide(w.state, obs, w.now, POLICY, groups=groups, ids=new_rid, at=0.0)
        assert comparable(incremental) == comparable(full), (seed, groups)
        if groups is not None and len(groups) < len(w.state.groups):
            partial_rounds += 1
        proposals += len(full)
        for entry in entries(full):
            w.state, result = apply(w.state, entry)
            assert result["ok"], result
    # The scenario did exercise the increments and the rules.
    assert partial_rounds > 30 and proposals > 10, (partial_rounds, proposals)


def test_a_quiet_round_decides_no_group_and_a_keepalive_change_only_its_groups():
    st = ClusterState()
    for i in range(50):
        st = build((("a", f"h{i % 5}", 100), ("b", f"s{i % 5}", 90)), group=f"g{i:02d}",
                   active="a", state=st)
    leases = LeaseTable(started_at=0.0, ttl=TTL)
    tracker = DirtyTracker(full_every=1000)
    now = 10.0

    def keepalive(node: str, health: Health = Health.HEALTHY) -> None:
        leases.record(node, [Report(m.group, m.name, health, st.groups[m.group].epoch,
                                    st.groups[m.group].epoch
                                    if st.groups[m.group].active == m.name else 0)
                             for m in st.members_on(node)], now)

    for node in sorted(st.nodes):
        keepalive(node)
    obs = leases.observations(0.0, None)
    assert tracker.groups(st, obs, now, POLICY) is None  # the first round is a full sweep
    now += 0.05
    for node in sorted(st.nodes):
        keepalive(node)
    assert tracker.groups(st, leases.observations(0.0, None), now, POLICY) == frozenset()
    now += 0.05
    for node in sorted(st.nodes):
        keepalive(node, Health.UNHEALTHY if node == "s3" else Health.HEALTHY)
    got = tracker.groups(st, leases.observations(0.0, None), now, POLICY)
    assert got == {f"g{i:02d}" for i in range(50) if i % 5 == 3}


def test_pause_and_resume_sweep_every_group():
    """A resume changes no group object, yet every group must be decided again (a lost
    active kept while paused is replaced at once, not at the next periodic sweep)."""
    st = ClusterState()
    for i in range(5):
        st = build((("a", f"h{i}", 100), ("b", f"s{i}", 90)), group=f"g{i}", active="a",
                   state=st)
    leases = LeaseTable(started_at=0.0, ttl=TTL)
    tracker = DirtyTracker(full_every=1000)
    now = 10.0
    for node in sorted(st.nodes):
        leases.record(node, [], now)
    assert tracker.groups(st, leases.observations(0.0, None), now, POLICY) is None
    assert tracker.groups(st, leases.observations(0.0, None), now, POLICY) == frozenset()
    for on in (True, False):
        st = run(st, C.set_paused(on))
        assert tracker.groups(st, leases.observations(0.0, None), now, POLICY) is None
        assert tracker.groups(st, leases.observations(0.0, None), now, POLICY) == frozenset()


def test_a_lost_active_is_replaced_as_soon_as_its_standby_vouches_not_at_the_next_sweep():
    """Rule 9 (failsafe on) holds back a lost active's replacement while the standby's
    last keepalive is within one TTL of the active's (they may have gone dark together).
    The standby's next keepalive repeats the same report, so no version moves; on the
    old tracker the group then waited for the periodic full sweep (1 s at the defaults:
    the LB pair's crash failover in tests/e2e/test_netns_lb.py took that much longer)."""
    ttl = 0.25
    policy = Policy(ttl=ttl, stabilization=2.5)
    st = run(ClusterState(), C.set_failsafe(1000))
    st = build((("a", "n1", 100), ("b", "n2", 90)), group="lb", active="a", state=st,
               failsafe_port=7701)
    leases = LeaseTable(started_at=0.0, ttl=ttl)
    tracker = DirtyTracker(full_every=1000)

    def keepalive(node: str, now: float) -> None:
        leases.record(node, [Report(m.group, m.name, Health.HEALTHY, 1,
                                    1 if st.groups["lb"].active == m.name else 0,
                                    generation=1, leased=True)
                             for m in st.members_on(node)], now)

    for i in range(84):  # both heard for five seconds: far past the rejoin grace
        now = 100.0 + 0.06 * i
        keepalive("n1", now)
        keepalive("n2", now)
        tracker.groups(st, leases.observations(0.0, frozenset()), now, policy)
    keepalive("n1", 105.0)  # n1's last keepalive: its VM crashes right after
    keepalive("n2", 105.0)
    # At 105.26 a majority has declared n1 expired, and this round sees n1 leave the
    # fresh set; n2 was last heard at 105.2, within one TTL of n1's last: they may have
    # gone dark together, so rule 9 waits.
    keepalive("n2", 105.2)
    now = 105.26
    obs = leases.observations(0.0, frozenset({"n1"}))
    assert "lb" in (tracker.groups(st, obs, now, policy) or {"lb"})
    assert decide(st, obs, now, policy, ids=new_rid, at=0.0) == []  # rule 9 waits
    keepalive("n2", 105.27)  # the same report: heard after n1's lease surely ended
    now = 105.28
    obs = leases.observations(0.0, frozenset({"n1"}))
    full = decide(st, obs, now, policy, ids=new_rid, at=0.0)
    assert [c["op"] for c in entries(full)] == ["promote"]
    groups = tracker.groups(st, obs, now, policy)
    assert groups is not None and "lb" in groups  # decided this round, not in a second
    # A group none of whose members is heard is left to the fresh set (rule 9 keeps
    # it whatever the clock says), so a dark site does not make every round a sweep.
    now = 106.0
    obs = leases.observations(0.0, frozenset({"n1", "n2"}))
    tracker.groups(st, obs, now, policy)
    assert tracker.groups(st, obs, now + 0.05, policy) == frozenset()
