"""Who may write a standby's state over peer sync: only the node hosting the group's
active member at the message's epoch (issue 11, found by the attacker re-run).

Before, any certificate of kind `node` passed: a VM of another group, or the standby's
own node, could install a snapshot of the current epoch into the standby (the epoch
fence refuses stale and forged-future epochs, not forged data). Real gRPC with mTLS on
loopback; the coordinators are a lookup function here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from vnfha.agents.statesync.receiver import SyncReceiver
from vnfha.coordinator.security.tls import channel_credentials, server_name_option
from vnfha.v1 import statesync_pb2, statesync_pb2_grpc
from vnfha_lab.testpki import LabPki


class Sink:
    def __init__(self) -> None:
        self.installed: list[bytes] = []
        self.updates: list[bytes] = []

    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None:
        self.updates += entries

    def install_snapshot(self, sequence: int, data: bytes) -> None:
        self.installed.append(data)


class Rig:
    def __init__(self, pki: LabPki, target: str, sink: Sink, lookups: list[int]) -> None:
        self.pki, self.target, self.sink, self.lookups = pki, target, sink, lookups

    def stub(self, identity: str) -> statesync_pb2_grpc.StateSyncServiceStub:
        ch = grpc.secure_channel(self.target, channel_credentials(self.pki.files(identity)),
                                 options=[server_name_option("node")])
        return statesync_pb2_grpc.StateSyncServiceStub(ch)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    pki = LabPki(tmp_path / "pki")
    sink = Sink()
    lookups: list[int] = []

    def owners(group: str, at_least: int) -> tuple[int, str]:
        lookups.append(at_least)
        return 1, "vm1"  # web-1 on vm1 is active at epoch 1

    rx = SyncReceiver("web", sink, lambda g, e: 1, bind="127.0.0.1:0",
                      tls=pki.files("node/vm2"), owners=owners)
    port = rx.start()
    try:
        yield Rig(pki, f"127.0.0.1:{port}", sink, lookups)
    finally:
        rx.stop()


def install(stub: statesync_pb2_grpc.StateSyncServiceStub, data: bytes,
            epoch: int = 1) -> grpc.StatusCode:
    try:
        stub.InstallSnapshot(statesync_pb2.InstallSnapshotRequest(
            group="web", epoch=epoch, sequence=5, data=data), timeout=5)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def test_only_the_active_node_writes_the_standby(rig: Rig) -> None:
    for identity in ("node/vm3", "node/vm2"):  # another group's VM; the standby's own node
        assert install(rig.stub(identity), b"forged") == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            rig.stub(identity).ApplyUpdates(statesync_pb2.ApplyUpdatesRequest(
                group="web", epoch=1, first_sequence=1, entries=[b"forged"]), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "vm1" in (info.value.details() or "")
    assert rig.sink.installed == [] and rig.sink.updates == []
    assert install(rig.stub("node/vm1"), b"real") == grpc.StatusCode.OK
    assert rig.sink.installed == [b"real"]
    # the owner of an epoch is looked up once, then remembered
    assert install(rig.stub("node/vm1"), b"again") == grpc.StatusCode.OK
    assert rig.lookups == [1]


def test_stale_and_future_epochs_are_still_the_fence_s(rig: Rig) -> None:
    assert install(rig.stub("node/vm1"), b"real") == grpc.StatusCode.OK
    # a future epoch: the coordinators say 1, so it is refused as before
    assert install(rig.stub("node/vm3"), b"x", epoch=9) == grpc.StatusCode.INVALID_ARGUMENT
    assert rig.sink.installed == [b"real"]
