"""A deterministic simulated cluster that runs the real cores.

What is real: the agent's role rule and its effects (agents/core.py), its quorum
lease (agents/lease.py), each coordinator's lease table (coordinator/leases.py),
the leader round with the majority-confirmed expiry rule and `decide`
(coordinator/core.py, expiry.py, decide.py) and the replicated state machine
(state_machine.StateMachine, one replica per coordinator, fed one committed log).

What is simulated, and how (each a deliberate simplification, docs/design.md §3):

* time: one real-time axis `t`; every process reads its own monotonic clock,
  ``offset + rate * t`` with ``|rate - 1| <= drift / 2`` (so any two clocks differ in
  rate by at most the configured drift), and sets its timers in that clock;
* the network: one ordered connection per (sender, receiver), like a gRPC channel
  over TCP: per message a seeded delay, never overtaking the one before; a cut
  link (partition) stalls its messages, which arrive in order after the heal, as
  TCP retransmits them; keepalives and acks may also be lost or doubled (a broken
  stream; the client's queue keeps only the newest rounds). Watch snapshots are
  never lost on a live connection; a restarted end loses what was in flight, and
  watches re-send their snapshot every `watch_resend` (a reconnect). Any message
  may be held back and delivered late on purpose;
* processes: pause (SIGSTOP-like: timers and messages wait, in order, and run on
  resume), crash (timers and in-flight messages to it are lost), restart (an agent
  starts with no role and no lease; a coordinator replays its durable log and
  counts every node as heard when it starts serving, as the product does);
* Raft, abstractly: one committed log; a leader commits only while it reaches a
  majority of the members; followers it reaches catch up every Raft tick; when the
  leader is down, paused or cut off from a majority for an election timeout, a
  coordinator that reaches a majority is elected (seeded choice) and has the whole
  log. A deposed leader may go on believing it leads; its commits are refused;
* lease-age queries between coordinators are answered at the moment they are asked
  (no RPC latency; a paused, crashed or cut-off peer does not answer);
* an agent's VIP is live while the agent's role is active *and* its own clock is
  before the lease deadline: that is what the guardian and the kernel lease enforce
  when the agent itself is frozen (agents/guardian.py, agents/kernellease.py). With
  failsafe on, the deadline is the later of the quorum lease and the group's failsafe
  grants (what agents/failsafe_peer.py gives the guardian, per group: the product
  takes the earliest over the held groups, which is stricter);
* failsafe (docs/design.md "Failsafe"; `World(failsafe=SECONDS)` commits the setting
  at start): the real grant rule, promises and grants (agents/failsafe.py); requests
  and answers are agent-to-agent messages on their own connections, so partitions
  stall them and loss drops them like keepalives; the caller's node is the sending
  process (what the mTLS certificate says in the product); a request that gets no
  answer simply counts nothing (the product's timeout); the requester asks every
  quarter interval while a grant is due and wakes exactly when the earliest grant
  ends, as agents/failsafe_peer.py does.

The checker runs after every event: never two live VIP holders of a group at one
instant of real time, and no replica's epoch and no agent's seen epoch ever
decreases. A holder can only appear at an event (between events leases only run
out), so checking after each event checks every instant. Two holders where one acts
on an assignment from before its own lease lapsed are a violation that names it (the
gap of docs/design.md §3 that lease generations closed).
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from vnfha.agents import core as agent_core
from vnfha.agents import failsafe as fs
from vnfha.agents.core import AssignmentView, MemberRole
from vnfha.agents.lease import QuorumLease
from vnfha.coordinator import commands as C
from vnfha.coordinator import core as coord_core
from vnfha.coordinator.control import entries
from vnfha.coordinator.leases import LeaseTable, Report
from vnfha.coordinator.model import ClusterState, Health
from vnfha.coordinator.observations import Policy
from vnfha.coordinator.state_machine import StateMachine


@contextlib.contextmanager
def _quiet_cores() -> Iterator[None]:
    """While a world runs: the cores log every applied command and role change, and
    thousands of schedules would spend their time formatting records nobody reads. Only
    for the run, so tests collected beside these still see the product's INFO events."""
    logger = logging.getLogger("vnfha")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class Params:
    ttl: float = 1.0  # agents' and coordinators' lease TTL
    interval: float = 0.2  # keepalive interval (<= ttl/3)
    decide: float = 0.1  # leader round interval (<= ttl/3)
    drift: float = 0.01  # the agents' configured clock-rate bound (rho)
    margin: float = 0.05  # the agents' margin to take a VIP down
    stabilization: float = 3.0
    election: float = 0.5  # Raft election timeout
    raft_tick: float = 0.05  # followers catch up, elections are checked, this often
    delay: tuple[float, float] = (0.001, 0.010)  # one-way network delay
    commit: tuple[float, float] = (0.002, 0.008)  # propose -> committed
    watch_resend: float = 0.5  # a watch stream re-sends its snapshot (a reconnect)


class Violation(AssertionError):
    """A safety property failed; the message names it and the instant."""


# (time, sequence, action, owner process or None, owner's incarnation when scheduled)
_Event = tuple[float, int, Callable[[], None], "str | None", int]


@dataclass
class _Msg:
    seq: int
    src: str
    dst: str
    kind: str
    payload: Any
    src_inc: int
    dst_inc: int


