"""The active's side of direct peer sync: sequence, send, wait for acknowledgements.

    sender = SyncSender("kv", ctx, peers=["198.18.0.12:7601"], mode="sync",
                        base=(seq, snapshot_bytes))
    seq = sender.append(encode(update))   # assigns the sequence; apply locally in this order
    sender.wait_acked(seq)                # sync mode: every peer has applied it

`ctx` is the SDK's `ActiveContext` (anything with `.epoch` and `.valid()`):
every message is stamped with `ctx.epoch`, and nothing is signed once
`ctx.valid()` is False — a deposed active stops on its own. If a peer answers
`stale_epoch` the sender is deposed for good: every later call raises
`StaleEpochError`.

One worker thread per peer ships the retained log in order, in batches. It
starts each connection by asking the receiver where it is; a receiver at
another epoch, or behind the retained log, first gets the **base** — the
snapshot the application last checkpointed (`set_base`) — then the entries
after it. So a standby that fell behind catches up from the last checkpoint.

Modes:

* ``sync``: `wait_acked(seq)` returns once every peer has applied `seq`, or
  raises `SyncUnavailable` after `ack_timeout`. Acknowledge a client only
  after it returned: then no acknowledged update is lost at failover.
* ``async``: `wait_acked` returns at once; `lag()` is the number of entries
  each peer still lacks, and `append` blocks (up to `ack_timeout`, then
  raises `SyncUnavailable`) while a connected peer lags by `max_lag` or more.
  A peer that cannot be reached does not block the active (it will catch up
  from the base when it is back); what it lacks is lost if the active fails
  meanwhile — that is the price of async mode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from vnfha.agents.statesync.errors import (
    NotActiveError,
    RefusedError,
    StaleEpochError,
    SyncUnavailable,
    refusal,
)
from vnfha.coordinator.security.tls import Stubs, TlsFiles
from vnfha.v1 import statesync_pb2, statesync_pb2_grpc

__all__ = ["EpochHolder", "FixedEpoch", "SyncPeerClient", "SyncSender"]

log = logging.getLogger("vnfha.statesync.sender")

MAX_BATCH = 256
MAX_BATCH_BYTES = 1 << 20


class EpochHolder(Protocol):
    """The SDK's ActiveContext has this shape."""

    @property
    def epoch(self) -> int: ...

    def valid(self) -> bool: ...


@dataclass(frozen=True)
class FixedEpoch:
    """An epoch without a lease behind it: for tools and tests that must send as a
    given epoch (e.g. to check that receivers refuse a deposed active)."""

    epoch: int

    def valid(self) -> bool:
        return True


class SyncPeerClient:
    """One receiver's StateSyncService; raises RefusedError / SyncUnavailable."""

    def __init__(self, address: str, timeout: float = 1.0, tls: TlsFiles | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._stubs = Stubs([address], statesync_pb2_grpc.StateSyncServiceStub, tls, options=[
            ("grpc.max_send_message_length", 8 << 20),
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 500)],
            server_kind="node")  # the receiver is a VNFC on a node, not a coordinator

    @property
    def _stub(self) -> statesync_pb2_grpc.StateSyncServiceStub:
        return self._stubs[0]

    def close(self) -> None:
        self._stubs.close()

    def apply(self, group: str, epoch: int, first: int,
              entries: Sequence[bytes]) -> statesync_pb2.SyncPosition:
        req = statesync_pb2.ApplyUpdatesRequest(group=group, epoch=epoch, first_sequence=first,
                                                entries=list(entries))
        return self._call(self._stub.ApplyUpdates, req).position

    def install(self, group: str, epoch: int, sequence: int,
                data: bytes) -> statesync_pb2.SyncPosition:
        req = statesync_pb2.InstallSnapshotRequest(group=group, epoch=epoch, sequence=sequence,
                                                   data=data)
        return self._call(self._stub.InstallSnapshot, req).position

    def position(self, group: str) -> statesync_pb2.SyncPosition:
        return self._call(self._stub.GetPosition,
                          statesync_pb2.GetPositionRequest(group=group)).position

    def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            meta = dict(e.trailing_metadata() or ())  # type: ignore[attr-defined]
            error = meta.get("vnfha-sync-error")
            if error:
                raise refusal(str(error), e.details() or "", "peer",
                              epoch=int(meta.get("vnfha-sync-epoch", 0)),
                              applied=int(meta.get("vnfha-sync-applied", 0)),
                              synced=meta.get("vnfha-sync-synced") == "1") from None
            raise SyncUnavailable(f"peer {self.address}: {e.code().name}: "
                                  f"{e.details()}") from None


