"""Client library for VNFCs: ask the local agent which role a member holds.

    from vnfha.agents.sdk import NotActive, RoleClient

    with RoleClient("/run/vnfha/role.sock") as client:
        with client.active_context("web") as ctx:
            while ctx.valid():
                send_state_sync(payload, epoch=ctx.epoch)   # stamp EVERY message

`ctx.epoch` is the fencing token: stamp it on every state-sync message (and
every write to shared storage) and have receivers refuse anything stamped
lower than the highest epoch they have seen. `ctx.valid()` turns False the
moment the agent says the role is gone, or when the lease deadline passes
even if the agent has gone silent; stop acting as active then. See
docs/role-api.md.

An `ActiveContext` is what `vnfha.agents.statesync.SyncSender` takes to stamp
and guard peer-sync messages (docs/state-sync.md).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import grpc

from vnfha.v1 import role_pb2, role_pb2_grpc, types_pb2

__all__ = ["ActiveContext", "NotActive", "RoleApiError", "RoleClient", "RoleState",
           "RoleWatch"]

# Reconnect quickly when the agent restarts: roles may change meanwhile.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# Errors that retrying will not fix: the member is not hosted there, or is ambiguous.
_PERMANENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


@dataclass(frozen=True)
class RoleState:
    """One member's role as the agent reported it."""

    group: str
    member: str
    active: bool
    epoch: int  # fencing token while active, 0 when standby
    vip: str
    lease_remaining: float  # seconds, as of `received_at`; 0 if the agent has no lease
    lease_deadline: datetime | None  # wall-clock estimate, for display only
    healthy: bool
    reason: str
    received_at: float  # time.monotonic() when this arrived

    @property
    def lease_deadline_monotonic(self) -> float | None:
        """When the lease ends on this host's monotonic clock (shared with the agent)."""
        return self.received_at + self.lease_remaining if self.lease_remaining > 0 else None

    def lease_valid(self, now: float | None = None) -> bool:
        deadline = self.lease_deadline_monotonic
        return deadline is not None and (time.monotonic() if now is None else now) < deadline

    @classmethod
    def from_proto(cls, msg: role_pb2.MemberRole, received_at: float) -> RoleState:
        deadline = (msg.lease_deadline.ToDatetime(tzinfo=UTC)
                    if msg.HasField("lease_deadline") else None)
        return cls(group=msg.group, member=msg.member, active=msg.role == types_pb2.ROLE_ACTIVE,
                   epoch=msg.epoch, vip=msg.vip, lease_remaining=msg.lease_remaining_ms / 1000,
                   lease_deadline=deadline, healthy=msg.healthy, reason=msg.reason,
                   received_at=received_at)