@dataclass
class _Proc:
    name: str
    rate: float
    offset: float
    up: bool = True
    paused: bool = False
    inc: int = 0  # incarnation: bumped by a crash, so its timers and messages die
    backlog: list[_Event] = field(default_factory=list)


# -- the network -------------------------------------------------------------------------------


@dataclass
class Net:
    drop: float = 0.0
    dup: float = 0.0
    cut: set[tuple[str, str]] = field(default_factory=set)
    # (src, dst, kind) -> how many more messages to hold back; held messages wait here
    hold_rules: dict[tuple[str, str, str], int] = field(default_factory=dict)
    held: list[tuple[str, str, str, Any]] = field(default_factory=list)

    def reaches(self, a: str, b: str) -> bool:
        return (a, b) not in self.cut and (b, a) not in self.cut


# -- the world ---------------------------------------------------------------------------------



def _between(sides: list[list[str]]) -> set[tuple[str, str]]:
    """Every directed link between two processes on different sides."""
    return {(a, b) for i, a_side in enumerate(sides) for j, b_side in enumerate(sides)
            if i != j for a in a_side for b in b_side}

class World:
    def __init__(self, seed: int, coordinators: list[str],
                 agents: dict[str, list[tuple[str, str, int]]],
                 lists: dict[str, list[str]] | None = None, params: Params | None = None,
                 rates: dict[str, float] | None = None, vip: str = "198.18.0.10/24",
                 first_leader: str | None = None, failsafe: float = 0.0) -> None:
        self.p = params or Params()
        self.failsafe = failsafe  # failsafe lease, seconds (0: off), committed at start
        self.rng = random.Random(seed)
        self.t = 0.0
        self._q: list[_Event] = []
        self._seq = 0
        self.net = Net()
        self._stalled: list[_Msg] = []  # sent into a cut link: wait for the heal
        self._link_free: dict[tuple[str, str], float] = {}  # per link: FIFO delivery
        self.trace: list[str] = []
        self.procs: dict[str, _Proc] = {}
        for name in [*coordinators, *agents]:
            rate = (rates or {}).get(name)
            if rate is None:
                rate = 1 + self.rng.uniform(-self.p.drift / 2, self.p.drift / 2)
            self.procs[name] = _Proc(name, rate, self.rng.uniform(100.0, 10_000.0))
        self.members = list(coordinators)  # the Raft configuration
        self.log: list[dict[str, Any]] = []
        # One StateMachine runs the log; replicas differ only in how far they applied,
        # so the state after k entries is computed once (index k of `_states`).
        self._machine = StateMachine()
        if failsafe <= 0:
            # A new cluster starts with failsafe on (model.new_cluster_state); a world
            # without `failsafe=` models one where an operator turned it off, so the
            # scenarios of the other clauses keep their meaning (no grants, no rule 9).
            self._machine.state = replace(self._machine.state, failsafe_lease_ms=0)
        self._states: list[ClusterState] = [self._machine.state]
        self._results: list[dict[str, Any]] = []
        self.dirty = False  # an agent claimed, renewed or resumed: check holders
        groups = sorted({g for ms in agents.values() for g, _m, _p in ms})
        self.log.append(C.apply_groups([{"name": g, "vip": vip} for g in groups],
                                       rid="setup-groups", at=0.0))
        for node, ms in sorted(agents.items()):
            self.log.append(C.register_node(
                node, "", [{"group": g, "member": m, "priority": p} for g, m, p in ms],
                rid=f"setup-{node}", at=0.0,
                # Every simulated agent serves failsafe requests when failsafe is on (the
                # product's agents do with mTLS; decide's rule 9 counts on the listener).
                failsafe_endpoint=f"{node}:7701" if failsafe > 0 else ""))
        if failsafe > 0:
            self.log.append(C.set_failsafe(int(failsafe * 1000), rid="setup-failsafe", at=0.0))
        self.violations: list[str] = []
        self._generations = 0
        self._max_epoch: dict[tuple[str, str], int] = {}  # (coordinator, group) -> epoch
        self.leader: str | None = None
        self.term = 0
        self._leaderless_since = -self.p.election  # the first tick elects a leader
        self._first_leader = first_leader  # a scenario may name it; else a seeded choice
        self.agents = {n: Agent(self, n, ms, (lists or {}).get(n, list(coordinators)))
                       for n, ms in agents.items()}
        self.coords = {c: Coordinator(self, c, list(coordinators), len(self.log))
                       for c in coordinators}
        self._raft_tick()

    # -- time and events ---------------------------------------------------------------

    def local(self, name: str, t: float | None = None) -> float:
        p = self.procs[name]
        return p.offset + p.rate * (self.t if t is None else t)

    def real(self, name: str, local: float) -> float:
        p = self.procs[name]
        return (local - p.offset) / p.rate

    def at(self, t: float, fn: Callable[[], None], owner: str | None = None) -> None:
        self._seq += 1
        inc = self.procs[owner].inc if owner is not None else 0
        heapq.heappush(self._q, (max(t, self.t), self._seq, fn, owner, inc))

    def at_local(self, owner: str, local: float, fn: Callable[[], None]) -> None:
        self.at(self.real(owner, local), fn, owner)

    def note(self, text: str, significant: bool = True) -> None:
        if significant:
            self.trace.append(f"{self.t:7.3f} {text}")

    def run_until(self, end: float) -> None:
        with _quiet_cores():
            self._run_until(end)

    def _run_until(self, end: float) -> None:
        q, procs = self._q, self.procs
        while q and q[0][0] <= end:
            ev = heapq.heappop(q)
            self.t = ev[0]
            owner = ev[3]
            if owner is not None:
                p = procs[owner]
                if not p.up or p.inc != ev[4]:
                    continue
                if p.paused:
                    p.backlog.append(ev)
                    continue
            ev[2]()
            if self.dirty:  # only an agent's claim or renewal can make a second holder
                self.dirty = False
                self.check()
        self.t = max(self.t, end)

    def run_for(self, dt: float) -> None:
        self.run_until(self.t + dt)

    # -- the network -------------------------------------------------------------------

    def send(self, src: str, dst: str, kind: str, payload: Any) -> None:
        """One message on the (src, dst) connection: in order, after a delay; while the
        link is cut it waits (TCP retransmits) and arrives after the heal, in order.
        Keepalives and acks may also be lost or doubled (a broken stream, a round the
        client's queue replaced); watch snapshots are not (see the module doc)."""
        key = (src, dst, kind)
        if self.net.hold_rules.get(key, 0) > 0:
            self.net.hold_rules[key] -= 1
            self.net.held.append((src, dst, kind, payload))
            self.note(f"net holds {kind} {src}->{dst}")
            return
        lossy = kind != "watch"
        if lossy and self.net.drop and self.rng.random() < self.net.drop:
            return
        copies = 2 if lossy and self.net.dup and self.rng.random() < self.net.dup else 1
        for _ in range(copies):
            self._seq += 1
            self._transmit(_Msg(self._seq, src, dst, kind, payload,
                                self.procs[src].inc, self.procs[dst].inc))

    def _transmit(self, m: _Msg) -> None:
        if (m.src, m.dst) in self.net.cut:
            self._stalled.append(m)
            return
        link = (m.src, m.dst)
        when = max(self.t + self.rng.uniform(*self.p.delay), self._link_free.get(link, 0.0))
        self._link_free[link] = when

        def arrive() -> None:
            if (m.src, m.dst) in self.net.cut:  # cut while in flight: waits for the heal
                self._stalled.append(m)
                return
            if self.procs[m.src].inc != m.src_inc:  # the sender died: connection gone
                return
            target = self.coords.get(m.dst) or self.agents[m.dst]
            target.receive(m.src, m.kind, m.payload)

        self._seq += 1
        heapq.heappush(self._q, (when, self._seq, arrive, m.dst, m.dst_inc))

    def release_held(self) -> None:
        """Deliver every held message now: it was already past any cut (in a queue on
        the way), so it arrives even if its link is cut at the moment."""
        held, self.net.held = self.net.held, []
        for src, dst, kind, payload in held:
            self.note(f"net delivers held {kind} {src}->{dst}")
            target = self.coords.get(dst) or self.agents[dst]
            self.at(self.t, lambda t=target, s=src, k=kind, p=payload: t.receive(s, k, p),
                    owner=dst)

    def partition(self, sides: list[list[str]]) -> None:
        """Cut every link between different sides (a process on no side keeps its links)."""
        self.net.cut |= _between(sides)
        self.note("partition " + " | ".join(",".join(s) for s in sides))

    def heal(self, sides: list[list[str]] | None = None) -> None:
        """Restore every link, or with `sides` only those between different sides."""
        if sides is None:
            self.note("heal")
            self.uncut(set(self.net.cut))
            return
        self.note("heal " + " | ".join(",".join(s) for s in sides))
        self.uncut(_between(sides) & self.net.cut)

    def cut(self, links: set[tuple[str, str]]) -> None:
        self.net.cut |= links

    def uncut(self, links: set[tuple[str, str]]) -> None:
        """Restore links; what waited on them goes now, in the order it was sent, on
        connections whose ends did not restart meanwhile."""
        self.net.cut -= links
        stalled = sorted(self._stalled, key=lambda m: m.seq)
        self._stalled = [m for m in stalled if (m.src, m.dst) in self.net.cut]
        for m in stalled:
            if (m.src, m.dst) in self.net.cut:
                continue
            if (self.procs[m.src].inc, self.procs[m.dst].inc) == (m.src_inc, m.dst_inc):
                self._transmit(m)

    # -- process faults ----------------------------------------------------------------

    def pause(self, name: str) -> None:
        self.procs[name].paused = True
        self.note(f"{name} paused")

    def resume(self, name: str) -> None:
        p = self.procs[name]
        p.paused = False
        backlog, p.backlog = p.backlog, []
        self.note(f"{name} resumed ({len(backlog)} events waited)")
        for ev in backlog:  # in their order, now
            self._seq += 1
            heapq.heappush(self._q, (self.t, self._seq, ev[2], ev[3], ev[4]))

    def crash(self, name: str) -> None:
        p = self.procs[name]
        p.up, p.paused, p.backlog = False, False, []
        p.inc += 1
        self.note(f"{name} crashed")
        if name in self.agents:
            self.agents[name].crashed()
        if self.leader == name:
            self._lose_leader()

    def restart(self, name: str) -> None:
        p = self.procs[name]
        if p.up:
            self.crash(name)
        p.up = True
        p.inc += 1
        self.note(f"{name} restarted")
        if name in self.coords:
            self.coords[name].start(self.coords[name].durable)
        else:
            self.agents[name].start()

    # -- Raft, abstractly --------------------------------------------------------------

    def state_at(self, k: int) -> ClusterState:
        while len(self._states) <= k:
            self._results.append(self._machine.apply(self.log[len(self._states) - 1]))
            self._states.append(self._machine.state)
        return self._states[k]

    def new_generation(self) -> int:
        """A lease generation: unique per world (the product draws 63 random bits); a
        counter keeps the seeded schedules independent of how many were drawn."""
        self._generations += 1
        return self._generations

    def quorum(self) -> int:
        return len(self.members) // 2 + 1

    def _alive(self, c: str) -> bool:
        p = self.procs[c]
        return p.up and not p.paused

    def reaches_majority(self, c: str) -> bool:
        if not self._alive(c):
            return False
        n = sum(1 for m in self.members if m == c or (self._alive(m) and self.net.reaches(c, m)))
        return n >= self.quorum()

    def _lose_leader(self) -> None:
        self.leader = None
        self._leaderless_since = self.t

    def _raft_tick(self) -> None:
        if self.leader is not None and not self.reaches_majority(self.leader):
            self._lose_leader()
        if self.leader is None and self.t - self._leaderless_since >= self.p.election:
            candidates = [c for c in self.members if self.reaches_majority(c)]
            if candidates:
                if self._first_leader in candidates:
                    self.leader = self._first_leader
                else:
                    self.leader = self.rng.choice(sorted(candidates))
                self._first_leader = None
                self.term += 1
                new = self.coords[self.leader]
                new.catch_up(len(self.log))
                new.leader_since = self.local(self.leader)
                self.note(f"{self.leader} elected leader (term {self.term})")
        for c in self.members:
            coord = self.coords[c]
            if not self._alive(c):
                continue
            if c != self.leader and coord.leader_since is not None and (
                    self.leader is not None and self.net.reaches(c, self.leader)):
                coord.leader_since = None  # a deposed leader hears of the new term
                self.note(f"{c} steps down", significant=False)
            if self.leader is not None and (c == self.leader or self.net.reaches(c, self.leader)):
                coord.catch_up(len(self.log))
        self.at(self.t + self.p.raft_tick, self._raft_tick)

    def propose(self, cid: str, cmds: list[dict[str, Any]]) -> None:
        """A leader's commit: lands after a delay if `cid` still leads a majority then."""
        inc = self.procs[cid].inc

        def commit() -> None:
            if self.leader != cid or self.procs[cid].inc != inc or not self.reaches_majority(cid):
                self.note(f"{cid} commit refused: not leading a majority", significant=False)
                return
            self.log.extend(cmds)
            for cmd, result in self.coords[cid].catch_up(len(self.log)):
                if result.get("ok"):
                    self.note(f"{cid} commits {_summary(cmd)}")
                else:
                    self.note(f"{cid} commit refused by the state machine: {_summary(cmd)}: "
                              f"{result.get('error')}", significant=False)

        self.at(self.t + self.rng.uniform(*self.p.commit), commit)

    def submit(self, cmd: dict[str, Any]) -> bool:
        """An operator's command (vnfha CLI), through the current leader."""
        if self.leader is None or not self.reaches_majority(self.leader):
            self.note(f"operator {cmd['op']} refused: no leader")
            return False
        self.propose(self.leader, [cmd])
        return True

    def grow(self, new: list[str]) -> None:
        """Add coordinators; every coordinator's config (and so its announced set and
        expiry quorum) becomes the new membership. Agents keep the lists they have."""
        for c in new:
            self.procs[c] = _Proc(c, 1 + self.rng.uniform(-self.p.drift / 2, self.p.drift / 2),
                                  self.rng.uniform(100.0, 10_000.0))
        self.members = [*self.members, *new]
        for c in new:
            self.coords[c] = Coordinator(self, c, list(self.members), 0)
        for coord in self.coords.values():
            coord.config = list(self.members)
        self.note(f"cluster grows to {','.join(self.members)}")

    # -- the checker -------------------------------------------------------------------

    def holders(self, group: str) -> list[str]:
        return sorted(n for n, a in self.agents.items() if a.holds(group))

    def check(self) -> None:
        groups = {g for a in self.agents.values() for g, _m in a.roles}
        for g in groups:
            holders = self.holders(g)
            if len(holders) > 1:
                what = f"two VIP holders of {g}: {', '.join(holders)}"
                stale = [n for n in holders if self.agents[n].stale_hold(g)]
                if stale:  # the gap lease generations closed (docs/design.md §3)
                    what += (f" ({','.join(stale)} acts on an assignment from before its "
                             "lease lapsed)")
                self.violate(what)

    def violate(self, what: str) -> None:
        if any(v.endswith(": " + what) for v in self.violations):
            return  # the first instant of each violation is enough
        text = f"VIOLATION at t={self.t:.3f}: {what}"
        self.violations.append(text)
        self.note(text)

    def applied(self, cid: str, group: str, epoch: int) -> None:
        key = (cid, group)
        if epoch < self._max_epoch.get(key, 0):
            self.violate(f"{cid}: epoch of {group} went back from {self._max_epoch[key]} "
                         f"to {epoch}")
        self._max_epoch[key] = max(epoch, self._max_epoch.get(key, 0))

    def summary(self) -> list[str]:
        """One line per group as the leader's replica has it, plus the live holders."""
        ref = self.coords[self.leader] if self.leader else None
        out = [f"leader: {self.leader or '-'} (term {self.term})"]
        deposed = sorted(c for c, x in self.coords.items()
                         if c != self.leader and x.leader_since is not None
                         and self.procs[c].up)
        if deposed:
            out.append(f"still believing they lead (commits refused): {','.join(deposed)}")
        groups = sorted({g for a in self.agents.values() for g, _m in a.roles})
        for g in groups:
            if ref is not None:
                grp = ref.state.groups[g]
                state = f"active={grp.active or '-'} epoch={grp.epoch}"
                if grp.releasing:
                    state += f" releasing={grp.releasing}"
            else:
                state = "no leader"
            out.append(f"{g}: {state} holders={','.join(self.holders(g)) or '-'}")
            for n, a in sorted(self.agents.items()):
                for (rg, m), r in sorted(a.roles.items()):
                    if rg == g and r.active_epoch:
                        inert = ((" (on failsafe leases)" if a.on_failsafe(g) else "")
                                 if a.holds(g) else " (lease over: VIP inert)")
                        out.append(f"  {n} acts as {g}/{m} at epoch {r.active_epoch}{inert}")
        return out

    def ages(self, node: str) -> list[str]:
        """How long each live coordinator has not heard `node` (its lease table)."""
        return [f"{c}: {x.leases.age(node, x.now()):.3f} s" for c, x in sorted(self.coords.items())
                if self.procs[c].up]


