"""Fenced state synchronisation for stateful VNFCs (docs/state-sync.md).

* `SyncSender` (the active) and `SyncReceiver` (the standby): direct peer sync,
  every message stamped (group, epoch, sequence);
* `StateClient`: the coordinators' per-group queue and checkpoint, written only
  at the group's current epoch;
* `fence`: the receiver's rules as pure functions.
"""

from vnfha.agents.statesync.errors import (
    NotActiveError,
    RefusedError,
    StaleEpochError,
    SyncUnavailable,
)
from vnfha.agents.statesync.receiver import Applier, SyncReceiver
from vnfha.agents.statesync.sender import FixedEpoch, SyncPeerClient, SyncSender
from vnfha.agents.statesync.store import StateClient, StoredCheckpoint

__all__ = [
    "Applier",
    "FixedEpoch",
    "NotActiveError",
    "RefusedError",
    "StaleEpochError",
    "StateClient",
    "StoredCheckpoint",
    "SyncPeerClient",
    "SyncReceiver",
    "SyncSender",
    "SyncUnavailable",
]
