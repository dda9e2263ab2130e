"""The agent's decisions, sans I/O: (roles, assignments, lease, faults, now) -> (roles, effects).

Why a separate module: the part of the system where split-brain would actually
happen is the agent deciding to hold a VIP. Inside `AgentSession` that decision
ran under a lock, driven by gRPC streams, timers and callbacks, so it could only be
tested with real threads and real time. Here it is a set of functions of their
arguments; `AgentSession` (agents/session.py) and `Agent` (agents/main.py) only feed
them inputs and carry out the effects they return, and the deterministic simulator
(tests/sim/) runs exactly these functions against simulated coordinators.

The rule (docs/design.md §3): a member acts as active at epoch e only while its
latest assignment says active at e, the quorum lease (agents/lease.py) runs, the
assignment is stamped with the agent's current lease generation (or carries no
stamp: a coordinator from before generations), the agent has not already processed
a newer epoch, and no fault blocks the member. A
role is released before a new one is taken, and an epoch counts as *seen* only
after it was acted on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

Key = tuple[str, str]  # (group, member)


@dataclass
class MemberRole:
    """What the agent has done about one member (the session keeps one per member)."""

    seen_epoch: int = 0
    active_epoch: int = 0  # epoch under which this agent acts as active; 0: not active


@dataclass(frozen=True)
class AssignmentView:
    """The part of a coordinator's assignment the decision reads."""

    active: bool
    epoch: int
    vip: str = ""
    # The lease generation the leader stamped the promotion with (the one its agent
    # reported then); 0: unstamped (a coordinator from before lease generations).
    generation: int = 0


@dataclass(frozen=True)
class RoleEffect:
    """Take (`claim`) or drop (`release`) the active role of one member at `epoch`.

    The driver carries these out in order; a claim that fails is undone by the driver
    (it blocks the member, which releases it), so the role is never "active" without
    its VIP."""

    kind: Literal["claim", "release"]
    group: str
    member: str
    epoch: int
    reason: str


@dataclass(frozen=True)
class MemberStep:
    """One member's decision: the effects to carry out, then the epoch now seen."""

    key: Key
    effects: tuple[RoleEffect, ...]
    seen_epoch: int


def want_active(a: AssignmentView | None, role: MemberRole, lease_ok: bool,
                fault: str | None, generation: int) -> bool:
    """Whether the member should act as active now (the whole safety rule, agent side).

    `generation` is the agent's current lease generation: an assignment stamped with
    another one was given to an earlier lease of this agent (before a lapse, or to an
    earlier process), and a failover may have been decided since that lease ended."""
    return (a is not None and a.active and lease_ok and a.epoch >= role.seen_epoch
            and a.generation in (0, generation) and fault is None)


def starts_generation(deadline_before: float | None, deadline_after: float | None,
                      now: float) -> bool:
    """Whether a change of the lease deadline at `now` (an ack, or a membership
    announcement that recounted the rounds) starts a new lease generation: it does
    when the lease now runs and did not run just before. Every acquisition, the first
    one included, gets a new generation: a majority may have confirmed this node's
    expiry while it had no lease, and nothing stamped before that may be acted on
    under the new lease (docs/design.md §3 "Lease generations")."""
    was = deadline_before is not None and now < deadline_before
    return not was and deadline_after is not None and now < deadline_after


def reconcile(roles: Mapping[Key, MemberRole], assignments: Mapping[Key, AssignmentView],
              lease_ok: bool, faults: Mapping[Key, str], why: str,
              failsafe_kept: Collection[Key] = (),
              claim_blocked: Collection[Key] = (), *,
              generation: int) -> list[MemberStep]:
    """Act as active exactly where the assignment says so and the lease runs.

    Per member, in the session's member order: release first (lease over, demoted,
    faulted, or the epoch moved), then claim; the seen epoch moves to the assignment's
    only after that, so a report of seen_epoch >= e promises we no longer act under
    anything older than e.

    Failsafe (docs/design.md, "Failsafe"): `failsafe_kept` are the members whose held
    role a failsafe lease from every other member still covers; it only *keeps* a role
    held at the assigned epoch, never starts one. `claim_blocked` are the members this
    agent promised (by granting a failsafe lease) not to claim yet."""
    out: list[MemberStep] = []
    for key, role in roles.items():
        a = assignments.get(key)
        epoch = a.epoch if a is not None else 0
        fault = faults.get(key)
        # Failsafe keeps a role held at the assigned epoch also across a lapse of the
        # quorum lease and the new generation after it: every other member promised
        # not to claim while the grants run. Once they end, only the generation rule
        # holds it (the leader re-stamps it under the new generation meanwhile, at the
        # same epoch: decide rule 10, docs/design.md "Failsafe").
        kept = (key in failsafe_kept and role.active_epoch == epoch > 0 and a is not None
                and a.active and fault is None)
        waits = key in claim_blocked and not role.active_epoch
        want = (kept or want_active(a, role, lease_ok, fault, generation)) and not waits
        effects: list[RoleEffect] = []
        active_epoch = role.active_epoch
        if active_epoch and want and epoch > active_epoch:
            # The same member promoted again (a re-confirmation under a new lease
            # generation): it stays active, now at the new epoch; no release between.
            effects.append(RoleEffect("claim", key[0], key[1], epoch, why))
            out.append(MemberStep(key, tuple(effects), max(role.seen_epoch, epoch)))
            continue
        if active_epoch and (not want or epoch != active_epoch):
            reason = ("lease expired" if not (lease_ok or kept) else fault or (
                "assignment from an earlier lease" if a is not None and a.active
                and a.epoch == active_epoch and a.generation not in (0, generation)
                else why))
            effects.append(RoleEffect("release", key[0], key[1], active_epoch, reason))
            active_epoch = 0
        if want and active_epoch == 0:
            effects.append(RoleEffect("claim", key[0], key[1], epoch, why))
        out.append(MemberStep(key, tuple(effects), max(role.seen_epoch, epoch)))
    return out