class RoleApiError(Exception):
    """The agent refused or could not be reached; `code` is the gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class NotActive(Exception):
    """active_context() on a member that is not active (or whose lease has run out)."""

    def __init__(self, state: RoleState) -> None:
        why = "its lease has run out" if state.active else "it is standby"
        super().__init__(f"{state.group}/{state.member} is not active: {why}"
                         + (f" ({state.reason})" if state.reason else ""))
        self.state = state


class RoleClient:
    """A connection to the agent's role API on a unix socket."""

    def __init__(self, socket_path: str, timeout: float = 2.0,
                 max_backoff: float = 1.0) -> None:
        self.socket_path = os.path.abspath(socket_path)
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._channel = grpc.insecure_channel(f"unix://{self.socket_path}",
                                              options=_CHANNEL_OPTIONS)
        self._stub = role_pb2_grpc.RoleServiceStub(self._channel)

    def get(self, group: str, member: str = "") -> RoleState:
        """The member's role now; `member` may be empty if the agent hosts one member of
        the group. Raises RoleApiError."""
        try:
            resp = self._stub.GetRole(role_pb2.GetRoleRequest(group=group, member=member),
                                      timeout=self.timeout)
        except grpc.RpcError as e:
            raise RoleApiError(e.code(), e.details() or "") from None
        return RoleState.from_proto(resp.role, time.monotonic())

    def watch(self, group: str, member: str = "") -> RoleWatch:
        """The current role, then every change (and periodic resends); reconnects on
        errors with bounded backoff. Stop it with `.cancel()` from any thread."""
        return RoleWatch(self._stub, group, member, self.max_backoff)

    def active_context(self, group: str, member: str = "") -> ActiveContext:
        """`with client.active_context("web") as ctx:` runs the block only if the member
        is active (else NotActive); `ctx.valid()` says whether it still is."""
        return ActiveContext(self, group, member)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RoleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RoleWatch(Iterator[RoleState]):
    """Iterator over a member's role updates that survives agent restarts."""

    def __init__(self, stub: role_pb2_grpc.RoleServiceStub, group: str, member: str,
                 max_backoff: float) -> None:
        self._stub = stub
        self._request = role_pb2.WatchRoleRequest(group=group, member=member)
        self._max_backoff = max_backoff
        self._backoff = 0.05
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._call: grpc.Call | None = None

    def __next__(self) -> RoleState:
        while True:
            with self._lock:
                if self._cancelled.is_set():
                    raise StopIteration
                if self._call is None:
                    self._call = self._stub.WatchRole(self._request)
                call = self._call
            try:
                resp = next(call)  # type: ignore[call-overload]
                self._backoff = 0.05
                return RoleState.from_proto(resp.role, time.monotonic())
            except StopIteration:  # the agent ended the stream (stopping): reconnect
                pass
            except grpc.RpcError as e:
                if self._cancelled.is_set():
                    raise StopIteration from None
                if e.code() in _PERMANENT:
                    raise RoleApiError(e.code(), e.details() or "") from None
            with self._lock:
                self._call = None
            self._cancelled.wait(self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            if self._call is not None:
                self._call.cancel()

    def __enter__(self) -> RoleWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        """`with client.watch(...) as updates:` ends the stream when the block does."""
        self.cancel()


class ActiveContext:
    """Holds while a member is active at one epoch; see `valid()`."""

    def __init__(self, client: RoleClient, group: str, member: str) -> None:
        self._client = client
        self._group = group
        self._member = member
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._deadline = 0.0
        self._reason = ""
        self._watch: RoleWatch | None = None
        self._thread: threading.Thread | None = None
        self.state: RoleState | None = None

    # -- what the block uses ---------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The fencing token: stamp it on every state-sync message."""
        assert self.state is not None, "use inside `with`"
        return self.state.epoch

    @property
    def vip(self) -> str:
        assert self.state is not None, "use inside `with`"
        return self.state.vip

    @property
    def reason(self) -> str:
        """Why the context became invalid ('' while valid)."""
        self.valid()
        with self._lock:
            return self._reason

    def valid(self) -> bool:
        """True while the agent says the member is active at `epoch` and the lease
        deadline it reported has not passed. Once False, it stays False."""
        if self._lost.is_set():
            return False
        with self._lock:
            expired = time.monotonic() >= self._deadline
        if expired:
            self._lose("lease deadline passed")
            return False
        return True

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the context is invalid (True) or `timeout` passes (False)."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.valid():
            with self._lock:
                wake = self._deadline
            if end is not None:
                wake = min(wake, end)
                if time.monotonic() >= end:
                    return False
            self._lost.wait(max(0.0, wake - time.monotonic()))
        return True

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> ActiveContext:
        state = self._client.get(self._group, self._member)
        if not state.active or not state.lease_valid():
            raise NotActive(state)
        self.state = state
        self._deadline = state.lease_deadline_monotonic or 0.0
        self._watch = self._client.watch(state.group, state.member)
        self._thread = threading.Thread(target=self._follow, name="vnfha-role-watch",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._lose("context closed")
        if self._watch is not None:
            self._watch.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _follow(self) -> None:
        assert self._watch is not None and self.state is not None
        epoch = self.state.epoch
        try:
            for state in self._watch:
                if not state.active or state.epoch != epoch:
                    now = f"active at epoch {state.epoch}" if state.active else "standby"
                    self._lose(f"role lost: now {now}"
                               + (f" ({state.reason})" if state.reason else ""))
                    return
                deadline = state.lease_deadline_monotonic
                if deadline is None:
                    # Sent when the agent's lease ran out: if the deadline we hold has
                    # passed too, that is the cause, whichever of us noticed first.
                    with self._lock:
                        passed = time.monotonic() >= self._deadline
                    self._lose("lease deadline passed" if passed else "agent has no lease")
                    return
                with self._lock:
                    self._deadline = deadline
        except RoleApiError as e:
            self._lose(f"role API: {e}")

    def _lose(self, reason: str) -> None:
        with self._lock:
            if not self._lost.is_set():
                self._reason = reason
                self._deadline = 0.0
                self._lost.set()
