"""The randomized explorer: many seeded schedules of faults over the simulated cluster.

One seed gives one schedule: a world (3 or 5 coordinators, possibly growing from 3
to 5; two or three agents, some listing only the first three coordinators; clock
rates within the drift bound; some message loss and duplication) and a plan of
faults (partitions, single cut links, pauses, crashes with restarts), each with a
start and an end. Half the schedules run with failsafe on (docs/design.md
"Failsafe"), and those add one or two coordinator outages: every coordinator
crashed and restarted, or every coordinator cut off from every agent. The checker
of world.py runs after every event. A failing seed is shrunk: faults are dropped
one at a time while the violation still happens, and the report names the seed,
the faults left and the trace of that run.

    python -m tests.sim.explore --budget 30 [--seed N] [--count N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .world import Params, World

DURATION = 5.0  # simulated seconds per schedule (five TTLs)
# The timing rules at their loosest (keepalive and decide intervals <= ttl/3): the
# fewest events per simulated second, so the most schedules per budget. The golden
# scenarios use the tighter defaults.
PARAMS = Params(interval=0.3, decide=0.3, raft_tick=0.1, watch_resend=1.0)
# Per explorer run: CPU seconds of this process (time.process_time), so the number of
# schedules, and with it what a run can find, does not depend on how loaded the
# machine is; a wall-clock cap of WALL_FACTOR times that bounds the suite anyway.
DEFAULT_BUDGET = 30.0
WALL_FACTOR = 4.0
DEFAULT_COUNT = 20_000  # schedules at most per run
FAILSAFE_LEASE = 1.0  # seconds, when a schedule turns failsafe on (the TTL: one lease)


@dataclass(frozen=True)
class Fault:
    start: float
    end: float
    kind: str  # partition | link | pause | crash | grow | outage | cutoff
    procs: tuple[str, ...]  # partition: one side (the rest is the other)

    def __str__(self) -> str:
        return f"{self.start:.3f}-{self.end:.3f} {self.kind} {','.join(self.procs)}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    coordinators: tuple[str, ...]
    grow_to: tuple[str, ...]  # coordinators added by a `grow` fault, if any
    agents: dict[str, list[tuple[str, str, int]]]
    lists: dict[str, list[str]]
    drop: float
    dup: float
    faults: tuple[Fault, ...]
    failsafe: float = 0.0  # failsafe lease, seconds (0: off)


def schedule(seed: int) -> Schedule:
    rng = random.Random(seed)
    n = rng.choice([3, 3, 5])
    coords = tuple(f"c{i}" for i in range(1, n + 1))
    grow_to: tuple[str, ...] = ("c4", "c5") if n == 3 and rng.random() < 0.4 else ()
    names = ["n1", "n2", "n3"][:rng.choice([2, 3])]
    agents = {node: [("g", f"m{i}", 100 - 10 * i)] for i, node in enumerate(names)}
    if rng.random() < 0.3:  # a second group, reversed priorities
        for i, node in enumerate(names):
            agents[node].append(("h", f"k{i}", 80 + 10 * i))
    lists: dict[str, list[str]] = {}
    if n == 5 or grow_to:  # some agents keep the old list of three
        lists = {node: ["c1", "c2", "c3"] for node in names if rng.random() < 0.6}
    procs = [*coords, *grow_to, *names]
    faults: list[Fault] = []
    if grow_to:
        at = rng.uniform(0.2, 1.5)
        faults.append(Fault(at, at, "grow", grow_to))
    for _ in range(rng.randint(2, 5)):
        # Short blips and faults of one to several TTLs (a lease, an expiry, a grace).
        start = rng.uniform(0.3, DURATION - 1.0)
        end = min(DURATION, start + rng.choice([0.05, 0.3, 1.0, 2.0, 3.5, DURATION]))
        kind = rng.choices(["partition", "link", "pause", "crash"], [3, 4, 2, 2])[0]
        if kind == "partition":
            side = tuple(sorted(rng.sample(procs, rng.randint(1, len(procs) - 1))))
        elif kind == "link":
            side = (rng.choice(names), rng.choice([*coords, *grow_to]))
        else:
            side = (rng.choice(procs),)
        faults.append(Fault(start, end, kind, side))
    drop = rng.choice([0.0, 0.0, 0.02, 0.1])
    dup = rng.choice([0.0, 0.0, 0.05])
    # Drawn after everything above, so a schedule without failsafe is what it was.
    failsafe = FAILSAFE_LEASE if rng.random() < 0.5 else 0.0
    if failsafe:
        for _ in range(rng.randint(1, 2)):
            start = rng.uniform(1.0, DURATION - 1.0)  # after the first claim
            end = min(DURATION, start + rng.choice([0.3, 1.0, 1.5, 2.5, DURATION]))
            faults.append(Fault(start, end, rng.choice(["outage", "cutoff"]), ()))
    return Schedule(seed, coords, grow_to, agents, lists, drop, dup,
                    tuple(sorted(faults, key=lambda f: f.start)), failsafe)


def _links(w: World, f: Fault) -> set[tuple[str, str]]:
    if f.kind == "link":
        a, b = f.procs
        return {(a, b), (b, a)}
    if f.kind == "cutoff":  # every coordinator from every agent; they still see each other
        return {(c, a) for c in w.coords for a in w.agents} | {
            (a, c) for c in w.coords for a in w.agents}
    side = set(f.procs)
    everyone = set(w.procs) | set(f.procs)
    return {(a, b) for a in side for b in everyone - side} | {
        (b, a) for a in side for b in everyone - side}


def run(s: Schedule, faults: tuple[Fault, ...] | None = None) -> World:
    """Run one schedule (optionally with a subset of its faults); the world after it."""
    w = World(s.seed, list(s.coordinators), s.agents, s.lists, params=PARAMS,
              failsafe=s.failsafe)
    w.net.drop, w.net.dup = s.drop, s.dup
    for f in faults if faults is not None else s.faults:
        _plan(w, f)
    w.run_until(DURATION)
    return w


def _plan(w: World, f: Fault) -> None:
    def begin() -> None:
        if f.kind == "grow":
            if f.procs[0] not in w.coords:
                w.grow(list(f.procs))
        elif f.kind in ("partition", "link", "cutoff"):
            w.note(f"cut {f}")
            w.cut(_links(w, f))
        elif f.kind == "outage":
            w.note(f"begin {f}")
            for c in sorted(w.coords):
                if w.procs[c].up:
                    w.crash(c)
        elif f.procs[0] in w.procs and w.procs[f.procs[0]].up:
            (w.pause if f.kind == "pause" else w.crash)(f.procs[0])

    def end() -> None:
        if f.kind in ("partition", "link", "cutoff"):
            w.note(f"restore {f}")
            w.uncut(_links(w, f))
        elif f.kind == "outage":
            w.note(f"end {f}")
            for c in sorted(w.coords):
                if not w.procs[c].up:
                    w.restart(c)
        elif f.kind == "pause" and f.procs[0] in w.procs and w.procs[f.procs[0]].paused:
            w.resume(f.procs[0])
        elif f.kind == "crash" and f.procs[0] in w.procs and not w.procs[f.procs[0]].up:
            w.restart(f.procs[0])

    w.at(f.start, begin)
    if f.kind != "grow":
        w.at(f.end, end)


def shrink(s: Schedule, budget: float = 10.0) -> tuple[tuple[Fault, ...], World]:
    """Drop faults one at a time while the run still violates safety."""
    faults = s.faults
    w = run(s, faults)
    stop = time.monotonic() + budget
    changed = True
    while changed and time.monotonic() < stop:
        changed = False
        for i in range(len(faults)):
            fewer = faults[:i] + faults[i + 1:]
            trial = run(s, fewer)
            if trial.violations:
                faults, w, changed = fewer, trial, True
                break
    return faults, w


@dataclass
class Report:
    schedules: int
    seconds: float
    events: int
    failure: str | None  # the seed, the shrunk plan and the trace


def explore(first_seed: int = 0, budget: float = DEFAULT_BUDGET, count: int = DEFAULT_COUNT,
            clock: Callable[[], float] = time.process_time,
            wall_cap: bool = True) -> Report:
    """Run schedules first_seed, first_seed+1, ... until the budget (CPU seconds, and
    WALL_FACTOR times it of wall clock unless `wall_cap` is off), `count`, or a
    violation. Schedules are seeded, so a run without the wall cap is deterministic
    up to the CPU budget: what a test that must *find* a planted bug needs (a loaded
    machine would otherwise stop it early and fail it)."""
    started = clock()
    wall_end = time.monotonic() + budget * WALL_FACTOR if wall_cap else float("inf")
    done = events = 0
    for seed in range(first_seed, first_seed + count):
        if clock() - started > budget or time.monotonic() > wall_end:
            break
        s = schedule(seed)
        w = run(s)
        done += 1
        events += w._seq
        if w.violations:
            faults, small = shrink(s)
            lines = [f"safety violated: seed {seed} (replay: VNFHA_SIM_SEED={seed})",
                     f"world: coordinators={','.join(s.coordinators)} grow={','.join(s.grow_to)}"
                     f" agents={s.agents} lists={s.lists} drop={s.drop} dup={s.dup}"
                     f" failsafe={s.failsafe}",
                     "faults still needed after shrinking:",
                     *(f"  {f}" for f in faults),
                     *small.violations, "trace:", *small.trace[-60:]]
            return Report(done, clock() - started, events, "\n".join(lines))
    return Report(done, clock() - started, events, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET)
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT)
    args = ap.parse_args()
    r = explore(args.seed, args.budget, args.count)
    print(f"schedules: {r.schedules} in {r.seconds:.1f} CPU s "
          f"({r.schedules / max(r.seconds, 1e-9):.0f}/s), events: {r.events}, "
          f"simulated: {r.schedules * DURATION:.0f} s")
    print(r.failure or "no violation")


if __name__ == "__main__":
    main()
