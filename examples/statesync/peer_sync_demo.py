"""Peer sync and a fenced checkpoint in one process, no cluster needed.

Run with the project's venv:  .venv/bin/python examples/statesync/peer_sync_demo.py

A standby receiver and an active sender talk real gRPC on loopback; a second
"active" at a newer epoch takes over, and the old one is refused. The
committed-epoch source is a plain function here; in a deployment it is
`StateClient(coordinators).committed_epoch`.
"""

from __future__ import annotations

import json
import logging

from vnfha.agents.statesync import FixedEpoch, StaleEpochError, SyncReceiver, SyncSender


class Counter:
    """The application state on the standby: a dict of counters."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        for e in entries:
            name = e.decode()
            self.counts[name] = self.counts.get(name, 0) + 1

    def install_snapshot(self, sequence: int, data: bytes) -> None:
        self.counts = json.loads(data) if data else {}


logging.basicConfig(level=logging.ERROR)  # the library logs refusals at warning
committed = {"epoch": 1}  # what the coordinators have committed for the group
standby = Counter()
receiver = SyncReceiver("demo", standby, lambda group, at_least: committed["epoch"],
                        bind="127.0.0.1:0")
port = receiver.start()

# In a VNFC, `ctx` is the SDK's active context: `with client.active_context("demo") as ctx`.
old = SyncSender("demo", FixedEpoch(1), [f"127.0.0.1:{port}"], base=(0, b"{}"), mode="sync")
for name in ("a", "b", "a"):
    seq = old.send(name.encode())  # returns once the standby applied it
    print(f"epoch 1: sent {name!r} as sequence {seq}; standby has {standby.counts}")

committed["epoch"] = 2  # a failover was committed; the new active starts from a snapshot
new = SyncSender("demo", FixedEpoch(2), [f"127.0.0.1:{port}"],
                 base=(3, json.dumps(standby.counts).encode()), mode="sync")
new.send(b"c")
print(f"epoch 2: standby has {standby.counts}")

try:
    old.send(b"zombie")
except StaleEpochError as e:
    print(f"the deposed active is refused: {e}")
print(f"standby still has {standby.counts}; refusals: {receiver.refused}")
for s in (old, new):
    s.close()
receiver.stop()