def release_all(roles: Mapping[Key, MemberRole], why: str) -> list[RoleEffect]:
    """Stopping, failing or a coordinator history reset: drop every held role."""
    return [RoleEffect("release", k[0], k[1], r.active_epoch, why)
            for k, r in roles.items() if r.active_epoch]


def report_healthy(fault: str | None, checks_healthy: bool) -> bool:
    """A member is reported healthy only if its checks pass and no fault blocks it:
    a blocked member must look failed to the leader, so it is never elected."""
    return fault is None and checks_healthy


def newer_snapshot(revision: int, current: int) -> bool:
    """Follow the assignment snapshot with the highest revision from any coordinator,
    so a lagging coordinator cannot hold back a demotion."""
    return revision > current


def watch_lags(ack_revision: int, snapshot_revision: int, waiting_for_stamp: bool) -> bool:
    """Whether to subscribe the assignment watches again: an acknowledgement shows that
    a coordinator applied a newer state than the newest snapshot received, while a held
    role waits for the stamp of the agent's new lease generation (only failsafe grants
    keep it, and they end). Measured in the lab: after a cut by packet drops (no reset)
    a watch stream's backlog arrives at TCP's retransmission pace, about a second after
    the re-stamp was committed, so the role dropped for a moment; a new stream starts
    with a fresh snapshot (docs/design.md "Failsafe")."""
    return waiting_for_stamp and ack_revision > snapshot_revision


def history_reset(registered_revision: int, seen_revision: int) -> bool:
    """A registration commits after everything this agent has seen: a lower revision
    means the coordinators' history was reset (state restored or wiped)."""
    return registered_revision < seen_revision


def wake_at(next_tick: float, lease_deadline: float | None, now: float) -> float:
    """When the ticker must run next: its next keepalive round, or the lease deadline
    if that comes first, so a cut-off active is released exactly at the deadline."""
    if lease_deadline is None or lease_deadline <= now:
        return next_tick
    return min(next_tick, lease_deadline)


def watchdog(now: float, last_wake: float, period: float, beat: float, bound: float
             ) -> Literal["frozen", "stalled", "ok"]:
    """The ticker watchdog's verdict. `frozen`: the watchdog itself woke more than a
    period late, so the whole process was stopped (SIGSTOP, VM pause) and the ticker
    is not to blame: start over. `stalled`: the ticker's last pass (`beat`) is more
    than `bound` ago: fail-stop, since nobody would release at the lease deadline."""
    if now - last_wake - period > period:
        return "frozen"
    return "stalled" if now - beat > bound else "ok"


def may_hold(lease_deadline: float | None, now: float) -> bool:
    """The VIP layer's refusal: no address is (re)added once the lease has run out,
    so a reconcile racing the release cannot resurrect it."""
    return lease_deadline is not None and now < lease_deadline


def handed_over(handovers: list[tuple[str, str, str, int]],
                assignments: Mapping[Key, AssignmentView]) -> bool:
    """A drain is done when every handover with a successor (group, member, to, epoch)
    saw its group's epoch move past the demotion (the promotion), so the leader itself
    has the release report (a quorum's acks alone need not include the leader's)."""
    for group, member, to, epoch in handovers:
        a = assignments.get((group, member))
        if to and (a is None or a.epoch <= epoch):
            return False
    return True


# -- the order of effects of one role change (agents/main.py carries them out) -------------

#: Becoming active: the guardian and the kernel lease know the VIP (and the deadline)
#: before the address exists, then the address (announced by the VIP layer), then
#: the VNFC is told. Stopping: the VNFC first (whatever fails next), then the kernel
#: lease ends (quiet at once), the address goes, and the guardian forgets it.
ClaimStep = Literal["guardian_hold", "kernel_hold", "add_vip", "notify_vnfc"]
ReleaseStep = Literal["notify_vnfc", "kernel_release", "remove_vip", "guardian_release"]
CLAIM_ORDER: tuple[ClaimStep, ...] = ("guardian_hold", "kernel_hold", "add_vip", "notify_vnfc")
RELEASE_ORDER: tuple[ReleaseStep, ...] = ("notify_vnfc", "kernel_release", "remove_vip",
                                          "guardian_release")


def role_change_steps(active: bool) -> tuple[str, ...]:
    """The steps of one role change, in the order that keeps "never two holders" (the
    VIP steps are skipped by the driver for a member without a managed VIP)."""
    return CLAIM_ORDER if active else RELEASE_ORDER
