"""Client of the coordinators' StateService: fenced queue and checkpoints.

    from vnfha.agents.statesync.store import StateClient

    store = StateClient(["198.18.0.1:7401", "198.18.0.2:7401", "198.18.0.3:7401"])
    store.put_checkpoint("kv", ctx.epoch, blob, sync_sequence=seq)
    cp = store.get_checkpoint("kv", min_epoch=ctx.epoch)   # at takeover

Any coordinator accepts any call (writes are forwarded through the replicated
store). On UNAVAILABLE the next coordinator is tried, with the same request id,
so a retried write applies once. A refusal raises `RefusedError`
(`StaleEpochError` when the writer has been deposed) and applied nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from vnfha.agents.statesync.errors import RefusedError, SyncUnavailable, refusal
from vnfha.coordinator.security.tls import Stubs, TlsFiles
from vnfha.v1 import state_pb2, state_pb2_grpc

__all__ = ["QueueMessage", "ReadResult", "StateClient", "StoredCheckpoint"]

T = TypeVar("T")
_RETRY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass(frozen=True)
class StoredCheckpoint:
    epoch: int
    version: int
    data: bytes
    sync_sequence: int


@dataclass(frozen=True)
class QueueMessage:
    offset: int
    epoch: int
    data: bytes


@dataclass(frozen=True)
class ReadResult:
    messages: list[QueueMessage]
    next_offset: int
    first_offset: int


class StateClient:
    """Calls to whichever coordinator answers; thread-safe."""

    def __init__(self, endpoints: Sequence[str], timeout: float = 3.0,
                 tls: TlsFiles | None = None) -> None:
        if not endpoints:
            raise ValueError("StateClient needs at least one coordinator endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._stubs = Stubs(self.endpoints, state_pb2_grpc.StateServiceStub, tls)
        self._preferred = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._stubs.close()

    def __enter__(self) -> StateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------

    def publish(self, group: str, epoch: int, data: bytes, request_id: str = "") -> int:
        """Append to the group's queue; returns the message's offset."""
        req = state_pb2.PublishRequest(group=group, epoch=epoch, data=data,
                                       request_id=request_id or uuid.uuid4().hex)
        return self._call(lambda s, t: s.Publish(req, timeout=t)).offset

    def put_checkpoint(self, group: str, epoch: int, data: bytes, sync_sequence: int = 0,
                       request_id: str = "") -> int:
        """Replace the group's checkpoint; returns its version."""
        req = state_pb2.PutCheckpointRequest(group=group, epoch=epoch, data=data,
                                             sync_sequence=sync_sequence,
                                             request_id=request_id or uuid.uuid4().hex)
        return self._call(lambda s, t: s.PutCheckpoint(req, timeout=t)).version

    # -- reads -------------------------------------------------------------------------------

    def get_checkpoint(self, group: str, min_epoch: int = 0) -> StoredCheckpoint | None:
        """The latest checkpoint, from a coordinator that has applied `min_epoch`."""
        resp = self._call(lambda s, t: s.GetCheckpoint(
            state_pb2.GetCheckpointRequest(group=group, min_epoch=min_epoch), timeout=t))
        if not resp.found:
            return None
        c = resp.checkpoint
        return StoredCheckpoint(epoch=c.epoch, version=c.version, data=c.data,
                                sync_sequence=c.sync_sequence)

    def read(self, group: str, from_offset: int = 0, max_messages: int = 0,
             min_epoch: int = 0) -> ReadResult:
        resp = self._call(lambda s, t: s.Read(state_pb2.ReadRequest(
            group=group, from_offset=from_offset, max_messages=max_messages,
            min_epoch=min_epoch), timeout=t))
        return ReadResult([QueueMessage(m.offset, m.epoch, m.data) for m in resp.messages],
                          resp.next_offset, resp.first_offset)

    def committed_epoch(self, group: str, at_least: int = 0) -> int:
        """The group's committed epoch: the first answer >= `at_least`, else the highest
        any coordinator gave. Raises SyncUnavailable if none answered."""
        return self.epoch_owner(group, at_least)[0]

    def epoch_owner(self, group: str, at_least: int = 0) -> tuple[int, str]:
        """(committed epoch, node hosting the active member at it), chosen as in
        `committed_epoch`: what a state-sync receiver checks a sender against."""
        best: tuple[int, str] | None = None
        for i in self._order():
            try:
                resp = self._stubs[i].GetEpoch(
                    state_pb2.GetEpochRequest(group=group, min_epoch=at_least),
                    timeout=self.timeout)
            except grpc.RpcError as e:
                if e.code() in _RETRY:
                    continue
                raise _refused(e) from None
            if best is None or resp.epoch > best[0]:
                best = (resp.epoch, resp.active_node)
            if best[0] >= at_least:
                break
        if best is None:
            raise SyncUnavailable(f"no coordinator answered ({', '.join(self.endpoints)})")
        return best

    # -- plumbing ----------------------------------------------------------------------------

    def _order(self) -> list[int]:
        with self._lock:
            first = self._preferred
        return [first] + [i for i in range(len(self._stubs)) if i != first]

    def _call(self, fn: Callable[[Any, float], T]) -> T:
        errors = []
        for i in self._order():
            try:
                out = fn(self._stubs[i], self.timeout)
            except grpc.RpcError as e:
                if e.code() in _RETRY:
                    errors.append(f"{self.endpoints[i]}: {e.details()}")
                    continue
                raise _refused(e) from None
            with self._lock:
                self._preferred = i
            return out
        raise SyncUnavailable("no coordinator could take the call: " + "; ".join(errors))


def _refused(e: grpc.RpcError) -> RefusedError:
    meta = dict(e.trailing_metadata() or ())  # type: ignore[attr-defined]
    error = str(meta.get("vnfha-state-error", "")) or e.code().name.lower()
    epoch = int(meta.get("vnfha-state-epoch", 0) or 0)
    return refusal(error, e.details() or "", "store", epoch=epoch)
