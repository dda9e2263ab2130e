"""The standby's side of direct peer sync: a StateSyncService the VNFC hosts.

    receiver = SyncReceiver("kv", app, epochs=StateClient(coordinators).committed_epoch,
                            bind="0.0.0.0:7601")
    receiver.start()
    ...
    receiver.mark_active(ctx.epoch)   # when this member is promoted

`app` implements `Applier`: it applies updates in order and installs snapshots.
Every message goes through the pure rules of `fence.py` under one lock, so the
application sees exactly one ordered history per epoch. An epoch higher than
any this receiver has seen is checked against the coordinators' committed epoch
(`epochs(group, at_least)`) before it is believed — once per new epoch, not
per message — so a forged future epoch is refused and cannot fence out the
real active.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import NoReturn, Protocol

import grpc

from vnfha.agents.statesync import fence
from vnfha.agents.statesync.fence import FenceState, SyncError, Verdict
from vnfha.coordinator.security.authz import SyncAuthorizer
from vnfha.coordinator.security.identity import IdentityError, from_auth_context
from vnfha.coordinator.security.tls import ReloadingServerCredentials, TlsFiles
from vnfha.v1 import statesync_pb2, statesync_pb2_grpc

__all__ = ["Applier", "SyncReceiver"]

log = logging.getLogger("vnfha.statesync.receiver")

ERROR_KEY = "vnfha-sync-error"
EPOCH_KEY = "vnfha-sync-epoch"
APPLIED_KEY = "vnfha-sync-applied"
SYNCED_KEY = "vnfha-sync-synced"

_CODES = {
    SyncError.STALE_EPOCH: grpc.StatusCode.FAILED_PRECONDITION,
    SyncError.SEQUENCE_GAP: grpc.StatusCode.FAILED_PRECONDITION,
    SyncError.DUPLICATE: grpc.StatusCode.FAILED_PRECONDITION,
    SyncError.SNAPSHOT_REQUIRED: grpc.StatusCode.FAILED_PRECONDITION,
    SyncError.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    SyncError.WRONG_GROUP: grpc.StatusCode.INVALID_ARGUMENT,
    SyncError.FUTURE_EPOCH: grpc.StatusCode.INVALID_ARGUMENT,
    SyncError.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
}

#: committed epoch lookup: (group, at_least) -> the highest committed epoch known
EpochSource = Callable[[str, int], int]
#: the same, with the node hosting the active member at that epoch ("" if none):
#: `StateClient.epoch_owner`
OwnerSource = Callable[[str, int], tuple[int, str]]
#: epochs whose owner is remembered (epochs only grow; older ones are refused anyway)
OWNERS_KEPT = 8


class Applier(Protocol):
    """What the application gives the receiver. Called under the receiver's lock,
    in sequence order; an exception refuses the message (UNAVAILABLE) and leaves
    the position where it was, so the application must apply all-or-nothing."""

    def apply_updates(self, first_sequence: int, entries: list[bytes]) -> None: ...

    def install_snapshot(self, sequence: int, data: bytes) -> None: ...


class SyncConfigError(ValueError):
    """The receiver would serve unauthenticated peers on a network address."""


def is_local_bind(bind: str) -> bool:
    """A loopback address or a unix socket: reachable only from this host."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SyncReceiver(statesync_pb2_grpc.StateSyncServiceServicer):
    """Without `tls`, only a loopback or unix bind is accepted unless `insecure` says
    otherwise out loud: any host that reaches a plaintext receiver could feed the
    standby's state (the epoch fence refuses stale epochs, not forged data)."""

    def __init__(self, group: str, app: Applier, epochs: EpochSource, bind: str = "",
                 max_message_bytes: int = 8 * 1024 * 1024,
                 tls: TlsFiles | None = None, insecure: bool = False,
                 owners: OwnerSource | None = None) -> None:
        if tls is None and not insecure and not is_local_bind(bind):
            raise SyncConfigError(
                f"refusing to serve state sync on {bind} without TLS: any host that reaches "
                "it could write this standby's state; give TLS files (--cacert/--cert/--key) "
                "or accept the risk explicitly (insecure=True, kvstore --insecure)")
        self._tls = tls
        self._insecure = insecure
        self.group = group
        self._app = app
        self._epochs = epochs
        # With TLS and `owners`, a message of the current epoch is accepted only from the
        # node hosting the active member at that epoch: any other node certificate
        # (another group's VM, the standby's own) could otherwise overwrite the state.
        self._owners = owners
        self._owner_at: dict[int, str] = {}
        self._bind = bind
        self._max = max_message_bytes
        self._lock = threading.Lock()
        self._state = FenceState(group)
        self._committed = 0  # highest epoch confirmed as committed by the coordinators
        self._server: grpc.Server | None = None
        self.port = 0
        self.refused: dict[str, int] = {}  # refusal code -> count
        self.applied_updates = 0
        self.installs = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> int:
        """Serve on `bind` (host:port; port 0 picks one); returns the port."""
        opts = [("grpc.max_receive_message_length", self._max), ("grpc.so_reuseport", 0)]
        self.authorizer = SyncAuthorizer(tls=self._tls is not None)
        self._server = grpc.server(futures.ThreadPoolExecutor(8, thread_name_prefix="sync-rx"),
                                   options=opts, interceptors=[self.authorizer])
        statesync_pb2_grpc.add_StateSyncServiceServicer_to_server(self, self._server)
        if self._tls is not None:
            if self._owners is None:
                log.warning("state-sync receiver without an owner lookup: any node "
                            "certificate may write this standby's state",
                            extra={"bind": self._bind, "group": self.group})
            creds = ReloadingServerCredentials(self._tls, serves_as="node").credentials()
            self.port = self._server.add_secure_port(self._bind, creds)
        else:
            # Plaintext: any peer that reaches the port can send sync messages (the epoch
            # fence still refuses stale ones). Say so, so it is never a silent default.
            log.warning("state-sync receiver without TLS: peers are not authenticated",
                        extra={"bind": self._bind, "insecure": self._insecure})
            self.port = self._server.add_insecure_port(self._bind)
        if self.port == 0:
            raise OSError(f"cannot listen on {self._bind}")
        self._server.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0.2).wait(2)

    # -- what the application calls ----------------------------------------------------------

    def position(self) -> FenceState:
        with self._lock:
            return self._state

    def mark_active(self, epoch: int) -> None:
        """Our member was promoted at `epoch`: from now on refuse that epoch and older."""
        with self._lock:
            self._committed = max(self._committed, epoch)
            self._state = fence.mark_active(self._state, epoch)

    def reset(self) -> None:
        """Forget the position but not the highest epoch (e.g. the application dropped
        its state): the next message of any epoch must be an install."""
        with self._lock:
            self._state = FenceState(self.group, epoch=self._state.epoch)

    # -- RPCs --------------------------------------------------------------------------------

    def ApplyUpdates(self, request: statesync_pb2.ApplyUpdatesRequest,
                     context: grpc.ServicerContext) -> statesync_pb2.ApplyUpdatesResponse:
        committed = self._confirm(request.group, request.epoch, context)
        committed = self._check_sender(request.group, request.epoch, committed, context)
        entries = list(request.entries)
        with self._lock:
            verdict = fence.check_update(self._state, request.group, request.epoch,
                                         request.first_sequence, len(entries), committed)
            self._state = verdict.state or self._state
            if not verdict.ok:
                self._refuse(context, verdict)
            try:
                self._app.apply_updates(request.first_sequence, entries)
            except Exception as e:  # the application's own failure: position unchanged
                log.exception("application failed to apply updates")
                context.abort(grpc.StatusCode.UNAVAILABLE, f"application error: {e}")
            self._state = fence.accept_update(self._state, request.first_sequence,
                                              len(entries))
            self.applied_updates += len(entries)
            return statesync_pb2.ApplyUpdatesResponse(position=self._position_pb())

    def InstallSnapshot(self, request: statesync_pb2.InstallSnapshotRequest,
                        context: grpc.ServicerContext) -> statesync_pb2.InstallSnapshotResponse:
        committed = self._confirm(request.group, request.epoch, context)
        committed = self._check_sender(request.group, request.epoch, committed, context)
        with self._lock:
            verdict = fence.check_install(self._state, request.group, request.epoch,
                                          request.sequence, committed)
            if not verdict.ok:
                self._refuse(context, verdict)
            try:
                self._app.install_snapshot(request.sequence, request.data)
            except Exception as e:
                log.exception("application failed to install a snapshot")
                context.abort(grpc.StatusCode.UNAVAILABLE, f"application error: {e}")
            self._state = fence.accept_install(self._state, request.epoch, request.sequence)
            self.installs += 1
            log.info("snapshot installed", extra={"group": self.group, "epoch": request.epoch,
                                                  "sequence": request.sequence,
                                                  "bytes": len(request.data)})
            return statesync_pb2.InstallSnapshotResponse(position=self._position_pb())

    def GetPosition(self, request: statesync_pb2.GetPositionRequest,
                    context: grpc.ServicerContext) -> statesync_pb2.GetPositionResponse:
        if request.group != self.group:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"wrong_group: this receiver serves group {self.group!r}")
        with self._lock:
            return statesync_pb2.GetPositionResponse(position=self._position_pb())

    # -- internals ---------------------------------------------------------------------------

    def _confirm(self, group: str, epoch: int, context: grpc.ServicerContext) -> int:
        """The committed epoch to judge `epoch` by; asks the coordinators (outside the
        lock) only for an epoch above everything confirmed so far."""
        with self._lock:
            known = max(self._committed, self._state.epoch)
        if group != self.group or epoch <= known:
            return known
        try:
            committed = self._epochs(group, epoch)
        except Exception as e:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"cannot confirm epoch {epoch} with the coordinators: {e}")
        with self._lock:
            self._committed = max(self._committed, committed)
            return max(self._committed, self._state.epoch)

    def _check_sender(self, group: str, epoch: int, committed: int,
                      context: grpc.ServicerContext) -> int:
        """Refuse (PERMISSION_DENIED) a message of the committed epoch from any caller but
        the node hosting the active member at that epoch; returns the committed epoch to
        judge the message by. Stale and future epochs are left to the fence, as before."""
        if self._owners is None or self._tls is None or group != self.group \
                or epoch != committed:
            return committed
        owner = self._owner_at.get(epoch)
        if owner is None:
            try:
                got, owner = self._owners(group, epoch)
            except Exception as e:
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"cannot look up the active node of epoch {epoch}: {e}")
            with self._lock:
                self._committed = max(self._committed, got)
                if got != epoch:  # moved on meanwhile: the fence refuses the old epoch
                    return max(self._committed, self._state.epoch)
                self._owner_at[epoch] = owner
                for old in sorted(self._owner_at)[:-OWNERS_KEPT]:
                    del self._owner_at[old]
        try:
            caller = from_auth_context(context.auth_context(), context.peer(), True)
        except IdentityError as e:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        if caller.kind != "node" or not owner or caller.name != owner:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"{caller} may not write group {group!r} at epoch {epoch}: only "
                          f"the node hosting its active member ({owner or 'none'}) may")
        return committed

    def _position_pb(self) -> statesync_pb2.SyncPosition:
        st = self._state
        return statesync_pb2.SyncPosition(group=st.group, epoch=st.epoch, applied=st.applied,
                                          synced=st.synced)

    def _refuse(self, context: grpc.ServicerContext, verdict: Verdict) -> NoReturn:
        assert verdict.error is not None
        code = verdict.error.value
        self.refused[code] = self.refused.get(code, 0) + 1
        st = self._state
        context.set_trailing_metadata(((ERROR_KEY, code), (EPOCH_KEY, str(st.epoch)),
                                       (APPLIED_KEY, str(st.applied)),
                                       (SYNCED_KEY, "1" if st.synced else "0")))
        if verdict.error not in (SyncError.SEQUENCE_GAP, SyncError.DUPLICATE,
                                 SyncError.SNAPSHOT_REQUIRED):
            log.warning("sync message refused", extra={"group": self.group, "error": code,
                                                       "detail": verdict.message,
                                                       "epoch": st.epoch})
        context.abort(_CODES[verdict.error], f"{code}: {verdict.message}")
        raise AssertionError("unreachable")  # abort raises
