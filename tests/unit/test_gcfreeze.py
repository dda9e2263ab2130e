"""The coordinator's garbage-collector freezing (coordinator/gcfreeze.py)."""

from __future__ import annotations

import gc
import itertools
import random
import time
import weakref
from collections.abc import Iterator

import pytest

from vnfha.coordinator.gcfreeze import FreezePlan, GcFreezer, GcOps, next_step, spread


class Cyclic:
    me: object = None


@pytest.fixture
def thawed() -> Iterator[None]:
    """The test process's heap is unfrozen again afterwards, whatever the test did."""
    yield
    gc.unfreeze()


def test_gaps_grow_to_the_longest_and_a_full_pass_comes_every_full_every() -> None:
    """The thread's own loop, run on paper: when each freeze happens and which are full."""
    plan = FreezePlan(first=5.0, growth=2.0, longest=300.0, full_every=3600.0)
    gap, since_full, full, now = plan.first, 0.0, False, 0.0
    gaps, full_at = [], [0.0]  # the start-up freeze is a full one
    for _ in range(60):
        now += gap
        gaps.append(gap)
        if full:
            full_at.append(now)
        since_full = 0.0 if full else since_full + gap
        gap, full = next_step(plan, gap, since_full)
    assert gaps[:8] == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    assert len(full_at) >= 3
    assert all(plan.full_every <= b - a < plan.full_every + plan.longest
               for a, b in itertools.pairwise(full_at))


def test_freeze_collects_first_and_a_full_pass_unfreezes_first() -> None:
    calls: list[str] = []
    ops = GcOps(collect=lambda: calls.append("collect") or 0,
                freeze=lambda: calls.append("freeze"),
                unfreeze=lambda: calls.append("unfreeze"), frozen=lambda: 0)
    f = GcFreezer(ops=ops)
    f.freeze_now()
    assert calls == ["collect", "freeze"]
    calls.clear()
    f.freeze_now(full=True)
    assert calls == ["unfreeze", "collect", "freeze"]
    assert (f.freezes, f.full) == (2, 1)


def test_frozen_objects_leave_every_generation_and_cyclic_garbage_is_reclaimed(
        thawed: None) -> None:
    """What the freeze is for: the long-lived objects are out of what later
    collections walk; and the collection before it reclaims cycles first (a cycle
    frozen unreclaimed would be memory lost until the next full pass)."""
    kept = [{"n": i} for i in range(2000)]
    ids = {id(o) for o in kept}
    cycle = Cyclic()
    cycle.me = cycle
    dead = weakref.ref(cycle)
    del cycle
    f = GcFreezer()
    before = gc.get_freeze_count()
    f.freeze_now()
    assert dead() is None  # collected, not frozen
    assert gc.get_freeze_count() >= before + len(kept)
    tracked = {id(o) for o in gc.get_objects()}
    assert not ids & tracked
    f.freeze_now(full=True)  # back into the collector, collected, frozen again
    assert not ids & {id(o) for o in gc.get_objects()}
    assert kept[1999] == {"n": 1999}


def test_the_thread_follows_the_plan_and_stops() -> None:
    calls: list[str] = []
    ops = GcOps(collect=lambda: calls.append("collect") or 0,
                freeze=lambda: calls.append("freeze"),
                unfreeze=lambda: calls.append("unfreeze"), frozen=lambda: 0)
    f = GcFreezer(FreezePlan(first=0.01, growth=2.0, longest=0.02, full_every=0.05), ops)
    f.start()
    deadline = time.monotonic() + 10
    while f.full < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    f.stop()
    assert f.full >= 1 and f.freezes >= 3
    assert calls[:2] == ["collect", "freeze"]  # the first is not a full pass
    count = len(calls)
    time.sleep(0.05)
    assert len(calls) == count  # stopped


def _freeze_times(plan: FreezePlan, draw, count: int) -> list[float]:
    """When a freezer following `plan` freezes, its first `count` times."""
    gap, since_full, now, at = plan.first, 0.0, 0.0, []
    for _ in range(count):
        now += spread(gap, plan.jitter, draw())
        at.append(now)
        since_full += gap
        gap, _full = next_step(plan, gap, since_full)
    return at


def test_waits_are_spread_so_coordinators_started_together_drift_apart() -> None:
    """Three coordinators started in the same second: without the spread all three
    pause together at every freeze (the overload test, issue 14: within 0.4 s, and
    every lease lapsed); with it, from the fourth freeze on (gaps of 40 s and more),
    two of them pausing within half a second of each other is rare. 1,000 seeded
    triples."""
    assert spread(100.0, 0.25, 0.0) == 75.0 and spread(100.0, 0.25, 0.5) == 100.0
    assert spread(100.0, 0.25, 0.999999) == pytest.approx(125.0)

    def together(plan: FreezePlan, seed: int) -> list[bool]:
        rng = random.Random(seed)
        triple = [_freeze_times(plan, rng.random, 10) for _ in range(3)]
        return [min(b - a for a, b in itertools.pairwise(sorted(t[k] for t in triple)))
                < 0.5 for k in range(3, 10)]

    plain = [x for seed in range(1000) for x in together(FreezePlan(jitter=0.0), seed)]
    spread_out = [x for seed in range(1000) for x in together(FreezePlan(), seed)]
    assert all(plain)
    assert sum(spread_out) / len(spread_out) < 0.05, sum(spread_out) / len(spread_out)


def test_the_thread_spreads_its_waits_with_its_draws() -> None:
    """The thread waits the spread gap: with draws at the top of the range, the first
    freeze comes after 1.25 times the plan's first gap, not before."""
    calls: list[float] = []
    ops = GcOps(collect=lambda: calls.append(time.monotonic()) or 0, freeze=lambda: None,
                unfreeze=lambda: None, frozen=lambda: 0)
    f = GcFreezer(FreezePlan(first=0.2, jitter=0.5), ops, draw=lambda: 0.999)
    started = time.monotonic()
    f.start()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    f.stop()
    assert calls and calls[0] - started >= 0.29, calls
