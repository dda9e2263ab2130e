"""A scripted world for `decide`: a fake clock, agents that send keepalives, a leader.

Tests read like scripts::

    sc = Scenario(build(active="a"))
    sc.advance(1.0)
    sc.keepalive("n2", "n3")          # n1 went silent
    assert sc.step() == []            # ...not yet
    sc.advance(TTL)
    sc.keepalive("n2", "n3")
    assert ops(sc.step()) == [("promote", "b", "replace=a")]

`step()` runs `decide`, applies every command it returned (each must be
accepted, in order) and then checks that `decide` is idempotent: called again with
the same observations at the same time, it proposes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from vnfha.coordinator.commands import Command, new_rid
from vnfha.coordinator.decide import MemberReport, NodeSeen, Observations, Policy, decide
from vnfha.coordinator.model import ClusterState, Health
from vnfha.coordinator.state_machine import apply

TTL = 3.0
STABILIZATION = 10.0
EPS = 1e-3
POLICY = Policy(ttl=TTL, stabilization=STABILIZATION)


@dataclass
class AgentView:
    """What one member's agent knows and says about it."""

    health: Health
    healthy_since: float | None
    seen_epoch: int = 0
    active_epoch: int = 0
    # Lease generation and whether a lease runs (0: an agent from before generations)
    generation: int = 0
    leased: bool = False


def summary(cmd: Command) -> tuple:
    """A short, comparable form of a command."""
    op = cmd["op"]
    if op == "promote":
        return ("promote", cmd["member"]) + (
            (f"replace={cmd['replace']}",) if cmd.get("replace") else ())
    if op == "demote":
        return ("demote", f"handover={cmd.get('handover_to')}",
                "quarantine" if cmd.get("quarantine") else "keep")
    if op == "set_health":
        return ("set_health", cmd["member"], cmd["health"])
    if op in ("confirm_release", "clear_quarantine"):
        return (op, cmd["member"])
    return (op,)


def ops(cmds: list[Command]) -> list[tuple]:
    return [summary(c) for c in cmds]


class Scenario:
    def __init__(self, state: ClusterState, now: float = 100.0, policy: Policy = POLICY) -> None:
        self.state = state
        self.now = now
        self.policy = policy
        self.leader_since = now
        self.last: dict[str, float] = {}  # node -> arrival of its latest keepalive (this leader)
        self.runs: dict[str, float] = {}  # node -> start of its unbroken run of keepalives
        self.agents: dict[tuple[str, str], AgentView] = {}
        for g in state.groups.values():
            for m in g.members.values():
                healthy = m.health == Health.HEALTHY
                self.agents[(g.name, m.name)] = AgentView(
                    health=m.health, healthy_since=now - 1000.0 if healthy else None,
                    seen_epoch=g.epoch, active_epoch=g.epoch if g.active == m.name else 0)
        self.history: list[Command] = []
        # Several coordinators: nodes a majority has not heard from for one TTL.
        self.quorum_expired: frozenset[str] | None = None

    # -- time and leadership --------------------------------------------------------------------

    def advance(self, dt: float) -> Scenario:
        assert dt >= 0
        self.now += dt
        return self

    def at(self, t: float) -> Scenario:
        assert t >= self.now
        self.now = t
        return self

    def new_leader(self) -> None:
        """Leadership moved: the new leader has no keepalive arrival times."""
        self.leader_since = self.now
        self.last = {}
        self.runs = {}

    # -- what agents do --------------------------------------------------------------------------

    def agent(self, member: str, group: str = "g") -> AgentView:
        return self.agents.setdefault(
            (group, member), AgentView(health=Health.UNKNOWN, healthy_since=None))

    def health(self, member: str, health: Health, group: str = "g") -> Scenario:
        """The member's checks now say `health` (reported with the next keepalive)."""
        a = self.agent(member, group)
        if health == Health.HEALTHY and a.health != Health.HEALTHY:
            a.healthy_since = self.now
        elif health != Health.HEALTHY:
            a.healthy_since = None
        a.health = health
        return self

    def keepalive(self, *nodes: str, sync: bool = True) -> Scenario:
        """Each node's agent sends a keepalive, arriving now. With `sync` it has first
        processed the latest committed state: it reports that epoch as seen, and holds
        the active role only if the state says it is active."""
        for node in nodes:
            assert node in self.state.nodes, node
            if node not in self.last or self.now - self.last[node] > self.policy.ttl:
                self.runs[node] = self.now
            self.last[node] = self.now
            if sync:
                for m in self.state.members_on(node):
                    g = self.state.groups[m.group]
                    a = self.agent(m.name, m.group)
                    a.seen_epoch = g.epoch
                    a.active_epoch = g.epoch if g.active == m.name else 0
        return self

    def keepalive_all(self, sync: bool = True) -> Scenario:
        return self.keepalive(*sorted(self.state.nodes), sync=sync)

    # -- the leader ---------------------------------------------------------------------------

    def observations(self) -> Observations:
        nodes = {}
        for node, last in self.last.items():
            reports = {}
            for m in self.state.members_on(node):
                a = self.agent(m.name, m.group)
                reports[(m.group, m.name)] = MemberReport(
                    health=a.health, seen_epoch=a.seen_epoch, active_epoch=a.active_epoch,
                    healthy_since=a.healthy_since, generation=a.generation, leased=a.leased)
            nodes[node] = NodeSeen(last_keepalive=last, members=reports,
                                   heard_since=self.runs.get(node))
        return Observations(leader_since=self.leader_since, nodes=nodes,
                            quorum_expired=self.quorum_expired)

    def decide(self) -> list[Command]:
        return decide(self.state, self.observations(), self.now, self.policy, ids=new_rid, at=0.0)

    def submit(self, cmd: Command) -> dict:
        """An admin command (switchover, maintenance): must be accepted."""
        self.state, result = apply(self.state, cmd)
        assert result["ok"], (cmd, result)
        return result

    def step(self) -> list[Command]:
        obs = self.observations()
        cmds = decide(self.state, obs, self.now, self.policy, ids=new_rid, at=0.0)
        for cmd in cmds:
            self.state, result = apply(self.state, cmd)
            assert result["ok"], (cmd, result)
        again = decide(self.state, obs, self.now, self.policy, ids=new_rid, at=0.0)
        assert again == [], f"decide is not idempotent: then {ops(cmds)}, now {ops(again)}"
        self.history.extend(cmds)
        return cmds

    # -- reading the state -----------------------------------------------------------------------

    def group(self, name: str = "g"):
        return self.state.groups[name]

    def member(self, name: str, group: str = "g"):
        m = self.state.member(group, name)
        assert m is not None
        return m
