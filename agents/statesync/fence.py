"""The fencing and ordering rules of peer state sync, as pure functions of plain values.

A receiver (the standby) keeps one `FenceState` per group. Every update the
active sends carries (group, epoch, sequence); `check_update` says whether to
apply it, `check_install` whether to accept a snapshot. Nothing here does I/O
or reads a clock, so every rule is a unit test with plain values.

The rules (docs/state-sync.md):

1. Wrong group: refused (`wrong_group`).
2. Epoch lower than the highest seen: refused (`stale_epoch`). This is what
   stops a deposed active that has not noticed yet.
3. Epoch higher than any epoch the coordinators have committed: refused
   (`future_epoch`). A real active only ever holds a committed epoch, so a
   higher one is forged or corrupt; without this rule one forged message would
   fence out the real active for good.
4. A new epoch (higher than the highest seen, but committed) is *recorded* at
   once — so the previous active is fenced from that moment — but its first
   accepted message must be an install (a full snapshot at some sequence).
   Updates at a new epoch before the install are refused (`snapshot_required`).
   This is the only rule that resets sequence expectations: a new active may
   not share the old one's history past the last common point, so the receiver
   never splices two epochs' logs together.
5. Within an epoch, after an install at sequence s, updates must come as
   s+1, s+2, ... Anything at or below the last applied one is refused as
   `duplicate`, anything beyond the next one as `sequence_gap`; the refusal
   says which sequence is expected.
6. While the receiver's own member is active at epoch e (it was promoted), it
   refuses updates at e as `conflict` (nobody else may be active at e) and
   anything older as `stale_epoch`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["FenceState", "SyncError", "Verdict", "accept_install", "accept_update",
           "check_install", "check_update", "mark_active", "observe_epoch"]


class SyncError(StrEnum):
    """Why a sync message was refused (the wire carries the value)."""

    WRONG_GROUP = "wrong_group"
    STALE_EPOCH = "stale_epoch"
    FUTURE_EPOCH = "future_epoch"
    SNAPSHOT_REQUIRED = "snapshot_required"
    SEQUENCE_GAP = "sequence_gap"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    INVALID = "invalid"


@dataclass(frozen=True)
class FenceState:
    """What a receiver knows about one group's sync stream."""

    group: str
    epoch: int = 0  # highest epoch seen (and verified as committed)
    applied: int = 0  # last sequence applied at `epoch` (meaningful once `synced`)
    synced: bool = False  # an install at `epoch` was accepted
    local_active: bool = False  # our own member is the active at `epoch`

    @property
    def expected(self) -> int:
        """The sequence the next update must carry."""
        return self.applied + 1


@dataclass(frozen=True)
class Verdict:
    """Accept (error is None) or refuse, with a message a human can act on."""

    error: SyncError | None
    message: str = ""
    # The state after the message was looked at: a verified new epoch is recorded
    # even when the message itself is refused (rule 4).
    state: FenceState | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _refuse(state: FenceState, error: SyncError, message: str) -> Verdict:
    return Verdict(error=error, message=message, state=state)


def _check_epoch(state: FenceState, group: str, epoch: int,
                 committed: int) -> Verdict | None:
    """Rules 1-3 and 6; None when the epoch is acceptable."""
    if group != state.group:
        return _refuse(state, SyncError.WRONG_GROUP,
                       f"message for group {group!r} sent to the receiver of {state.group!r}")
    if epoch <= 0:
        return _refuse(state, SyncError.INVALID, f"epoch must be positive, got {epoch}")
    if epoch < state.epoch:
        return _refuse(state, SyncError.STALE_EPOCH,
                       f"epoch {epoch} is older than epoch {state.epoch} already seen for "
                       f"group {group!r}: the sender has been deposed")
    if epoch > committed:
        return _refuse(state, SyncError.FUTURE_EPOCH,
                       f"epoch {epoch} is higher than any epoch committed for group "
                       f"{group!r} ({committed}): forged or corrupt")
    if state.local_active and epoch == state.epoch:
        return _refuse(state, SyncError.CONFLICT,
                       f"this member is the active of group {group!r} at epoch {epoch}")
    return None


def observe_epoch(state: FenceState, epoch: int) -> FenceState:
    """Record a verified (committed) epoch higher than any seen: from now on older
    epochs are refused. Sequence expectations start over (an install is needed)."""
    if epoch <= state.epoch:
        return state
    return replace(state, epoch=epoch, applied=0, synced=False, local_active=False)


def mark_active(state: FenceState, epoch: int) -> FenceState:
    """Our own member was promoted at `epoch`: refuse every update at or below it."""
    if epoch < state.epoch:
        return state
    return replace(observe_epoch(state, epoch), local_active=True)


def check_update(state: FenceState, group: str, epoch: int, first: int, count: int,
                 committed: int) -> Verdict:
    """May a batch of `count` updates with sequences first..first+count-1 be applied?

    `committed` is the highest epoch the coordinators are known to have committed
    for the group (the caller asks them when `epoch` is above what it knew)."""
    bad = _check_epoch(state, group, epoch, committed)
    if bad is not None:
        return bad
    if count <= 0:
        return _refuse(state, SyncError.INVALID, "an update batch needs at least one entry")
    if first <= 0:
        return _refuse(state, SyncError.INVALID, f"sequence must be positive, got {first}")
    if epoch > state.epoch or not state.synced:
        state = observe_epoch(state, epoch)
        return _refuse(state, SyncError.SNAPSHOT_REQUIRED,
                       f"epoch {epoch} of group {group!r} has not been installed here: "
                       "send a snapshot (install) first")
    if first <= state.applied:
        return _refuse(state, SyncError.DUPLICATE,
                       f"sequence {first} already applied (last applied {state.applied}); "
                       f"expected {state.expected}")
    if first > state.expected:
        return _refuse(state, SyncError.SEQUENCE_GAP,
                       f"sequence gap: got {first}, expected {state.expected}")
    return Verdict(error=None, state=state)


def accept_update(state: FenceState, first: int, count: int) -> FenceState:
    """The state after a batch that `check_update` accepted was applied."""
    return replace(state, applied=first + count - 1)


def check_install(state: FenceState, group: str, epoch: int, sequence: int,
                  committed: int) -> Verdict:
    """May a snapshot of the group's state at `sequence` replace ours?"""
    bad = _check_epoch(state, group, epoch, committed)
    if bad is not None:
        return bad
    if sequence < 0:
        return _refuse(state, SyncError.INVALID, f"sequence must be >= 0, got {sequence}")
    return Verdict(error=None, state=observe_epoch(state, epoch))


def accept_install(state: FenceState, epoch: int, sequence: int) -> FenceState:
    """The state after an install that `check_install` accepted was applied."""
    return replace(observe_epoch(state, epoch), applied=sequence, synced=True)