class _Peer:
    def __init__(self, client: SyncPeerClient) -> None:
        self.client = client
        self.acked = 0  # highest sequence the receiver has applied at our epoch
        self.known = False  # acked is trustworthy (we asked or it answered)
        self.error = ""  # last error, for status
        self.thread: threading.Thread | None = None


class SyncSender:
    def __init__(self, group: str, ctx: EpochHolder, peers: Sequence[str],
                 base: tuple[int, bytes], mode: str = "sync", ack_timeout: float = 1.0,
                 max_lag: int = 10_000, rpc_timeout: float = 1.0,
                 tls: TlsFiles | None = None) -> None:
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
        self.group = group
        self.mode = mode
        self.ack_timeout = ack_timeout
        self.max_lag = max_lag
        self._ctx = ctx
        self._epoch = ctx.epoch
        self._cond = threading.Condition()
        self._base_seq, self._base = base
        self._log: deque[bytes] = deque()  # entries _base_seq+1 .. _last
        self._last = self._base_seq
        self._deposed: StaleEpochError | None = None
        self._stopped = False
        self._peers = [_Peer(SyncPeerClient(p, rpc_timeout, tls)) for p in peers]
        self.installs = 0
        self.batches = 0
        for p in self._peers:
            p.thread = threading.Thread(target=self._run, args=(p,), daemon=True,
                                        name=f"sync-tx-{p.client.address}")
            p.thread.start()

    # -- the application's calls -------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def last_sequence(self) -> int:
        with self._cond:
            return self._last

    def append(self, entry: bytes) -> int:
        """Give `entry` the next sequence and queue it for every peer."""
        with self._cond:
            self._check_can_sign()
            if self.mode == "async" and self._peers:
                deadline = time.monotonic() + self.ack_timeout
                while any(p.known and self._last - p.acked >= self.max_lag for p in self._peers):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SyncUnavailable(f"peers lag by more than {self.max_lag} updates")
                    self._cond.wait(left)
                    self._check_can_sign()
            self._last += 1
            self._log.append(entry)
            self._cond.notify_all()
            return self._last

    def wait_acked(self, seq: int, timeout: float | None = None) -> None:
        """Sync mode: block until every peer has applied `seq` (SyncUnavailable after the
        timeout; StaleEpochError if a peer says we were deposed). Async: returns at once."""
        if self.mode == "async":
            return
        deadline = time.monotonic() + (self.ack_timeout if timeout is None else timeout)
        with self._cond:
            while True:
                if self._deposed is not None:
                    raise self._deposed
                behind = [p for p in self._peers if self._acked(p) < seq]
                if not behind:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SyncUnavailable(
                        f"sequence {seq} not acknowledged within "
                        f"{self.ack_timeout if timeout is None else timeout}s by "
                        + ", ".join(f"{p.client.address} (at {p.acked}"
                                    + (f"; {p.error}" if p.error else "") + ")" for p in behind))
                self._cond.wait(left)

    def send(self, entry: bytes) -> int:
        """append + wait_acked."""
        seq = self.append(entry)
        self.wait_acked(seq)
        return seq

    def set_base(self, seq: int, snapshot: bytes) -> None:
        """The application checkpointed its state as of `seq`: peers that fall behind
        catch up from here, and the log before it is dropped."""
        with self._cond:
            if seq < self._base_seq or seq > self._last:
                raise ValueError(f"base {seq} outside {self._base_seq}..{self._last}")
            for _ in range(seq - self._base_seq):
                self._log.popleft()
            self._base_seq, self._base = seq, snapshot

    def lag(self) -> dict[str, int]:
        """Entries each peer has not acknowledged yet (the async-mode metric). A peer that
        is unreachable or catching up counts from the base it will install."""
        with self._cond:
            return {p.client.address: self._last - (p.acked if p.known else self._base_seq)
                    for p in self._peers}

    def status(self) -> dict[str, object]:
        with self._cond:
            return {"mode": self.mode, "epoch": self._epoch, "last": self._last,
                    "base": self._base_seq, "retained": len(self._log),
                    "deposed": self._deposed is not None, "installs": self.installs,
                    "batches": self.batches,
                    "peers": {p.client.address: {"acked": p.acked, "lag": self._last - p.acked,
                                                 "error": p.error} for p in self._peers}}

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for p in self._peers:
            if p.thread is not None:
                p.thread.join(timeout=3)
            p.client.close()

    # -- internals ---------------------------------------------------------------------------

    def _acked(self, p: _Peer) -> int:
        return p.acked if p.known else -1

    def _check_can_sign(self) -> None:
        if self._deposed is not None:
            raise self._deposed
        if self._stopped:
            raise NotActiveError("sender closed")
        if not self._ctx.valid():
            raise NotActiveError(f"not active at epoch {self._epoch} any more: "
                                 "refusing to sign sync messages")

    def _run(self, p: _Peer) -> None:
        backoff = 0.02
        while True:
            with self._cond:
                while not self._stopped and self._deposed is None and p.known \
                        and p.acked >= self._last:
                    self._cond.wait()
                if self._stopped or self._deposed is not None:
                    return
            if not self._ctx.valid():
                with self._cond:
                    p.error = "not active: stopped sending"
                    self._cond.notify_all()
                    self._cond.wait(0.2)
                continue
            try:
                self._step(p)
                backoff = 0.02
            except StaleEpochError as e:
                log.warning("peer refused our epoch: deposed", extra={
                    "group": self.group, "epoch": self._epoch, "peer": p.client.address,
                    "peer_epoch": e.epoch})
                with self._cond:
                    self._deposed = e
                    self._cond.notify_all()
                return
            except (RefusedError, SyncUnavailable) as e:
                with self._cond:
                    p.error = str(e)
                    p.known = False
                    self._cond.notify_all()
                    self._cond.wait(backoff)  # woken early by close()
                backoff = min(backoff * 2, 0.5)

    def _step(self, p: _Peer) -> None:
        """One round trip that moves the peer forward (or learns where it is)."""
        if not p.known:
            pos = p.client.position(self.group)
            with self._cond:
                resumable = (pos.epoch == self._epoch and pos.synced
                             and self._base_seq <= pos.applied <= self._last)
                p.acked, p.known = (pos.applied, True) if resumable else (0, False)
            if not resumable:
                self._install(p)
            return
        with self._cond:
            if p.acked < self._base_seq:
                need_install = True
            else:
                need_install = False
                start = p.acked + 1
                skip = start - self._base_seq - 1
                batch, size = [], 0
                for i in range(skip, min(len(self._log), skip + MAX_BATCH)):
                    e = self._log[i]
                    if batch and size + len(e) > MAX_BATCH_BYTES:
                        break
                    batch.append(e)
                    size += len(e)
        if need_install:
            self._install(p)
            return
        if not batch:
            return
        try:
            pos = p.client.apply(self.group, self._epoch, start, batch)
        except RefusedError as e:
            if e.error in ("sequence_gap", "duplicate") and e.epoch == self._epoch and e.synced:
                with self._cond:
                    p.acked = e.applied  # resume from where the receiver is
                return
            raise
        with self._cond:
            p.acked = pos.applied
            p.error = ""
            self.batches += 1
            self._cond.notify_all()

    def _install(self, p: _Peer) -> None:
        with self._cond:
            seq, data = self._base_seq, self._base
        pos = p.client.install(self.group, self._epoch, seq, data)
        with self._cond:
            p.acked, p.known, p.error = pos.applied, True, ""
            self.installs += 1
            self._cond.notify_all()
        log.info("peer installed the base snapshot", extra={
            "group": self.group, "epoch": self._epoch, "peer": p.client.address,
            "sequence": seq, "bytes": len(data)})
