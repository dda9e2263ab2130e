"""Figures from the client's probe attempts (pure): outage windows and failover times."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Protocol


class AttemptLike(Protocol):
    at: float
    ok: bool
    who: str


def outage_windows(attempts: Sequence[AttemptLike]) -> list[tuple[float, float]]:
    """(start, length) of every stretch without an answer: from the last answered
    attempt before it to the first answered one after it."""
    out = []
    last_ok: float | None = None
    failing = False
    for a in sorted(attempts, key=lambda a: a.at):
        if a.ok:
            if failing and last_ok is not None:
                out.append((last_ok, a.at - last_ok))
            last_ok, failing = a.at, False
        else:
            failing = True
    return out


def failovers(attempts: Sequence[AttemptLike]) -> list[tuple[float, float, str, str]]:
    """(at, gap, old, new) for each change of the VM answering: the gap runs from the
    old one's last answer to the new one's first."""
    out = []
    prev = None
    for a in sorted(attempts, key=lambda a: a.at):
        if not a.ok:
            continue
        if prev is not None and a.who != prev.who:
            out.append((a.at, a.at - prev.at, prev.who, a.who))
        prev = a
    return out


def spread(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(statistics.median(values), 3),
            "max": round(max(values), 3)}
