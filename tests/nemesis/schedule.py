"""The seeded fault schedule (pure): the same seed and kinds give the same run plan.

A schedule is a list of `Step`s: which fault kind, on which target (a role such
as "leader" or "active-vm" is resolved when the step runs, since who leads
depends on the run), how long it lasts and how long the cluster rests after it
is healed. `describe` prints it in the form `--seed` replays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    index: int
    kind: str
    target: str
    duration: float  # seconds the fault stays injected (bounded: always healed after)
    rest: float  # seconds between the heal and the next fault


@dataclass(frozen=True)
class KindSpec:
    """A fault kind's scheduling facts: the targets it may pick and its duration range."""

    name: str
    targets: tuple[str, ...]
    min_duration: float = 0.3
    max_duration: float = 2.0
    weight: float = 1.0


def make_schedule(seed: int, faults: int, kinds: list[KindSpec],
                  rest: tuple[float, float] = (0.2, 1.0)) -> list[Step]:
    """`faults` steps drawn from `kinds` with a PRNG seeded by `seed` only."""
    if faults < 0:
        raise ValueError(f"faults must be >= 0, got {faults}")
    if not kinds:
        raise ValueError("no fault kinds enabled")
    rng = random.Random(seed)
    weights = [k.weight for k in kinds]
    steps = []
    for i in range(faults):
        k = rng.choices(kinds, weights=weights)[0]
        steps.append(Step(index=i, kind=k.name, target=rng.choice(k.targets),
                          duration=round(rng.uniform(k.min_duration, k.max_duration), 3),
                          rest=round(rng.uniform(*rest), 3)))
    return steps


def describe(seed: int, steps: list[Step], kinds: list[str]) -> str:
    """The schedule as text, headed by what replays it."""
    head = (f"nemesis seed {seed}: replay with --seed {seed} --faults {len(steps)} "
            f"--kinds {','.join(kinds)}")
    lines = [head] + [f"  #{s.index:<4} {s.kind:<18} {s.target:<12} for {s.duration:.3f}s, "
                      f"rest {s.rest:.3f}s" for s in steps]
    return "\n".join(lines)