# -- a coordinator -----------------------------------------------------------------------------


def _summary(cmd: dict[str, Any]) -> str:
    op = cmd["op"]
    if op == "batch":
        return "; ".join(_summary(c) for c in cmd["items"])
    if op == "promote":
        return f"promote {cmd['group']}/{cmd['member']} at {cmd['expect_epoch']}" + (
            f" replacing {cmd['replace']}" if cmd.get("replace") else "") + (
            " (same epoch, new stamp)" if cmd.get("keep_epoch") else "")
    if op == "demote":
        return f"demote {cmd['group']} at {cmd['expect_epoch']}" + (
            f" handover to {cmd['handover_to']}" if cmd.get("handover_to") else "")
    if op == "set_health":
        return f"set_health {cmd['group']}/{cmd['member']} {cmd['health']}"
    if op in ("confirm_release", "clear_quarantine"):
        return f"{op} {cmd['group']}/{cmd['member']}"
    return op


class Coordinator:
    def __init__(self, w: World, cid: str, config: list[str], durable: int) -> None:
        self.w = w
        self.cid = cid
        self.config = config  # the ids it announces; its expiry quorum is their majority
        self.durable = 0  # log entries on its disk (applied entries: fsynced first)
        self._rids = 0
        self._expired_said: set[str] = set()
        self.start(durable)

    def now(self) -> float:
        return self.w.local(self.cid)

    def start(self, durable: int) -> None:
        self.applied = 0
        self.state = self.w.state_at(0)
        self.leader_since: float | None = None
        self.leases = LeaseTable(started_at=self.now(), ttl=self.w.p.ttl,
                                 known_nodes=lambda: self.state.nodes)
        self._sent: dict[str, tuple[Any, ...]] = {}
        self.catch_up(durable)
        self.w.at(self.w.t + self.w.p.decide, self._round, owner=self.cid)
        self.w.at(self.w.t + self.w.p.watch_resend, self._resend, owner=self.cid)

    def catch_up(self, upto: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Apply the committed log up to `upto`; the commands and their results."""
        if self.applied >= upto:
            return []
        before = self.state.revision
        first, self.applied = self.applied, upto
        self.state = self.w.state_at(upto)
        out = [(self.w.log[k], self.w._results[k]) for k in range(first, upto)]
        changed = self.state.revision != before
        for g in self.state.groups.values():  # what it serves (reads wait for replay)
            self.w.applied(self.cid, g.name, g.epoch)
        self.durable = max(self.durable, self.applied)
        if changed:
            self._push_watches(force=False)
        return out

    # -- agents' streams ---------------------------------------------------------------

    def receive(self, src: str, kind: str, payload: Any) -> None:
        if kind != "keepalive":
            return
        node, seq, reports = payload
        arrived = self.now()
        if node not in self.state.nodes:
            self.w.send(self.cid, src, "ack", (seq, self.cid, "unknown", tuple(self.config)))
            return
        self.leases.record(node, reports, arrived)
        self.w.send(self.cid, src, "ack", (seq, self.cid, "ack", tuple(self.config)))

    def _assignments(self, node: str) -> tuple[tuple[Any, ...], ...]:
        """Per hosted member: group, member, active, epoch, vip, stamp, and the failsafe
        part (lease in seconds, the group's active, the other members and their nodes),
        as coordinator/service/agent.py `assignments_for` sends them."""
        state = self.state
        lease = state.failsafe_lease_ms / 1000.0
        out = []
        for m in state.members_on(node):
            g = state.groups[m.group]
            active = g.active == m.name
            peers = tuple(sorted((p.name, p.node, p.name == g.active)
                                 for p in g.members.values() if p.name != m.name))
            out.append((m.group, m.name, active, g.epoch, g.vip,
                        g.active_generation if active else 0,
                        (lease, g.active or "", peers if lease else ())))
        return tuple(out)

    def _push_watches(self, force: bool) -> None:
        for node in self.w.agents:
            current = self._assignments(node)
            if force or self._sent.get(node) != current:
                self._sent[node] = current
                self.w.send(self.cid, node, "watch", (self.state.revision, current))

    def _resend(self) -> None:
        self._push_watches(force=True)
        self.w.at(self.w.t + self.w.p.watch_resend, self._resend, owner=self.cid)

    # -- the leader's round ------------------------------------------------------------

    def _ask(self, stale: list[str]) -> list[dict[str, float] | None]:
        out: list[dict[str, float] | None] = []
        for peer in self.config:
            if peer == self.cid:
                continue
            other = self.w.coords.get(peer)
            if other is None or not self.w._alive(peer) or not self.w.net.reaches(self.cid, peer):
                out.append(None)
            else:
                out.append(other.leases.ages(stale, other.now()))
        return out

    def _rid(self) -> str:
        self._rids += 1
        return f"{self.cid}-{self.w.procs[self.cid].inc}-{self._rids}"

    def _round(self) -> None:
        self.w.at(self.w.t + self.w.p.decide, self._round, owner=self.cid)
        if self.leader_since is None:
            return
        now = self.now()
        r = coord_core.leader_round(
            self.state, self.leases, Policy(self.w.p.ttl, self.w.p.stabilization), now,
            self.leader_since, len(self.config) // 2 + 1, self._ask, ids=self._rid,
            at=round(self.w.t, 3))
        for node in sorted(r.expired):
            if node not in self._expired_said:
                self.w.note(f"{self.cid} confirms {node} expired "
                            f"({r.votes[node]}/{len(self.config)} coordinators)")
        self._expired_said = set(r.expired)
        if r.commands:
            self.w.propose(self.cid, entries(r.commands))


# -- an agent ----------------------------------------------------------------------------------


class Agent:
    def __init__(self, w: World, node: str, members: list[tuple[str, str, int]],
                 listed: list[str]) -> None:
        self.w = w
        self.node = node
        self.keys = [(g, m) for g, m, _p in members]
        self.listed = listed
        self.unhealthy: set[tuple[str, str]] = set()
        self.roles: dict[tuple[str, str], MemberRole] = {k: MemberRole() for k in self.keys}
        self.start()

    def now(self) -> float:
        return self.w.local(self.node)

    def start(self) -> None:
        p = self.w.p
        self.lease = QuorumLease(coordinators=len(self.listed), ttl=p.ttl, drift=p.drift,
                                 margin=p.margin)
        self.roles = {k: MemberRole() for k in self.keys}
        self.generation = self.w.new_generation()  # drawn at process start, as the driver
        self.lapsed: dict[tuple[str, str], int] = {}  # epoch held when its lease lapsed
        self.stale: set[tuple[str, str]] = set()  # held on an assignment older than a lapse
        self._sent_at: dict[int, float] = {}  # the checker's own record of rounds and acks
        self._acks: dict[int, set[str]] = {}
        self.views: dict[tuple[str, str], AssignmentView] = {}
        self.revision = -1
        self.seq = 0
        self.next_tick = self.now()
        self._token = 0
        # Failsafe (agents/failsafe.py, the real rules; agents/failsafe_peer.py's loop):
        # promises are in memory, so a restarted agent claims nothing for one lease.
        self.fsviews: dict[str, fs.GroupView] = {}
        self.promises = fs.Promises(started=self.now())
        self.grants = fs.Grants(drift=self.w.p.drift, margin=self.w.p.margin)
        self._asked: dict[int, tuple[float, str, int, str, float]] = {}  # request id -> ...
        self._asks = 0
        self._engaged: set[str] = set()
        self._granting: dict[str, bool] = {}  # group -> last verdict (for the trace)
        self._fs_token = 0
        self._arm(self.now())
        if self.w.failsafe > 0:
            self._fs_loop()

    def crashed(self) -> None:
        """A killed agent's guardian drops its VIPs at once (the pipe closes)."""
        for k, r in self.roles.items():
            if r.active_epoch:
                self.w.note(f"{self.node} guardian drops {k[0]}/{k[1]} (agent gone)")
            r.active_epoch = 0

    def stale_hold(self, group: str) -> bool:
        """Holds a role of `group` on an assignment it had before its lease lapsed, under
        a lease that is itself justified: the gap lease generations closed, named apart
        in the violation as it points at the generation rule rather than the lease."""
        return any(k[0] == group for k in self.stale) and self.justified()

    def justified(self) -> bool:
        """The simulator's own check of the lease, from what it knows to be true: some
        round acknowledged by a majority of the cluster's actual members gives at least
        the deadline the agent holds."""
        deadline = self.lease.deadline()
        if deadline is None:
            return True
        p, members = self.w.p, set(self.w.members)
        need = len(members) // 2 + 1
        return any(len(acks & members) >= need
                   and self._sent_at[seq] + p.ttl * (1 - p.drift) - p.margin >= deadline - 1e-9
                   for seq, acks in self._acks.items() if seq in self._sent_at)

    def holds(self, group: str) -> bool:
        """The VIP is live: the role is held and the guardian's deadline (the quorum
        lease, or the later end of the group's failsafe grants) is not past."""
        if not self.w.procs[self.node].up:
            return False
        now = self.now()
        deadline = self.lease.deadline()
        held = [r.active_epoch for (g, _m), r in self.roles.items() if g == group
                and r.active_epoch]
        if not held:
            return False
        return (deadline is not None and now < deadline) or self._covered(group, held[0], now)

    def on_failsafe(self, group: str) -> bool:
        """Live only on failsafe grants (the quorum lease is over)."""
        return self.holds(group) and not self.lease.valid(self.now())

    def _covered(self, group: str, epoch: int, now: float) -> bool:
        """A grant from every other member covers the role of `group` at `epoch` now."""
        view = self.fsviews.get(group)
        if view is None or view.lease <= 0 or view.epoch != epoch:
            return False
        return self.grants.holds(group, epoch, frozenset(p.member for p in view.peers), now)

    # -- the ticker --------------------------------------------------------------------

    def _arm(self, local: float, kicked: bool = False) -> None:
        self._token += 1
        token = self._token
        self.w.at_local(self.node, local, lambda: token == self._token and self._tick(kicked))

    def kick(self) -> None:
        self._arm(self.now(), kicked=True)

    def _tick(self, kicked: bool) -> None:
        self.reconcile("tick")
        now = self.now()
        if kicked or now >= self.next_tick:
            self._send_round()
            self.next_tick = now + self.w.p.interval
        self._arm(agent_core.wake_at(self.next_tick, self.lease.deadline(), now))

    def _send_round(self) -> None:
        self.seq += 1
        reports = [Report(g, m, Health.HEALTHY if agent_core.report_healthy(
            None, (g, m) not in self.unhealthy) else Health.UNHEALTHY,
            self.roles[(g, m)].seen_epoch, self.roles[(g, m)].active_epoch,
            generation=self.generation, leased=self.lease.valid(self.now()))
            for g, m in self.keys]
        self.lease.sent(self.seq, self.now())  # noted before sending
        self._sent_at[self.seq] = self.now()
        for c in self.listed:
            self.w.send(self.node, c, "keepalive", (self.node, self.seq, reports))

    # -- inputs ------------------------------------------------------------------------

    def receive(self, src: str, kind: str, payload: Any) -> None:
        if kind == "ack":
            seq, cid, result, members = payload
            if result == "ack":
                self._acks.setdefault(seq, set()).add(cid)
            before = self.lease.deadline()
            if self.lease.announce(cid, members):
                self._new_generation(before)
                self.reconcile("cluster membership changed")
            before = self.lease.deadline()
            if result == "ack" and self.lease.acked(seq, cid, int(self.w.p.ttl * 1000)):
                self.w.dirty = True  # a held role's VIP lives longer
                self._new_generation(before)
                if before is None or self.now() >= before + 1e-9:  # ends a lapse
                    for k, r in self.roles.items():
                        # held across it (never reconciled meanwhile), and not on
                        # failsafe grants (those keep it by the promises, not the lease)
                        if r.active_epoch and not self._covered(k[0], r.active_epoch,
                                                                self.now()):
                            self.lapsed[k] = max(self.lapsed.get(k, 0), r.active_epoch)
                            self.stale.add(k)
                self.reconcile("lease renewed")
        elif kind == "watch":
            revision, assignments = payload
            if not agent_core.newer_snapshot(revision, self.revision):
                return
            self.revision = revision
            self.views = {(g, m): AssignmentView(active, epoch, vip, gen)
                          for g, m, active, epoch, vip, gen, _f in assignments}
            self.fsviews = {
                g: fs.GroupView(g, m, epoch, (m if active else group_active), lease,
                                tuple(fs.Peer(pm, pn, pn, pa) for pm, pn, pa in peers))
                for g, m, active, epoch, _v, _gen, (lease, group_active, peers)
                in assignments}
            self.reconcile(f"assignments at revision {revision}")
        elif kind == "fs_req":
            self._grant(src, *payload)
        elif kind == "fs_ans":
            self._answered(*payload)

    # -- failsafe (agents/failsafe_peer.py, with the real rules of agents/failsafe.py) --

    def _quiet(self, rounds: float) -> bool:
        p = self.w.p
        return fs.quorum_quiet(self.lease.deadline(), self.now(),
                               p.ttl * (1 - p.drift) - p.margin, p.interval, rounds)

    def _grant(self, src: str, rid: int, group: str, requester: str, epoch: int) -> None:
        """The granter: the verdict and the promise, in one step (the product holds the
        role lock), then the answer on the connection back."""
        now = self.now()
        view = self.fsviews.get(group)
        role = self.roles.get((group, view.member)) if view is not None else None
        verdict = fs.grant(view, caller_node=src, requester=requester, epoch=epoch,
                           hears_quorum=not self._quiet(fs.GRANTER_ROUNDS),
                           acting_active=bool(role is not None and role.active_epoch))
        if verdict.granted:
            self.promises.promise(group, now, verdict.lease)
        if self._granting.get(group) != verdict.granted:
            self._granting[group] = verdict.granted
            self.w.note(f"{self.node} {'grants' if verdict.granted else 'refuses'} failsafe "
                        f"{group} to {requester} at epoch {epoch}"
                        + ("" if verdict.granted else f" ({verdict.reason.split(':')[0]})"))
        self.w.send(self.node, src, "fs_ans", (rid, verdict.granted, verdict.lease))

    def _fs_loop(self) -> None:
        """The requester's round, every quarter interval (agents/failsafe_peer.py)."""
        self.w.at_local(self.node, self.now() + self.w.p.interval / 4, self._fs_loop)
        now = self.now()
        quiet = self._quiet(fs.REQUESTER_ROUNDS)
        for (g, m), role in self.roles.items():
            view = self.fsviews.get(g)
            if not (view is not None and view.lease > 0 and role.active_epoch
                    and view.active == m and view.epoch == role.active_epoch):
                self.grants.clear(g)
                self._end(g, "not active")
                continue
            a = self.views.get((g, m))
            if not quiet and not fs.awaits_restamp(
                    role.active_epoch, a.epoch if a is not None else 0,
                    a.generation if a is not None else 0, self.generation):
                self._end(g, "quorum heard again")
                continue
            peers = frozenset(p.member for p in view.peers)
            if self.grants.due(g, view.epoch, peers, now, view.lease):
                for p in view.peers:
                    self._asks += 1
                    self._asked[self._asks] = (now, g, view.epoch, p.member, view.lease)
                    self.w.send(self.node, p.node, "fs_req", (self._asks, g, m, view.epoch))
        self._fs_settle()

    def _answered(self, rid: int, granted: bool, lease: float) -> None:
        asked = self._asked.pop(rid, None)
        if asked is None:
            return  # a duplicate, or an answer to an earlier process
        sent, group, epoch, peer, mine = asked
        if granted and lease > 0:
            self.grants.granted(group, epoch, peer, sent, min(lease, mine))
        self._fs_settle()

    def _fs_settle(self) -> None:
        """Re-decide the roles on the grants and promises, note engagement, and wake
        exactly when the earliest grant or promise ends."""
        now = self.now()
        wake: float | None = None
        for (g, _m), role in self.roles.items():
            view = self.fsviews.get(g)
            if view is None:
                continue
            until = self.grants.until(g, view.epoch, frozenset(p.member for p in view.peers))
            if role.active_epoch and until is not None and until > now:
                wake = until if wake is None else min(wake, until)
                if not self.lease.valid(now) and g not in self._engaged:
                    self._engaged.add(g)
                    self.w.note(f"{self.node} failsafe engaged {g} epoch {view.epoch}")
            elif g in self._engaged:
                self._end(g, "a member refused or could not be reached")
            blocked = self.promises.blocks(g, now, view.lease)
            if blocked is not None and not role.active_epoch:
                wake = blocked if wake is None else min(wake, blocked)
        self.reconcile("failsafe check: grants or promises")
        if wake is not None:
            self._fs_token += 1
            token = self._fs_token
            self.w.at_local(self.node, wake, lambda: token == self._fs_token
                            and self._fs_settle())

    def _end(self, group: str, why: str) -> None:
        if group in self._engaged:
            self._engaged.discard(group)
            self.w.note(f"{self.node} failsafe ended {group} ({why})")

    def _new_generation(self, before: float | None) -> None:
        """As the driver: a lease that runs again after not running is a new generation."""
        if agent_core.starts_generation(before, self.lease.deadline(), self.now()):
            self.generation = self.w.new_generation()
            self.w.note(f"{self.node} lease generation {self.generation}", significant=False)
            self.kick()  # the leader learns the new generation at once

    def reconcile(self, why: str) -> None:
        now = self.now()
        lease_ok = self.lease.valid(now)
        released = False
        kept: set[tuple[str, str]] = set()
        blocked: set[tuple[str, str]] = set()
        for key, role in self.roles.items():  # the failsafe hook, as the session asks it
            view = self.views.get(key)
            fsview = self.fsviews.get(key[0])
            if role.active_epoch and view is not None and self._covered(key[0], view.epoch,
                                                                        now):
                kept.add(key)
            if not role.active_epoch and fsview is not None and self.promises.blocks(
                    key[0], now, fsview.lease) is not None:
                blocked.add(key)
        for step in agent_core.reconcile(self.roles, self.views, lease_ok, {}, why, kept,
                                         blocked, generation=self.generation):
            role = self.roles[step.key]
            for e in step.effects:
                if e.kind == "release":
                    if e.reason == "lease expired":
                        self.lapsed[step.key] = max(self.lapsed.get(step.key, 0),
                                                    role.active_epoch)
                    role.active_epoch = 0
                    released = True
                    self.stale.discard(step.key)
                else:
                    role.active_epoch = e.epoch
                    self.w.dirty = True
                    if self.lapsed.get(step.key, 0) >= e.epoch:
                        self.stale.add(step.key)
                self.w.note(f"{self.node} {e.kind} {e.group}/{e.member} epoch {e.epoch}"
                            f" ({e.reason})")
            if step.seen_epoch < role.seen_epoch:
                self.w.violate(f"{self.node}: seen epoch of {step.key} went back")
            role.seen_epoch = step.seen_epoch
        if released:
            self.kick()

    def set_health(self, group: str, member: str, healthy: bool) -> None:
        (self.unhealthy.discard if healthy else self.unhealthy.add)((group, member))
        self.w.note(f"{self.node} reports {group}/{member} "
                    f"{'healthy' if healthy else 'unhealthy'}")
        self.kick()
