"""Exceptions of the state-sync library: a refusal says who refused and why."""

from __future__ import annotations

__all__ = ["NotActiveError", "RefusedError", "StaleEpochError", "SyncUnavailable"]


class RefusedError(Exception):
    """A peer or the coordinators refused a message; nothing was applied.

    `error` is the refusal code (`stale_epoch`, `future_epoch`, `wrong_group`,
    `sequence_gap`, `duplicate`, `snapshot_required`, `conflict`, `too_large`,
    `no_active`, `unknown_group`, `invalid`); `where` is "peer" or "store";
    `epoch` the refuser's epoch for the group (0 if unknown); `applied` a peer
    receiver's last applied sequence."""

    def __init__(self, error: str, message: str, where: str, epoch: int = 0,
                 applied: int = 0, synced: bool = False) -> None:
        super().__init__(f"{where} refused ({error}): {message}")
        self.error = error
        self.message = message
        self.where = where
        self.epoch = epoch
        self.applied = applied
        self.synced = synced


class StaleEpochError(RefusedError):
    """The writer's epoch is older than the group's: it has been deposed. Stop acting
    as active; never retry with the same epoch."""


class SyncUnavailable(Exception):
    """Could not get an acknowledgement in time (peer or coordinators unreachable).
    The update may or may not have been applied there."""


class NotActiveError(Exception):
    """The sender's active context is no longer valid: it refuses to sign anything."""


def refusal(error: str, message: str, where: str, epoch: int = 0, applied: int = 0,
            synced: bool = False) -> RefusedError:
    cls = StaleEpochError if error == "stale_epoch" else RefusedError
    return cls(error, message, where, epoch, applied, synced)
