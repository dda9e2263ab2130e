"""What a nemesis run records, and the checker over the whole of it (pure).

The runner appends events while the cluster runs; nothing here does I/O, so the
checker is tested on hand-made histories (tests/nemesis/test_checker.py),
including ones that must fail. Every time is wall-clock seconds (time.time()),
the clock every recorder of one run shares.

Properties (each gets a verdict: the list of its violations, empty = holds):

* ``single_holder``: never two VMs with the VIP at one instant. The holder
  changes come from labcluster.VipChecker, whose `_confirm` only reports a
  set of several holders once it has proved they overlapped.
* ``no_stale_epoch``: no fenced path accepts an old epoch. (a) Every stale
  probe (sync message, queue publish, checkpoint write sent as an epoch below
  the current one) is refused; (b) no client write is acknowledged at an epoch
  below that of a write acknowledged before it started (in sync mode only the
  standby's receiver can acknowledge, so such an ack means it took a stale
  epoch's stream).
* ``no_lost_write``: every acknowledged write is in the store read after healing:
  each key holds the value of its last acknowledged write, or of a write to it
  started later (keys are reused so the store stays bounded; values never are).
* ``monotonic_epochs``: on every reader (one per coordinator, polling
  GetStatus), the group's epoch never decreases over time.
* ``converged``: after everything was healed the cluster settled (one active,
  every member healthy, one VIP holder) within the bound.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PROPERTIES = ("single_holder", "no_stale_epoch", "no_lost_write", "monotonic_epochs",
              "converged")


@dataclass(frozen=True)
class HolderChange:
    """The set of VMs holding the VIP changed to `holders` at `t` (overlap-proved)."""

    t: float
    holders: frozenset[str]


@dataclass(frozen=True)
class EpochRead:
    """Reader `reader` (a coordinator's GetStatus) reported `epoch` for the group at `t`."""

    t: float
    reader: str
    epoch: int
    active: str = ""


@dataclass(frozen=True)
class Write:
    """One client write through the VIP: `epoch` is set only if it was acknowledged."""

    start: float
    end: float
    key: str
    value: str
    epoch: int | None = None

    @property
    def acked(self) -> bool:
        return self.epoch is not None


@dataclass(frozen=True)
class StaleProbe:
    """Messages sent as `epoch` (below the current one) on every fenced path.

    `results` is kvstore stale-probe's answer: path -> {outcome: count}."""

    t: float
    epoch: int
    results: dict[str, dict[str, int]]


@dataclass(frozen=True)
class FinalRead:
    """The whole store, read through the VIP after healing (None: could not be read)."""

    t: float
    data: dict[str, str] | None


@dataclass(frozen=True)
class FaultEvent:
    """A fault injected at `start`, healed at `end` (for excerpts and replay)."""

    start: float
    end: float
    kind: str
    target: str


@dataclass(frozen=True)
class Converged:
    """The end-of-run convergence check: ok, or what did not settle."""

    t: float
    ok: bool
    detail: str = ""


@dataclass
class History:
    holders: list[HolderChange] = field(default_factory=list)
    epochs: list[EpochRead] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    probes: list[StaleProbe] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    final: FinalRead | None = None
    converged: Converged | None = None


def faults_around(history: History, t: float, slack: float = 3.0) -> str:
    """The faults active at or shortly before `t`, for a violation's excerpt."""
    near = [f for f in history.faults if f.start - slack <= t <= f.end + slack]
    if not near:  # effects can lag (a restarted process takes seconds to serve)
        near = [f for f in history.faults if f.start <= t][-1:]
        if near:
            return (f"none within {slack:g}s; last before: {near[0].kind}({near[0].target}) "
                    f"{near[0].start:.3f}..{near[0].end:.3f}")
    return ", ".join(f"{f.kind}({f.target}) {f.start:.3f}..{f.end:.3f}" for f in near) or "none"


def check_single_holder(history: History) -> list[str]:
    out = []
    changes = sorted(history.holders, key=lambda c: c.t)
    for i, c in enumerate(changes):
        if len(c.holders) > 1:
            until = changes[i + 1].t if i + 1 < len(changes) else None
            span = f"{until - c.t:.3f}s" if until is not None else "until the end"
            out.append(f"t={c.t:.3f}: {sorted(c.holders)} held the VIP at once for {span} "
                       f"(faults: {faults_around(history, c.t)})")
    return out


def check_no_stale_epoch(history: History) -> list[str]:
    out = []
    for p in history.probes:
        for path, outcomes in sorted(p.results.items()):
            if outcomes.get("accepted", 0):
                out.append(f"t={p.t:.3f}: {path} accepted {outcomes['accepted']} message(s) "
                           f"at stale epoch {p.epoch}: {outcomes}")
    acked = sorted((w for w in history.writes if w.acked), key=lambda w: w.end)
    # Sweep by start time: the highest epoch acknowledged before each write started.
    by_start = sorted((w for w in history.writes if w.acked), key=lambda w: w.start)
    best: Write | None = None
    j = 0
    for w in by_start:
        while j < len(acked) and acked[j].end < w.start:
            if best is None or (acked[j].epoch or 0) > (best.epoch or 0):
                best = acked[j]
            j += 1
        if best is not None and (w.epoch or 0) < (best.epoch or 0):
            out.append(f"write {w.key} acknowledged at epoch {w.epoch} "
                       f"({w.start:.3f}..{w.end:.3f}) after {best.key} was acknowledged at "
                       f"epoch {best.epoch} (t={best.end:.3f}) "
                       f"(faults: {faults_around(history, w.start)})")
    return out


def check_no_lost_write(history: History) -> list[str]:
    """Each key's final value must come from its last acknowledged write or from a write
    to it started after that one (an unacknowledged write may or may not have landed).
    Values are unique per write, so an older value means an acknowledged write was lost."""
    acked = [w for w in history.writes if w.acked]
    if history.final is None or history.final.data is None:
        return [f"the store could not be read after healing; {len(acked)} acknowledged "
                "write(s) unverified"] if acked else []
    data = history.final.data
    by_key: dict[str, list[Write]] = {}
    for w in sorted(history.writes, key=lambda w: w.start):
        by_key.setdefault(w.key, []).append(w)
    lost = []
    for writes in by_key.values():
        last = max((i for i, w in enumerate(writes) if w.acked), default=None)
        if last is not None and data.get(writes[last].key) not in {
                w.value for w in writes[last:]}:
            lost.append(writes[last])
    out = [f"write {w.key}={w.value!r} acknowledged at epoch {w.epoch} "
           f"(t={w.end:.3f}) is {'missing' if w.key not in data else repr(data[w.key])} "
           f"at the end (faults: {faults_around(history, w.end)})" for w in lost[:20]]
    if len(lost) > 20:
        out.append(f"... and {len(lost) - 20} more acknowledged write(s) lost")
    return out


def check_monotonic_epochs(history: History) -> list[str]:
    out = []
    last: dict[str, EpochRead] = {}
    for r in sorted(history.epochs, key=lambda r: r.t):
        prev = last.get(r.reader)
        if prev is not None and r.epoch < prev.epoch:
            out.append(f"reader {r.reader}: epoch {prev.epoch} at t={prev.t:.3f}, then "
                       f"{r.epoch} at t={r.t:.3f} (faults: {faults_around(history, r.t)})")
        if prev is None or r.epoch >= prev.epoch:
            last[r.reader] = r
    return out


def check_converged(history: History) -> list[str]:
    c = history.converged
    if c is None:
        return ["the run ended without a convergence check"]
    return [] if c.ok else [f"t={c.t:.3f}: did not converge after healing: {c.detail}"]


CHECKS = {
    "single_holder": check_single_holder,
    "no_stale_epoch": check_no_stale_epoch,
    "no_lost_write": check_no_lost_write,
    "monotonic_epochs": check_monotonic_epochs,
    "converged": check_converged,
}


def check(history: History) -> dict[str, list[str]]:
    """Every property's violations (empty list = the property holds)."""
    return {name: fn(history) for name, fn in CHECKS.items()}


def ok(verdicts: dict[str, list[str]]) -> bool:
    return not any(verdicts.values())


def summary(history: History) -> dict[str, Any]:
    """Counts for the report."""
    return {
        "faults": len(history.faults),
        "faults_by_kind": dict(sorted(Counter(f.kind for f in history.faults).items())),
        "writes_acked": sum(1 for w in history.writes if w.acked),
        "writes_failed": sum(1 for w in history.writes if not w.acked),
        "epoch_reads": len(history.epochs),
        "stale_probes": len(history.probes),
        "holder_changes": len(history.holders),
    }
